"""Faults during training: SIGKILL at six points, SIGTERM/SIGINT, NaN losses.

The promise (issue: reliability): a run never loses more than the work since
its last checkpoint, finishes bit-identical to an uninterrupted run however
often it is killed and restarted, and never saves a non-finite state.

The subprocess runs are ``jcnn train`` of a 5-epoch run of 128 real
Fashion-MNIST images in batches of 16 (8 steps an epoch, 40 in all, a
checkpoint at each epoch's end), through `tests.train._fault_worker`, which
picks the moment of each fault.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jcnn.data
from jcnn import cli, models, optim, train
from jcnn.train.checkpoint import Checkpointer
from jcnn.train.step import NONFINITE, nonfinite_check
from tests.train._smoke import needs_fashion, smoke

ROOT = Path(__file__).resolve().parents[2]
WORKER = "tests.train._fault_worker"
TIMEOUT = 240
RUN = [
    "--config=default:smoke",
    "--config.progress=False",
    "--config.num_epochs=5",
    "--config.data.train_subset=128",
    "--config.data.test_subset=100",
    "--config.data.batch_size=16",
    "--config.log_every_steps=4",
]
STEPS = 40


def _launch(fault: str, workdir: Path, cache: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "XLA_FLAGS": (
            os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
        ).strip(),
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, "-m", WORKER, fault, "train", f"--workdir={workdir}", *RUN],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(fault: str, workdir: Path, cache: Path) -> subprocess.CompletedProcess:
    proc = _launch(fault, workdir, cache)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _latest(workdir: Path) -> int | None:
    if not (workdir / "checkpoints").exists():
        return None
    with Checkpointer(workdir / "checkpoints") as ckpt:
        return ckpt.latest_step()


def _assert_identical(a, b) -> None:
    """Params, BatchNorm statistics, optimiser state and step: bit for bit."""
    trees = [(s.step, s.params, s.batch_stats, s.opt_state) for s in (a, b)]
    same = jax.tree.map(lambda x, y: np.array_equal(np.asarray(x), np.asarray(y)), *trees)
    assert all(jax.tree.leaves(same))
    assert train.params_sha256(a.params) == train.params_sha256(b.params)


def _records(workdir: Path) -> list[tuple]:
    """``metrics.jsonl`` as (kind, step, value) in file order, without the timings."""
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [
        ("eval", r["step"], r["test_accuracy"])
        if "test_accuracy" in r
        else ("train", r["step"], r["train_loss"])
        for r in records
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, xla_cache):
    """The uninterrupted run: (its final state, its metrics records)."""
    workdir = tmp_path_factory.mktemp("reference")
    done = _run("none", workdir, xla_cache)
    assert done.returncode == 0, done.stderr[-4000:]
    state = train.load(workdir)
    assert int(state.step) == STEPS
    return state, _records(workdir)


def _assert_same_run(workdir: Path, reference) -> None:
    """The run in `workdir` ended bit-identical to the uninterrupted one, and its
    ``metrics.jsonl`` holds each step once, with the same values, in the same order."""
    state, records = reference
    _assert_identical(train.load(workdir), state)
    assert _records(workdir) == records


@needs_fashion
def test_sigkill_at_six_points_then_the_finished_run_is_bit_identical(
    reference, tmp_path, xla_cache
):
    workdir = tmp_path / "run"
    # (fault, the latest committed checkpoint after it): before any checkpoint,
    # during the first save, mid-epoch, during a later save.
    for fault, latest in (
        ("kill@3", None),
        ("kill-save@8", None),
        ("kill@10", 8),
        ("kill-save@24", 16),
    ):
        done = _run(fault, workdir, xla_cache)
        assert done.returncode == -signal.SIGKILL, (fault, done.stderr[-3000:])
        assert _latest(workdir) == latest, fault
        if fault.startswith("kill-save"):  # killed with the files written, uncommitted
            step = fault.partition("@")[2]
            leftovers = [p.name for p in (workdir / "checkpoints").iterdir()]
            assert any(name.startswith(f"{step}.orbax-checkpoint-tmp") for name in leftovers)

    # A SIGKILL from outside, wherever it lands once step 28 is logged.
    proc = _launch("none", workdir, xla_cache)
    metrics, deadline = workdir / "metrics.jsonl", time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if any(json.loads(line)["step"] >= 28 for line in metrics.read_text().splitlines()):
            break
        time.sleep(0.01)
    proc.kill()
    proc.communicate()
    assert proc.returncode in (-signal.SIGKILL, 0)
    assert _latest(workdir) in (24, 32, STEPS)

    if _latest(workdir) != STEPS:  # during the last epoch's save, then to the end
        done = _run(f"kill-save@{STEPS}", workdir, xla_cache)
        assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
        assert _latest(workdir) == 32
    done = _run("none", workdir, xla_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_run(workdir, reference)


@needs_fashion
def test_sigterm_and_sigint_save_exit_0_and_the_resumed_run_is_bit_identical(
    reference, tmp_path, xla_cache
):
    workdir = tmp_path / "run"
    # 8 steps an epoch in calls of 4 (steps 1-4, 5-8, ...): a signal during the call
    # that runs step 10 is acted on when it ends, after step 12 (mid-epoch).
    done = _run("sigterm@10", workdir, xla_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped by SIGTERM after step 12" in done.stdout
    assert json.loads(done.stdout.splitlines()[-1])["step"] == 12
    assert _latest(workdir) == 12

    done = _run("sigint@18", workdir, xla_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from step 12" in done.stdout
    assert "stopped by SIGINT after step 20" in done.stdout
    assert _latest(workdir) == 20

    # A second SIGINT exits at once, without saving its step (28); 24 ended an epoch.
    done = _run("sigint2@27", workdir, xla_cache)
    assert done.returncode == 130
    assert done.stderr.strip().splitlines()[-1] == "jcnn train: interrupted"
    assert _latest(workdir) == 24

    done = _run("none", workdir, xla_cache)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_run(workdir, reference)


# --- non-finite values ---


def test_nonfinite_check_names_the_first_bad_quantity_in_step_order():
    ok = {"a": jnp.ones(2), "b": jnp.ones((2, 2))}
    nan_b = {"a": jnp.ones(2), "b": jnp.array([[1.0, jnp.inf], [0.0, 0.0]])}
    cases = [
        # (loss, grads, params, batch_stats) -> (code, leaf)
        ((1.0, ok, ok, ok), (0, -1)),
        ((jnp.nan, nan_b, nan_b, nan_b), (1, -1)),
        ((1.0, nan_b, nan_b, ok), (2, 1)),
        ((1.0, ok, nan_b, nan_b), (3, 1)),
        ((1.0, ok, ok, {"mean": jnp.array([jnp.nan])}), (4, 0)),
        ((1.0, ok, ok, {}), (0, -1)),
    ]
    for args, (code, leaf) in cases:
        got = nonfinite_check(*args)
        assert (int(got["nonfinite"]), int(got["nonfinite_leaf"])) == (code, leaf), args

    # Adam's second moment overflows for a finite gradient above ~1.8e19: the update
    # is then 0 and every other quantity stays finite; only the state shows it.
    tx = optax.adam(1e-3)
    params = {"w": jnp.ones(2)}
    grads = {"w": jnp.array([1e20, 1.0])}
    updates, state = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    got = nonfinite_check(1.0, grads, new, {}, state)
    # The float leaves of (ScaleByAdamState(count, mu, nu), EmptyState()): mu, nu.
    assert (int(got["nonfinite"]), int(got["nonfinite_leaf"])) == (5, 1)
    assert NONFINITE[5] == "the optimiser state"
    finite = nonfinite_check(1.0, ok, ok, ok, tx.init(params))  # int count: not checked
    assert int(finite["nonfinite"]) == 0


class _NaNOnBlank(nn.Module):
    """cnn_small whose loss is NaN for an image of one constant value (no real
    Fashion-MNIST image is: each has a dark background and a lighter garment)."""

    inner: nn.Module

    @nn.compact
    def __call__(self, x, *, train: bool):
        logits = self.inner(x, train=train)
        flat = x.reshape(x.shape[0], -1)
        blank = jnp.max(flat, axis=1) == jnp.min(flat, axis=1)
        return logits * jnp.where(blank, jnp.nan, 1.0)[:, None]


PLANTED = 37  # the training image made blank (white)


@pytest.fixture
def plant_nan(monkeypatch):
    """Registers the model `nan_on_blank`; calling the fixture's value turns
    training image `PLANTED` white, which gives it a NaN loss."""
    monkeypatch.setitem(
        models.REGISTRY,
        "nan_on_blank",
        lambda **kw: _NaNOnBlank(models.create("cnn_small", **kw)),
    )
    load = jcnn.data.load

    def patched(name, split):
        images, labels = load(name, split)
        if split == "train":
            images = images.copy()
            images[PLANTED] = 255
        return images, labels

    return lambda: monkeypatch.setattr(jcnn.data, "load", patched)


def _planted_step(epoch: int, *, n=128, batch=16, seed=0) -> int:
    """The step (counting from 1) whose batch holds image `PLANTED` in `epoch`."""
    order = np.asarray(jcnn.data.batch_indices(seed, epoch, n, batch))
    (row,) = np.flatnonzero((order == PLANTED).any(axis=1))
    return epoch * (n // batch) + int(row) + 1


_PLANTED_RUN = {
    "model": {"name": "nan_on_blank"},
    "data.augment": (),  # a crop would give the white image a black border
    "data.train_subset": 128,
    "data.test_subset": 100,
    "data.batch_size": 16,
    "num_epochs": 3,
    "log_every_steps": 4,
}


@needs_fashion
def test_a_nan_in_the_data_stops_the_run_naming_step_and_loss_and_saves_nothing(
    tmp_path, plant_nan
):
    # The first epoch is clean and checkpointed; then image PLANTED turns white.
    train.fit(smoke(**_PLANTED_RUN, stop_at_step=8), tmp_path)
    assert _latest(tmp_path) == 8
    plant_nan()
    step = _planted_step(1)
    with pytest.raises(
        FloatingPointError,
        match=rf"fit: the loss became non-finite \(NaN or Inf\) in step {step}; stopped "
        r"without saving it \(the latest checkpoint is finite\)",
    ):
        train.fit(smoke(**_PLANTED_RUN), tmp_path)
    assert _latest(tmp_path) == 8
    state = train.load(tmp_path)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state.params))


@needs_fashion
def test_on_nonfinite_skip_skips_exactly_the_planted_steps_and_finishes(tmp_path, plant_nan):
    plant_nan()
    state = train.fit(smoke(**_PLANTED_RUN, on_nonfinite="skip"), tmp_path)
    assert int(state.step) == 24
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state))
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    skipped = {r["step"]: r["skipped_steps"] for r in lines if "skipped_steps" in r}
    planted = [_planted_step(e) for e in range(3)]
    # Each log line covers the 4 steps up to its step: 1 skipped where a planted step falls.
    assert skipped == {s: int(any(s - 4 < p <= s for p in planted)) for s in range(4, 25, 4)}
    assert all(np.isfinite(r["train_loss"]) for r in lines if "train_loss" in r)
    # A skipped step leaves the optimiser state, the schedule's count with it, as it
    # was: the logged rate is the schedule at the count of the steps not skipped.
    config = smoke(**_PLANTED_RUN, on_nonfinite="skip")
    schedule = optim.make_schedule(config.optim, steps_per_epoch=8, num_epochs=3)
    for r in (r for r in lines if "lr" in r):
        applied = r["step"] - 1 - sum(p < r["step"] for p in planted)
        assert r["lr"] == pytest.approx(float(schedule(applied)), rel=1e-6), r["step"]
    assert len({round(r["lr"], 9) for r in lines if "lr" in r}) > 1  # the rate varies


@needs_fashion
def test_a_huge_learning_rate_stops_the_cli_with_one_line_and_exit_1(tmp_path, capsys):
    status = cli.main(
        [
            "train",
            "--config=default:smoke",
            f"--workdir={tmp_path}",
            "--config.progress=False",
            "--config.optim.lr=1e30",
            "--config.data.train_subset=64",
            "--config.data.test_subset=100",
        ]
    )
    assert status == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("jcnn train: error: fit: ")
    assert "became non-finite (NaN or Inf) in step" in err[0]
    assert _latest(tmp_path) is None
