"""Deterministic, shardable batches drawn from a dataset held on the device.

**Epoch order.** Epoch ``e`` of a run with seed ``s`` visits the examples in
the order
``jax.random.permutation(jax.random.fold_in(jax.random.key(s), e), n)``
(`epoch_permutation`). It is a pure function of ``(s, e, n)``: recomputing it
after a restart gives the same batches, so a run resumed at global step
``t`` (`step_position`) sees exactly the batches it would have seen. The
order comes from JAX's threefry PRNG, whose results are by design the same
under `jit` and on every backend (JAX PRNG design, JEP 263); it is fixed for
a given JAX version (an upgrade that changes the PRNG changes the order).

**Batches.** Batch ``b`` of an epoch is ``perm[b * B : (b + 1) * B]``
(`batch_indices`). With ``drop_remainder=True`` (training) the last
``n mod B`` examples of the permutation are skipped, so each example is seen
at most once per epoch; with ``False`` the last batch is completed
cyclically from the start of the permutation.

**Processes.** For multi-host training each process passes its
``process_index`` and ``process_count``: it gets columns
``[p * B / P, (p + 1) * B / P)`` of every global batch, so the processes'
slices partition it (``B`` must be divisible by ``P``).

**Evaluation.** `eval_indices` covers ``0 .. n - 1`` once, in order; the last
batch is padded with index 0 and a boolean ``mask`` marks the real examples,
so a metric is ``sum(mask * correct) / sum(mask)`` with static batch shapes.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jcnn.functional._checks import check_int


class DeviceData(NamedTuple):
    """A dataset held on the device: ``images (N, H, W, C)`` and ``labels (N,)``."""

    images: jax.Array
    labels: jax.Array


def to_device(images, labels, device=None) -> DeviceData:
    """Puts `images` and `labels` on `device` (a device or sharding; default device if None)."""
    if np.shape(images)[:1] != np.shape(labels)[:1] or np.ndim(labels) != 1:
        raise ValueError(
            f"to_device: `images` {np.shape(images)} and `labels` {np.shape(labels)} must have "
            "the same leading size N, with labels of shape (N,)."
        )
    return DeviceData(*jax.device_put((images, labels), device))


def _check_seed(value, name: str, fn: str):
    """Python ints must fit threefry's uint32 seed/fold-in data; traced scalars pass through."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if not 0 <= value < 2**32:
            raise ValueError(f"{fn}: `{name}` must be an int in [0, 2**32), got {value!r}.")
        return np.uint32(value)
    if isinstance(value, jax.Array | np.ndarray) and value.ndim == 0:
        if jnp.issubdtype(value.dtype, jnp.integer):
            return value
    raise TypeError(
        f"{fn}: `{name}` must be a non-negative int (or integer scalar), got {value!r}."
    )


def _check_process(process_index, process_count, batch_size: int, fn: str) -> int:
    process_count = check_int(process_count, "process_count", fn)
    process_index = check_int(process_index, "process_index", fn, minimum=0)
    if process_index >= process_count:
        raise ValueError(
            f"{fn}: `process_index` must be in [0, process_count={process_count}), "
            f"got {process_index}."
        )
    if batch_size % process_count:
        raise ValueError(
            f"{fn}: global `batch_size`={batch_size} must be divisible by "
            f"process_count={process_count}."
        )
    return process_index * (batch_size // process_count)


def steps_per_epoch(n: int, batch_size: int, *, drop_remainder: bool = True) -> int:
    """Batches per epoch: ``n // batch_size``, or ``ceil(n / batch_size)`` without drop."""
    fn = "steps_per_epoch"
    n = check_int(n, "n", fn)
    batch_size = check_int(batch_size, "batch_size", fn)
    if drop_remainder and batch_size > n:
        raise ValueError(
            f"{fn}: `batch_size`={batch_size} exceeds the {n} examples, so drop_remainder=True "
            "leaves no batch; use a smaller batch_size or drop_remainder=False."
        )
    return n // batch_size if drop_remainder else -(-n // batch_size)


def step_position(step: int, n: int, batch_size: int, *, drop_remainder: bool = True):
    """The ``(epoch, batch index)`` of global step `step` (0-based): ``divmod(step, steps)``."""
    step = check_int(step, "step", "step_position", minimum=0)
    return divmod(step, steps_per_epoch(n, batch_size, drop_remainder=drop_remainder))


@functools.partial(jax.jit, static_argnums=2)
def _permutation(seed, epoch, n: int):
    key = jax.random.fold_in(jax.random.key(seed), epoch)
    return jax.random.permutation(key, n).astype(jnp.int32)


def epoch_permutation(seed, epoch, n: int) -> jax.Array:
    """The order, an int32 permutation of ``0 .. n - 1``, of epoch `epoch` under `seed`.

    ``jax.random.permutation(jax.random.fold_in(jax.random.key(seed), epoch), n)``;
    `seed` and `epoch` are ints in ``[0, 2**32)`` or traced integer scalars.
    """
    fn = "epoch_permutation"
    seed, epoch = _check_seed(seed, "seed", fn), _check_seed(epoch, "epoch", fn)
    return _permutation(seed, epoch, check_int(n, "n", fn))


def batch_indices(
    seed,
    epoch,
    n: int,
    batch_size: int,
    *,
    drop_remainder: bool = True,
    process_index: int = 0,
    process_count: int = 1,
) -> jax.Array:
    """This process's example indices for every batch of an epoch.

    Returns an int32 array ``(steps_per_epoch, batch_size // process_count)``:
    row ``b`` is this process's slice of global batch ``b`` (see the module
    docstring for the order, the remainder and the process slices).
    """
    fn = "batch_indices"
    steps = steps_per_epoch(n, batch_size, drop_remainder=drop_remainder)
    lo = _check_process(process_index, process_count, batch_size, fn)
    perm = epoch_permutation(seed, epoch, n)
    # jnp.resize repeats cyclically: it truncates (drop) or wraps around (no drop).
    batches = jnp.resize(perm, (steps, batch_size))
    return batches[:, lo : lo + batch_size // process_count]


def eval_indices(n: int, batch_size: int, *, process_index: int = 0, process_count: int = 1):
    """Indices and validity mask covering ``0 .. n - 1`` once, in order.

    Returns ``(indices, mask)``, int32 and bool arrays of shape
    ``(ceil(n / batch_size), batch_size // process_count)``; padded slots hold
    index 0 and ``mask`` False.
    """
    fn = "eval_indices"
    steps = steps_per_epoch(n, batch_size, drop_remainder=False)
    lo = _check_process(process_index, process_count, batch_size, fn)
    flat = np.arange(steps * batch_size).reshape(steps, batch_size)
    cols = slice(lo, lo + batch_size // process_count)
    mask = flat[:, cols] < n
    return jnp.asarray(np.where(mask, flat[:, cols], 0), jnp.int32), jnp.asarray(mask)


@jax.jit
def take(data: DeviceData, indices) -> tuple[jax.Array, jax.Array]:
    """Gathers ``(images[indices], labels[indices])`` on the device."""
    return data.images[indices], data.labels[indices]


def train_batches(
    data: DeviceData,
    seed,
    epoch,
    batch_size: int,
    *,
    start: int = 0,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator:
    """Yields ``(images, labels)`` for batches ``start ..`` of an epoch (remainder dropped).

    ``start`` resumes mid-epoch: with ``(epoch, start) = step_position(step, ...)``
    a restarted run continues with exactly the batch it would have drawn.
    """
    idx = batch_indices(
        seed,
        epoch,
        data.labels.shape[0],
        batch_size,
        process_index=process_index,
        process_count=process_count,
    )
    start = check_int(start, "start", "train_batches", minimum=0)
    for b in range(start, idx.shape[0]):
        yield take(data, idx[b])


def eval_batches(
    data: DeviceData, batch_size: int, *, process_index: int = 0, process_count: int = 1
) -> Iterator:
    """Yields ``(images, labels, mask)`` covering every example once (see `eval_indices`)."""
    idx, mask = eval_indices(
        data.labels.shape[0], batch_size, process_index=process_index, process_count=process_count
    )
    for b in range(idx.shape[0]):
        yield (*take(data, idx[b]), mask[b])
