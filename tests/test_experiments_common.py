"""The harness of the experiments, `experiments/_common.py`, on a tiny synthetic problem.

The training checks compare with jcnn's own path (`make_optimizer`'s chain,
`make_train_step`, `create_state` and the batch order of `train_eval`'s
contract), which is what the studies' committed results were trained with.
"""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcnn import data as jdata
from jcnn import optim as joptim
from jcnn.models import Parts
from jcnn.train.state import create_state
from jcnn.train.step import make_train_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments"))
try:
    import _common as common
finally:
    sys.path.pop(0)

EPOCHS, BATCH, N = 2, 8, 32  # 4 steps an epoch, 8 in all
MODEL = common.MLP(depth=1, width=8, parts=Parts(norm=None, activation="relu"), num_classes=4)
# The update of every step (momentum, Adam, weight decay) times a rate that is
# the peak times a shape: `make_optimizer`'s constant rate, a cosine and an
# exponential decay (the peak is traced), and a warmup (it is not).
CONFIGS = {
    "momentum": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "adamw_cosine": {
        "name": "adamw",
        "lr": 3e-3,
        "weight_decay": 1e-2,
        "schedule": "cosine",
        "final_lr": 3e-5,
    },
    "decay_exponential": {
        "name": "sgd",
        "lr": 0.1,
        "weight_decay": 1e-3,
        "schedule": "exponential",
        "decay_rate": 0.5,
    },
    "warmup_cosine": {"name": "sgd", "lr": 0.1, "schedule": "warmup_cosine", "warmup_steps": 2},
}


@pytest.fixture(scope="module")
def data() -> common.Data:
    rng = np.random.default_rng(0)
    parts = [
        jdata.to_device(
            rng.integers(0, 256, (n, 6, 6, 1), dtype=np.uint8),
            rng.integers(0, 4, n).astype(np.int32),
        )
        for n in (N, 16)
    ]
    return common.Data("synthetic", *parts, mean=127.5, std=73.9, num_classes=4)


def reference_run(data, optim, seed: int = 0):
    """Final params and per-step losses of jcnn's plain loop with `make_optimizer`'s chain."""
    steps_per_epoch = N // BATCH
    tx = joptim.make_optimizer(optim, steps_per_epoch=steps_per_epoch, num_epochs=EPOCHS)
    step = jax.jit(make_train_step(MODEL, tx, num_classes=4, mean=data.mean, std=data.std))
    state = create_state(MODEL, tx, jax.random.key(seed), data.input_shape)
    losses = []
    for epoch in range(EPOCHS):
        order = jdata.batch_indices(seed, epoch, N, BATCH)
        for b in range(steps_per_epoch):
            state, metrics = step(state, *jdata.take(data.train, order[b]))
            losses.append(float(metrics["loss"]))
    return state.params, losses


def train(data, optim, **kwargs) -> dict:
    return common.train_eval(
        MODEL, data, epochs=EPOCHS, batch_size=BATCH, optim=optim, seed=0, **kwargs
    )


@contextlib.contextmanager
def count_compiles():
    """Counts XLA compilations (every jitted function and shape) inside the block."""
    count = [0]

    def listener(event, _duration, **_):
        count[0] += event == "/jax/core/compile/backend_compile_duration"

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.mark.parametrize("name", CONFIGS)
def test_train_eval_matches_the_plain_optimizer_chain(data, name):
    result = train(data, CONFIGS[name], keep_variables=True)
    params, losses = reference_run(data, CONFIGS[name])
    # The same float32 operations in the same order: equal up to XLA's fusion choices.
    np.testing.assert_allclose(result["train_loss_steps"], losses, rtol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
        result["variables"]["params"],
        params,
    )


def test_learning_rates_share_one_compiled_step(data):
    base = {"name": "sgd", "momentum": 0.9, "schedule": "cosine"}
    with count_compiles() as first:
        train(data, {**base, "lr": 0.1, "final_lr": 0.001})
    with count_compiles() as second:
        result = train(data, {**base, "lr": 0.02, "final_lr": 0.0002})
    assert first[0] > 0  # the listener sees the compiles
    assert second[0] == 0, f"a new learning rate compiled {second[0]} programs"
    # The second rate trained with its own rate, not the first's.
    _, losses = reference_run(data, {**base, "lr": 0.02, "final_lr": 0.0002})
    np.testing.assert_allclose(result["train_loss_steps"], losses, rtol=1e-6)


SCHEDULES = {  # peak -> the schedule keys (rates as multiples of the peak)
    "constant": lambda lr: {},
    "cosine to final_lr": lambda lr: {"schedule": "cosine", "final_lr": lr * 0.01},
    "cosine to alpha": lambda lr: {"schedule": "cosine", "alpha": 0.1},
    "exponential by decay_rate": lambda lr: {"schedule": "exponential", "decay_rate": 0.7},
    "exponential to final_lr": lambda lr: {"schedule": "exponential", "final_lr": lr * 1e-3},
}


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("lr", [1.0, 0.3, 0.0125, 1e-4])
def test_factored_schedules_are_the_peak_times_a_shape_to_the_bit(schedule, lr):
    # `_scale_by_peak_rate` computes f32(lr) * (the schedule at peak 1); that must be
    # the rate jcnn's schedule computes for the peak lr, bit for bit.
    cfg = {"name": "sgd", "lr": lr, **SCHEDULES[schedule](lr)}
    unit, peak = common._split_peak_rate(cfg)
    assert unit["lr"] == 1.0 and peak == lr
    spe, epochs = 7, 3
    steps = jnp.arange(spe * epochs + 2)  # past the end too

    def rates(c, scale):
        schedule = joptim.make_schedule(c, steps_per_epoch=spe, num_epochs=epochs)
        return np.asarray(jax.jit(jax.vmap(lambda t: scale * schedule(t)))(steps))

    np.testing.assert_array_equal(rates(unit, jnp.float32(lr)), rates(cfg, 1.0))


def test_run_seeds_summarises_the_seeds_in_order(data):
    optim = CONFIGS["momentum"]
    summary = common.run_seeds(MODEL, data, (1, 0), epochs=EPOCHS, batch_size=BATCH, optim=optim)
    singles = [
        common.train_eval(MODEL, data, epochs=EPOCHS, batch_size=BATCH, optim=optim, seed=s)
        for s in (1, 0)
    ]
    assert summary["test_accuracy"] == [r["final_test_accuracy"] for r in singles]
    assert summary["train_loss_epochs"] == [r["train_loss"] for r in singles]
    assert summary["diverged"] == 0 and summary["diverged_at_step"] == [None, None]
    np.testing.assert_allclose(
        summary["train_loss_steps_curve"],
        np.mean([r["train_loss_steps"] for r in singles], 0),
        rtol=1e-12,
    )


def test_run_seeds_counts_diverged_runs_and_cuts_the_step_curve(data):
    optim = {"name": "sgd", "lr": 1e30}  # the first update overflows the logits
    summary = common.run_seeds(
        MODEL, data, (0, 1), epochs=EPOCHS, batch_size=BATCH, optim=optim, check_every=1
    )
    assert summary["diverged"] == 2
    at = summary["diverged_at_step"]
    assert all(isinstance(step, int) for step in at)
    assert len(summary["train_loss_steps_curve"]) == min(at)


def test_mean_curve_averages_ragged_curves_and_skips_non_finite_values():
    # Seed 2 diverged after epoch 2 (its curve stops; its last loss is inf).
    curves = [[1.0, 2.0, 3.0], [3.0, 4.0, 5.0], [2.0, float("inf")]]
    assert common.mean_curve(curves) == [2.0, 3.0, 4.0]
    assert math.isnan(common.mean_curve([[float("nan")], [float("nan")]])[0])


def test_downsample_averages_equal_windows():
    np.testing.assert_allclose(common.downsample(np.arange(6.0), 3), [0.5, 2.5, 4.5])
    assert common.downsample([1.0, 2.0], 3) == [1.0, 2.0]


def test_validation_accuracy_is_the_final_models_accuracy_on_the_validation_set(data):
    rng = np.random.default_rng(1)
    val = jdata.to_device(
        rng.integers(0, 256, (12, 6, 6, 1), dtype=np.uint8), rng.integers(0, 4, 12).astype(np.int32)
    )
    with_val = common.Data("synthetic", data.train, data.test, data.mean, data.std, 4, val)
    out = train(with_val, CONFIGS["momentum"], keep_variables=True)
    x = (np.asarray(val.images, np.float64) / 255 - data.mean) / data.std  # normalize()
    logits = MODEL.apply(out["variables"], x, train=False)
    expected = float(np.mean(np.asarray(logits).argmax(-1) == np.asarray(val.labels)))
    assert out["final_val_accuracy"] == pytest.approx(expected, abs=1e-9)
    assert len(out["val_accuracy"]) == EPOCHS
    # The validation set takes no part in training: the run is the one without it.
    plain = train(data, CONFIGS["momentum"])
    assert out["train_loss_steps"] == plain["train_loss_steps"]
    assert out["test_accuracy"] == plain["test_accuracy"]
    summary = common.run_seeds(
        MODEL, with_val, (0,), epochs=EPOCHS, batch_size=BATCH, optim=CONFIGS["momentum"]
    )
    assert summary["val_accuracy"] == [out["final_val_accuracy"]]
    assert summary["val_accuracy_epochs"] == [out["val_accuracy"]]


def test_load_data_holds_out_a_balanced_validation_set_and_keeps_the_training_set():
    split = common.load_data(200, 50, val_size=100)
    plain, whole = common.load_data(200, 50), common.load_data(300, 50)
    # The training set is the one without validation, image for image, in order.
    np.testing.assert_array_equal(split.train.images, plain.train.images)
    np.testing.assert_array_equal(split.train.labels, plain.train.labels)
    np.testing.assert_array_equal(split.test.images, plain.test.images)
    assert plain.val is None
    assert np.bincount(np.asarray(split.val.labels), minlength=10).tolist() == [10] * 10
    # Train and validation together are the 300-image subset, each image once.
    rows = lambda a: sorted(map(bytes, np.asarray(a).reshape(len(a), -1)))  # noqa: E731
    together = np.concatenate([split.train.images, split.val.images])
    assert rows(together) == rows(whole.train.images)


def test_balanced_subsets_are_disjoint_and_balanced_on_an_uneven_split():
    labels = np.repeat(np.arange(3), [5, 30, 30])  # class 0 has only 5 examples
    first, second = common.balanced_subsets(labels, (7, 4), seed=3)
    np.testing.assert_array_equal(first, common.balanced_subset(labels, 7, seed=3))
    assert not set(first) & set(second)
    assert np.bincount(labels[first], minlength=3).tolist() == [3, 2, 2]
    assert np.bincount(labels[second], minlength=3).tolist() == [2, 1, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(train_size=10, val_size=-1), "val_size"), (dict(val_size=10), "train_size")],
)
def test_load_data_rejects_a_bad_validation_size(kwargs, match):
    with pytest.raises(ValueError, match=match):
        common.load_data(**kwargs)


def test_balanced_subsets_reject_sizes_beyond_the_split():
    labels = np.arange(5) % 2
    with pytest.raises(ValueError, match=r"`sizes` \(3, 3\) add up to 6, more than the 5"):
        common.balanced_subsets(labels, (3, 3))
    with pytest.raises(ValueError, match=r"each size must be in \[1, 5\].*got 0 in"):
        common.balanced_subsets(labels, (2, 0))
    with pytest.raises(ValueError, match=r"each size must be in \[1, 5\].*got 6 in"):
        common.balanced_subset(labels, 6)
