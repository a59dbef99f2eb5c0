"""The shared harness of ``experiments/``: arguments, data, training, statistics, output.

An experiment is a folder ``experiments/<name>/`` whose ``run.py`` exposes
``main(argv=None)`` and is built from these pieces::

    args = common.parse_args("name", __doc__, argv)        # --smoke, --seeds, --out
    data = common.load_data(train_size=4000, test_size=2000)  # balanced subsets, on the device
    runs = common.run_seeds(model, data, range(args.seeds), epochs=2, batch_size=128,
                            optim={"name": "sgd", "lr": 0.01, "momentum": 0.9})
    row = {"arm": "sgd", **common.pick(runs, "test_accuracy", "diverged", "wall_s")}
    mean, std = common.mean_std(row["test_accuracy"])
    common.write_results(args.out, "name", rows, table, meta={...}, wall_s=...)
    common.savefig(fig, args.out / "plot.png")

`train_eval` (one seed; `run_seeds` calls it for each) is assembled from
jcnn's public training pieces (`jcnn.train.state.create_state`,
`jcnn.train.step.make_train_step` / `make_eval_step`,
`jcnn.data.batch_indices` / `take`, `jcnn.optim.make_optimizer` /
`make_schedule`) and compiles one step per model and setting: seeds,
``init_model`` variants of the same network and peak learning rates (of a
constant, cosine or exponential schedule) reuse it (on small studies the
compile is most of the time). The README of each experiment pastes the
``results.md`` its full run wrote; ``tests/test_experiments.py`` runs every
``run.py`` with ``--smoke`` so that none of them can rot.

Reading conventions: accuracies are fractions in ``[0, 1]`` in results.json
and percentages in the tables; ``std`` is the sample standard deviation
(``ddof=1``) over seeds; a difference smaller than the spread is a tie
(`compare`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import math
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from jcnn import data as jdata
from jcnn import init as jinit
from jcnn import nn as jnn
from jcnn import optim as joptim
from jcnn.models import Parts
from jcnn.train.state import create_state
from jcnn.train.step import cross_entropy, make_eval_step, make_train_step

EXPERIMENTS_DIR = Path(__file__).resolve().parent
EVAL_BATCH = 500


# --- arguments ---------------------------------------------------------------------------


def parse_args(name: str, doc: str | None, argv: Sequence[str] | None = None):
    """The command line every experiment shares.

    ``--smoke``: the whole pipeline on a tiny budget (seconds; what the test runs);
    ``--seeds N``: seeds per arm (default 3, smoke 1);
    ``--out DIR``: where results.json, results.md and the PNGs go (default
    ``experiments/<name>/``; created). Returns the namespace with ``out`` a Path.
    """
    parser = argparse.ArgumentParser(
        prog=f"experiments/{name}/run.py",
        description=(doc or name).strip().splitlines()[0],
    )
    parser.add_argument("--smoke", action="store_true", help="tiny budget, seconds")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per arm (3; smoke 1)")
    parser.add_argument("--out", type=Path, default=EXPERIMENTS_DIR / name)
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = 1 if args.smoke else 3
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    args.out.mkdir(parents=True, exist_ok=True)
    return args


# --- data --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: a cache key of the steps
class Data:
    """Train, test and optional validation images (``uint8`` NHWC) on the device.

    With the pixel statistics of the dataset. ``val``, when present, is
    disjoint from ``train`` (both from the train split): a study chooses its
    best arm on it and reports that arm's accuracy on ``test``, which took no
    part in the choice.
    """

    name: str
    train: jdata.DeviceData
    test: jdata.DeviceData
    mean: float
    std: float
    num_classes: int
    val: jdata.DeviceData | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])

    def batch(self, n: int, split: str = "train"):
        """The first `n` examples of `split` as ``(normalised float32 images, labels)``."""
        part = self.train if split == "train" else self.test
        images = jdata.normalize(part.images[:n], self.mean, self.std)
        return images, part.labels[:n]


def balanced_subset(labels, n: int, *, seed: int = 0) -> np.ndarray:
    """Indices of `n` examples, as many of each class as possible, chosen by `seed`.

    Each of the ``C`` classes gets ``n // C`` examples (the first ``n % C`` classes
    one more): the first ones of that class in a fixed permutation of the split
    (NumPy's PCG64 from `seed`, so the subset does not depend on the JAX version).
    The indices come back in permutation order, so classes are interleaved.
    """
    return balanced_subsets(labels, (n,), seed=seed)[0]


def balanced_subsets(labels, sizes: Sequence[int], *, seed: int = 0) -> list[np.ndarray]:
    """Disjoint class-balanced subsets of `sizes`, in one pass over the permutation.

    Walking `balanced_subset`'s permutation, each example goes to the first
    subset whose quota for its class is not full. So the first subset is
    exactly ``balanced_subset(labels, sizes[0], seed=seed)``, whatever the
    later ones: adding a validation set leaves the training set as it was.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    for n in sizes:
        if not 1 <= n <= len(labels):
            raise ValueError(
                f"balanced_subsets: each size must be in [1, {len(labels)}] (the examples "
                f"of `labels`), got {n} in `sizes` {tuple(sizes)}."
            )
    if sum(sizes) > len(labels):
        raise ValueError(
            f"balanced_subsets: `sizes` {tuple(sizes)} add up to {sum(sizes)}, more than "
            f"the {len(labels)} examples of `labels`."
        )
    perm = np.random.default_rng(seed).permutation(len(labels))
    quotas = [
        {c: n // len(classes) + (i < n % len(classes)) for i, c in enumerate(classes)}
        for n in sizes
    ]
    chosen = [[] for _ in sizes]
    for idx in perm:
        c = labels[idx]
        for quota, part in zip(quotas, chosen, strict=True):
            if quota[c]:
                quota[c] -= 1
                part.append(idx)
                break
        if all(len(part) == n for part, n in zip(chosen, sizes, strict=True)):
            break
    return [np.asarray(part) for part in chosen]


def load_data(
    train_size: int | None = None,
    test_size: int | None = None,
    *,
    val_size: int = 0,
    dataset: str = "fashion_mnist",
    seed: int = 0,
) -> Data:
    """`dataset` (default Fashion-MNIST) with class-balanced subsets, put on the device.

    None keeps the whole split. With `val_size` > 0 (and a `train_size`),
    ``Data.val`` holds `val_size` further training images, class-balanced and
    disjoint from ``Data.train``, which is the same subset as without them
    (`balanced_subsets`). The pixel statistics are those of the full train
    split (`jcnn.data.pixel_stats`), whatever the subset. Load once per study
    and pass the same `Data` to every `train_eval`: the compiled steps are
    cached per `Data` object.
    """
    if val_size < 0:
        raise ValueError(f"load_data: `val_size` must be >= 0, got {val_size}.")
    if val_size and train_size is None:
        raise ValueError("load_data: a `val_size` needs a `train_size` (the split is a subset).")
    parts = {}
    for split, size in (("train", train_size), ("test", test_size)):
        images, labels = jdata.load(dataset, split)
        if split == "train" and val_size:
            train_idx, val_idx = balanced_subsets(labels, (size, val_size), seed=seed)
            parts["val"] = jdata.to_device(images[val_idx], labels[val_idx])
            images, labels = images[train_idx], labels[train_idx]
        elif size is not None:
            idx = balanced_subset(labels, size, seed=seed)
            images, labels = images[idx], labels[idx]
        parts[split] = jdata.to_device(images, labels)
    mean, std = jdata.pixel_stats(dataset)
    num_classes = len(jdata.class_names(dataset))
    return Data(dataset, parts["train"], parts["test"], mean, std, num_classes, parts.get("val"))


# --- training ----------------------------------------------------------------------------


def _freeze(value):
    """A hashable copy of a config value (dicts -> sorted tuples, lists -> tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


# Schedules whose rate at every step is, to the bit, ``lr`` times the rate of the same
# schedule at lr = 1 with its other rates divided by ``lr``: optax computes them as
# ``init_value * shape(step)`` (tests/test_experiments_common.py checks it). For these
# the peak rate is a traced value, so a learning-rate sweep compiles one step; the
# others (warmup, step, one-cycle) keep their rate in the compiled step.
_PEAK_FACTORED = ("constant", "cosine", "exponential")
_RATE_KEYS = ("lr", "init_lr", "final_lr")
_WARMUP_KEYS = ("warmup_epochs", "warmup_steps")  # a constant schedule rejects them


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _split_peak_rate(optim: dict) -> tuple[dict, float]:
    """``(optim with its rates in units of the peak, the peak)`` when the schedule allows,
    else ``(optim, 1.0)``; a rate `make_optimizer` would reject is left for it to reject."""
    lr = optim.get("lr")
    valid = _is_number(lr) and 0 < lr < math.inf
    if not valid or (optim.get("schedule") or "constant") not in _PEAK_FACTORED:
        return optim, 1.0
    rates = {k: optim[k] / lr for k in _RATE_KEYS if _is_number(optim.get(k))}
    return {**optim, **rates}, float(lr)


class _PeakRateState(NamedTuple):
    count: jax.Array
    lr: jax.Array  # the peak rate: a traced input of the compiled step, not a constant


def _scale_by_peak_rate(shape: optax.Schedule) -> optax.GradientTransformation:
    """Multiplies the updates by ``lr * shape(count)``, with ``lr`` from the state.

    The product is the rate optax's schedules compute for a peak of ``lr``
    (``init_value * shape``) and it scales the updates once, as
    ``optax.scale_by_schedule`` does, so the steps are those of the plain chain.
    """

    def init(params):
        del params
        return _PeakRateState(jnp.zeros([], jnp.int32), jnp.ones([], jnp.float32))

    def update(updates, state, params=None):
        del params
        rate = state.lr * shape(state.count)
        updates = jax.tree.map(lambda u: jnp.asarray(rate, u.dtype) * u, updates)
        return updates, state._replace(count=optax.safe_increment(state.count))

    return optax.GradientTransformation(init, update)


def _with_peak_rate(opt_state, lr: float):
    """`_trainer`'s optimiser state with its peak rate set to `lr`."""
    base, peak = opt_state
    return base, peak._replace(lr=jnp.asarray(lr, jnp.float32))


@functools.cache
def _trainer(model, data: Data, steps_per_epoch, epochs, batch_size, optim, augment, padding, ls):
    """The optimiser and the jitted train and eval steps of one model and setting.

    The optimiser is `make_optimizer`'s chain at a constant rate of 1 (its last
    transformation then only flips the sign) followed by the schedule of
    `optim`, scaled by the peak rate held in the state (`_scale_by_peak_rate`).
    """
    cfg = dict(optim)
    rest = {k: v for k, v in cfg.items() if k not in ("schedule", *_WARMUP_KEYS)}
    base = joptim.make_optimizer(
        {**rest, "lr": 1.0}, steps_per_epoch=steps_per_epoch, num_epochs=epochs
    )
    shape = joptim.make_schedule(cfg, steps_per_epoch=steps_per_epoch, num_epochs=epochs)
    tx = optax.chain(base, _scale_by_peak_rate(shape))
    step = make_train_step(
        model,
        tx,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        augment_ops=augment,
        crop_padding=padding,
        label_smoothing=ls,
    )
    return tx, jax.jit(step, donate_argnums=0), _evaluator(model, data)


@functools.cache
def _evaluator(model, data: Data):
    eval_step = jax.jit(
        make_eval_step(model, num_classes=data.num_classes, mean=data.mean, std=data.std)
    )

    def evaluate(state, part: jdata.DeviceData) -> tuple[float, float]:
        n = int(part.labels.shape[0])
        idx, mask = jdata.eval_indices(n, min(EVAL_BATCH, n))
        sums = [eval_step(state, *jdata.take(part, idx[b]), mask[b]) for b in range(len(idx))]
        total = jax.tree.map(lambda *v: float(sum(v)), *sums)
        return total["correct"] / total["count"], total["loss"] / total["count"]

    return evaluate


def train_eval(
    model: nn.Module,
    data: Data,
    *,
    epochs: int,
    batch_size: int,
    optim: dict,
    seed: int,
    augment: Sequence[str] = (),
    crop_padding: int = 2,
    label_smoothing: float = 0.0,
    eval_every_epoch: bool = True,
    eval_train: bool = True,
    init_model: nn.Module | None = None,
    keep_variables: bool = False,
    check_every: int = 10,
) -> dict:
    """Trains `model` on ``data.train`` from `seed` and evaluates it on ``data.test``.

    And on ``data.val`` when the data has a validation set, at the same points.

    Args:
      model: a Flax module called as ``model.apply(variables, x, train=...)``.
      data: from `load_data`.
      epochs, batch_size: the budget; the remainder of each epoch is dropped
        and the order of epoch ``e`` is ``jcnn.data.batch_indices(seed, e, ...)``.
      optim: a `jcnn.optim.make_optimizer` config (a plain dict), e.g.
        ``{"name": "sgd", "lr": 0.01, "momentum": 0.9}`` or with a
        ``"schedule"``; the schedule spans ``epochs``. With a constant, cosine
        or exponential schedule the peak ``lr`` is an input of the compiled
        step, not part of it: a learning-rate sweep compiles once.
      seed: the initialisation key ``jax.random.key(seed)`` and the batch order.
      augment: `jcnn.data.OPS` applied on the device in each step (e.g.
        ``("crop", "flip")``), with `crop_padding`.
      label_smoothing: of the training loss.
      eval_every_epoch: evaluate on the test (and validation) set after every
        epoch (else once, at the end).
      eval_train: also measure the final accuracy on the whole train set in
        eval mode (the generalisation gap of regularisation studies).
      init_model: a module with the same parameter tree as `model` whose
        ``init`` draws the starting variables (e.g. the same network with
        another kernel initialiser); `model`'s compiled step is reused.
      keep_variables: add the final ``variables`` (not JSON) to the result.
      check_every: steps between checks of the loss: a non-finite loss stops
        the run, which is then recorded as diverged (not raised).

    Returns:
      A dict: ``test_accuracy`` and ``test_loss`` (per evaluated epoch),
      ``train_loss`` and ``grad_norm`` (per-epoch means over steps),
      ``train_loss_steps`` (every step), ``final_test_accuracy``,
      ``final_test_loss``, with a validation set ``val_accuracy`` (per
      evaluated epoch) and ``final_val_accuracy``, ``final_train_accuracy`` (None without
      `eval_train`), ``diverged``, ``diverged_at_step`` (the step whose check
      found the loss non-finite; None if none did), ``steps``, ``seed`` and
      ``wall_s`` (including any compile).
    """
    start = time.perf_counter()
    n = int(data.train.labels.shape[0])
    steps_per_epoch = jdata.steps_per_epoch(n, batch_size)
    unit_optim, lr = _split_peak_rate(dict(optim))
    tx, step, evaluate = _trainer(
        model,
        data,
        steps_per_epoch,
        epochs,
        batch_size,
        _freeze(unit_optim),
        tuple(augment),
        crop_padding,
        label_smoothing,
    )
    state = create_state(init_model or model, tx, jax.random.key(seed), data.input_shape)
    state = state.replace(opt_state=_with_peak_rate(state.opt_state, lr))
    out = {"seed": seed, "test_accuracy": [], "test_loss": [], "train_loss": [], "grad_norm": []}
    out["train_loss_steps"], diverged_at, steps = [], None, 0
    for epoch in range(epochs):
        order = jdata.batch_indices(seed, epoch, n, batch_size)
        metrics = []
        for b in range(steps_per_epoch):
            state, m = step(state, *jdata.take(data.train, order[b]))
            metrics.append(m)
            steps += 1
            if (b + 1) % check_every == 0 or b == steps_per_epoch - 1:
                if not math.isfinite(float(m["loss"])):
                    diverged_at = steps
                    break
        losses = np.asarray(jnp.stack([m["loss"] for m in metrics]), np.float64)
        grads = np.asarray(jnp.stack([m["grad_norm"] for m in metrics]), np.float64)
        out["train_loss_steps"] += losses.tolist()
        out["train_loss"].append(float(losses.mean()))
        out["grad_norm"].append(float(grads.mean()))
        last = epoch == epochs - 1 or diverged_at is not None
        if eval_every_epoch or last:
            accuracy, loss = evaluate(state, data.test)
            out["test_accuracy"].append(accuracy)
            out["test_loss"].append(loss)
            if data.val is not None:
                out.setdefault("val_accuracy", []).append(evaluate(state, data.val)[0])
        if diverged_at is not None:
            break
    out["final_test_accuracy"] = out["test_accuracy"][-1]
    out["final_test_loss"] = out["test_loss"][-1]
    if data.val is not None:
        out["final_val_accuracy"] = out["val_accuracy"][-1]
    out["final_train_accuracy"] = evaluate(state, data.train)[0] if eval_train else None
    out["diverged"], out["diverged_at_step"], out["steps"] = (
        diverged_at is not None,
        diverged_at,
        steps,
    )
    out["wall_s"] = time.perf_counter() - start
    if keep_variables:
        out["variables"] = state.variables
    return out


def run_seeds(model: nn.Module, data: Data, seeds, **train_eval_kwargs) -> dict:
    """`train_eval` of `model` from each of `seeds`, summarised as results.json reports an arm.

    `train_eval_kwargs` are `train_eval`'s (``epochs``, ``batch_size``,
    ``optim``, ...); every seed compiles nothing new. A study's row takes the
    keys it reports with `pick`.

    Returns:
      A dict. Per seed, lists in the order of `seeds`: ``test_accuracy`` and
      ``train_accuracy`` (final; None entries without `eval_train`),
      ``test_accuracy_epochs`` and ``train_loss_epochs`` (per evaluated
      epoch, per epoch), ``diverged_at_step``, and ``variables`` with
      ``keep_variables=True``. Over the seeds: ``test_accuracy_curve``,
      ``test_loss_curve`` and ``train_loss_curve`` (`mean_curve` of the
      per-epoch values), ``train_loss_steps_curve`` (the mean loss of every
      training step, up to the shortest run: a diverged run stops early),
      ``diverged`` (how many runs diverged) and ``wall_s`` (their total).
      With a validation set (``data.val``) also ``val_accuracy`` (final, per
      seed), ``val_accuracy_epochs`` and ``val_accuracy_curve``: choose on
      these, report ``test_accuracy``.
    """
    runs = [train_eval(model, data, seed=seed, **train_eval_kwargs) for seed in seeds]
    if not runs:
        raise ValueError("run_seeds: `seeds` is empty; give at least one seed.")
    steps = [r["train_loss_steps"] for r in runs]
    shortest = min(map(len, steps))
    out = {
        "test_accuracy": [r["final_test_accuracy"] for r in runs],
        "train_accuracy": [r["final_train_accuracy"] for r in runs],
        "test_accuracy_epochs": [r["test_accuracy"] for r in runs],
        "train_loss_epochs": [r["train_loss"] for r in runs],
        "diverged_at_step": [r["diverged_at_step"] for r in runs],
        "test_accuracy_curve": mean_curve([r["test_accuracy"] for r in runs]),
        "test_loss_curve": mean_curve([r["test_loss"] for r in runs]),
        "train_loss_curve": mean_curve([r["train_loss"] for r in runs]),
        "train_loss_steps_curve": np.mean([s[:shortest] for s in steps], 0).tolist(),
        "diverged": sum(r["diverged"] for r in runs),
        "wall_s": sum(r["wall_s"] for r in runs),
    }
    if data.val is not None:
        out["val_accuracy"] = [r["final_val_accuracy"] for r in runs]
        out["val_accuracy_epochs"] = [r["val_accuracy"] for r in runs]
        out["val_accuracy_curve"] = mean_curve(out["val_accuracy_epochs"])
    if train_eval_kwargs.get("keep_variables"):
        out["variables"] = [r["variables"] for r in runs]
    return out


def pick(summary: dict, *keys: str) -> dict:
    """The entries `keys` of `summary` (e.g. of `run_seeds`), in that order."""
    return {key: summary[key] for key in keys}


# --- networks ----------------------------------------------------------------------------


class PlainCNN(nn.Module):
    """A deep plain CNN: `depth` x (3x3 conv -> norm -> activation), pool, dense.

    Every conv has `width` output channels (times the maxout pieces) and stride
    1, except the layers listed in `downsample` (1-based), which have stride 2:
    the default ``(1, 2)`` takes a 28x28 input to 14x14 then 7x7, so convs 2 to
    `depth` all have the same kernel shape and the same number of output
    positions (their gradient norms compare like for like) and the whole net
    costs about as much as 6 convs at 28x28. Then global average pooling and a
    dense layer to the logits. Layers are named ``conv{i}``, ``norm{i}``,
    ``act{i}`` and ``head``.

    `parts` picks the norm (None: none, and the convs get a bias), the
    activation (maxout, PReLU and Swish included) and the kernel initialiser by
    name; a `kernel_init` callable (a `jcnn.init` initialiser, e.g.
    ``jcnn.init.normal(0.01)``) overrides it for every conv and the head.
    """

    depth: int = 20
    width: int = 16
    parts: Parts = Parts(norm=None)
    kernel_init: Callable | None = None
    downsample: tuple[int, ...] = (1, 2)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, *, train: bool):
        p = self.parts
        kernel_init = self.kernel_init or getattr(jinit, p.kernel_init)()
        for i in range(1, self.depth + 1):
            x = jnn.Conv2d(
                self.width * p.pieces,
                (3, 3),
                stride=2 if i in self.downsample else 1,
                padding="SAME_SYMMETRIC",
                use_bias=p.norm is None,
                kernel_init=kernel_init,
                name=f"conv{i}",
            )(x)
            x = p.normalize(x, train=train, name=f"norm{i}")
            x = p.activate(x, name=f"act{i}")
        x = jnp.mean(x, axis=(1, 2))
        return jnn.Dense(self.num_classes, kernel_init=kernel_init, name="head")(x)


class MLP(nn.Module):
    """Flatten, then `depth` x (dense `width` -> norm -> activation), then dense logits.

    Layers are named ``dense{i}``, ``norm{i}``, ``act{i}`` and ``head``; `parts`
    picks the norm, the activation and the kernel initialiser (by name).
    """

    depth: int = 32
    width: int = 256
    parts: Parts = Parts(norm=None, activation="selu", kernel_init="lecun_normal")
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, *, train: bool):
        p = self.parts
        x = x.reshape(x.shape[0], -1)
        for i in range(1, self.depth + 1):
            x = p.dense(x, self.width * p.pieces, name=f"dense{i}")
            x = p.normalize(x, train=train, name=f"norm{i}")
            x = p.activate(x, name=f"act{i}")
        return p.dense(x, self.num_classes, name="head")


def _layer_index(name: str) -> tuple[str, int]:
    match = re.fullmatch(r"(\D+)(\d+)", name)
    return (match[1], int(match[2])) if match else (name, 0)


def _forward(model, variables, x, train: bool, capture):
    mutable = ["intermediates"] if capture else []
    if train and "batch_stats" in variables:
        mutable.append("batch_stats")  # batch statistics, discarded
    return model.apply(
        variables, x, train=train, mutable=mutable or False, capture_intermediates=capture
    )


@functools.partial(jax.jit, static_argnames=("model", "prefixes", "train"))
def _captured(model, variables, x, prefixes: tuple[str, ...], train: bool):
    def wanted(module, method):
        return method == "__call__" and (module.name or "").startswith(prefixes)

    _, state = _forward(model, variables, x, train, wanted)
    return {name: v["__call__"][0] for name, v in state["intermediates"].items()}


def layer_outputs(model, variables, x, *, prefixes=("act",), train: bool = False) -> dict:
    """The outputs of the top-level layers whose names start with each of `prefixes`.

    Returns ``{prefix: [output of prefix1, prefix2, ...]}`` in layer order
    (by the number in the name). ``train=True`` runs BatchNorm on the batch
    statistics (the running ones are left untouched). One compile per model.
    """
    captured = _captured(model, variables, x, tuple(prefixes), train)
    out = {p: [] for p in prefixes}
    for name in sorted(captured, key=_layer_index):
        out[next(p for p in prefixes if name.startswith(p))].append(captured[name])
    return out


@functools.partial(jax.jit, static_argnames=("model", "num_classes", "train"))
def _param_grads(model, variables, x, labels, num_classes: int, train: bool):
    def loss(params):
        logits = _forward(model, dict(variables, params=params), x, train, False)
        logits = logits[0] if isinstance(logits, tuple) else logits
        return cross_entropy(logits, labels, num_classes=num_classes)

    return jax.grad(loss)(variables["params"])


def kernel_grad_norms(model, variables, x, labels, *, num_classes: int = 10, train=False):
    """``[(layer name, ||d loss / d kernel||_2)]`` for every top-level layer with a kernel.

    The loss is the mean cross-entropy of the batch ``(x, labels)`` (`x`
    normalised); layers are in order of the number in their names, the head
    last. One compile per model.
    """
    grads = _param_grads(model, variables, x, labels, num_classes, train)
    norms = {
        name: float(optax.tree.norm(leaf["kernel"]))
        for name, leaf in grads.items()
        if isinstance(leaf, dict) and "kernel" in leaf
    }
    order = sorted(norms, key=lambda n: (n == "head", _layer_index(n)[1]))
    return [(name, norms[name]) for name in order]


# --- statistics --------------------------------------------------------------------------


def array_std(x) -> float:
    """The population std of all entries of `x`, safe from float32 underflow.

    ``jnp.std`` squares the values: below ~1e-19 the squares flush to zero and
    a tiny but non-zero signal reads as std 0. Dividing by ``max |x|`` first
    keeps the squares in range.
    """
    x = jnp.asarray(x, jnp.float32)
    scale = jnp.max(jnp.abs(x))
    return float(scale * jnp.std(x / scale)) if float(scale) > 0 else 0.0


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; NaN for a single value)."""
    v = np.asarray(list(values), np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def fmt(mean: float, std: float, *, digits: int = 1, scale: float = 1.0) -> str:
    """``"mean ± std"`` with `digits` decimals after multiplying by `scale`
    (``scale=100`` for accuracies in %); a NaN std (one seed) prints as ``±  -``."""
    spread = "-" if math.isnan(std) else f"{std * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {spread}"


def compare(a, b) -> str:
    """``"tie"``, ``">"`` or ``"<"``: how the values `a` compare with the values `b`.

    A tie when the difference of the means is not larger than the spread, the
    sum of the two standard deviations (the ``mean ± std`` intervals overlap);
    with one value per side any difference counts.
    """
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    spread = np.nan_to_num(sa) + np.nan_to_num(sb)
    if abs(ma - mb) <= spread:
        return "tie"
    return ">" if ma > mb else "<"


# --- output ------------------------------------------------------------------------------


def mean_curve(curves) -> list[float]:
    """The mean over seeds of per-epoch curves, ignoring non-finite values: a diverged
    run's curve stops early, and its last training loss is NaN or inf."""
    out = np.full((len(curves), max(map(len, curves))), np.nan)
    for i, c in enumerate(curves):
        out[i, : len(c)] = c
    finite = [col[np.isfinite(col)] for col in out.T]
    return [float(np.mean(v)) if v.size else float("nan") for v in finite]


def downsample(curve, points: int) -> list[float]:
    """`curve` averaged over at most `points` equal windows (a per-step curve for the
    JSON and the plot); a curve that short already comes back as it is."""
    curve = np.asarray(curve, np.float64)
    if len(curve) <= points:
        return curve.tolist()
    return [float(w.mean()) for w in np.array_split(curve, points)]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub markdown table (cells converted with `str`)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line: CPU, core count, OS, Python, jax and jaxlib versions, backend."""
    return (
        f"{_cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, jax {jax.__version__}, "
        f"backend {jax.default_backend()}"
    )


def today() -> str:
    """The UTC date and time, ``YYYY-MM-DD HH:MM UTC``."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN / inf
    if isinstance(value, Path):
        return str(value)
    return value


def write_results(
    out, name: str, rows, markdown: str, *, meta: dict | None = None, wall_s=None
) -> tuple[Path, Path]:
    """Writes ``results.json`` and ``results.md`` into `out`.

    results.json: ``{"experiment", "date", "machine", "wall_s", "meta", "rows"}``
    (NaN and inf become null); results.md: a header line with the date, the
    machine and the wall time, then `markdown` (the tables the README pastes).
    """
    out = Path(out)
    stamp, host = today(), machine()
    record = {
        "experiment": name,
        "date": stamp,
        "machine": host,
        "wall_s": wall_s,
        "meta": meta or {},
        "rows": rows,
    }
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(_jsonable(record), indent=1) + "\n")
    wall = "" if wall_s is None else f", wall time {wall_s / 60:.1f} min"
    md_path.write_text(f"<!-- {name}: {stamp}, {host}{wall} -->\n\n{markdown.strip()}\n")
    return json_path, md_path


def figure(nrows: int = 1, ncols: int = 1, *, figsize=(6.0, 4.0)):
    """``(fig, axes)``: a pyplot-free matplotlib figure (Agg) and its 2-D axes array
    (integer ticks on the x axes)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers, epochs: whole numbers
    return fig, axes


def errorbar(ax, x, samples, **kwargs):
    """``ax.errorbar`` of the mean ± std, in %, of each list of accuracies in `samples`.

    One point per entry of `x`; a single seed (std NaN) draws no bar. `kwargs`
    go to matplotlib (``fmt``, ``marker``, ``color``, ``label``...);
    ``capsize`` defaults to 3.
    """
    stats = [mean_std(s) for s in samples]
    return ax.errorbar(
        list(x),
        [100 * m for m, _ in stats],
        yerr=[100 * np.nan_to_num(s) for _, s in stats],
        **{"capsize": 3, **kwargs},
    )


def savefig(fig, path, *, dpi: int = 100) -> Path:
    """Writes `fig` as a PNG (Agg renderer) and returns the path."""
    path = Path(path)
    fig.savefig(path, format="png", dpi=dpi)
    return path
