"""Synced batch norm on 8 fake CPU devices; run by test_sync_batch_norm.py.

Needs ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` set before jax
starts, hence its own process. Checks that `batch_norm` with `axis_name`
under ``shard_map`` and ``pmap`` equals `batch_norm` on the global batch on
one device (y and running statistics), with and without a mask that leaves
the devices different numbers of valid examples. Prints every comparison and
exits 1 if any fails.
"""

from __future__ import annotations

import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

import jcnn.functional as F
from tests.util import tol

try:
    shard_map = jax.shard_map
except AttributeError:  # jax < 0.7 spelling
    from jax.experimental.shard_map import shard_map

DEVICES, PER_DEVICE, C = 8, 3, 3
VALID_PER_DEVICE = (3, 1, 2, 0, 3, 1, 1, 2)  # uneven, one device with none
FAILURES: list[str] = []


def compare(label, actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    err = float(np.max(np.abs(actual - expected)))
    ok = np.allclose(actual, expected, **tol(jnp.float32))
    print(f"{'ok  ' if ok else 'FAIL'} {label}: max abs diff {err:.3g}")
    if not ok:
        FAILURES.append(label)


def main() -> int:
    if jax.device_count() != DEVICES:
        print(f"FAIL expected {DEVICES} devices, got {jax.devices()}")
        return 1
    rng = np.random.default_rng(0)
    device_of_row = np.repeat(np.arange(DEVICES), PER_DEVICE)
    # A different offset per device, so per-device means differ from the global one.
    x = (
        rng.standard_normal((DEVICES * PER_DEVICE, 2, 2, C))
        + 2.0 * device_of_row[:, None, None, None]
    )
    x = jnp.asarray(x, jnp.float32)
    mask = np.concatenate([np.arange(PER_DEVICE) < k for k in VALID_PER_DEVICE])
    scale = jnp.asarray(rng.uniform(0.5, 1.5, C), jnp.float32)
    bias = jnp.asarray(rng.standard_normal(C), jnp.float32)
    mean = jnp.asarray(rng.standard_normal(C), jnp.float32)
    var = jnp.asarray(rng.uniform(0.5, 2.0, C), jnp.float32)
    params = (scale, bias, mean, var)

    # The masked case is not trivial: the mean of per-device means is wrong.
    x64 = np.asarray(x, np.float64)
    global_mean = x64[mask].mean((0, 1, 2))
    holders = [d for d in range(DEVICES) if VALID_PER_DEVICE[d]]
    mean_of_means = np.mean(
        [x64[(device_of_row == d) & mask].mean((0, 1, 2)) for d in holders], axis=0
    )
    gap = float(np.min(np.abs(mean_of_means - global_mean)))
    print(f"mean of per-device means differs from the global mean by >= {gap:.3f}")
    if gap < 0.1:
        FAILURES.append("mask case is trivial")

    one_device = jax.jit(partial(F.batch_norm, train=True))
    mesh = Mesh(np.array(jax.devices()), ("data",))
    cases = {"no mask": None, "uneven mask": jnp.asarray(mask)}
    for name, m in cases.items():
        y_ref, (mean_ref, var_ref) = one_device(x, *params, mask=m)

        def step(x, scale, bias, mean, var, m, masked=m is not None):
            return F.batch_norm(
                x, scale, bias, mean, var, train=True, axis_name="data", mask=m if masked else None
            )

        m_in = jnp.ones(x.shape[0], bool) if m is None else m
        sharded = jax.jit(
            shard_map(
                step,
                mesh=mesh,
                in_specs=(P("data"), P(), P(), P(), P(), P("data")),
                out_specs=(P("data"), (P(), P())),
            )
        )
        y, (new_mean, new_var) = sharded(x, *params, m_in)
        compare(f"shard_map {name}: y", y, y_ref)
        compare(f"shard_map {name}: running mean", new_mean, mean_ref)
        compare(f"shard_map {name}: running var", new_var, var_ref)

        pmapped = jax.pmap(step, axis_name="data", in_axes=(0, None, None, None, None, 0))
        y, (new_mean, new_var) = pmapped(
            x.reshape(DEVICES, PER_DEVICE, *x.shape[1:]), *params, m_in.reshape(DEVICES, -1)
        )
        compare(f"pmap {name}: y", y.reshape(x.shape), y_ref)
        # Every device must hold the same (global) running statistics.
        compare(f"pmap {name}: running mean", new_mean, np.broadcast_to(mean_ref, new_mean.shape))
        compare(f"pmap {name}: running var", new_var, np.broadcast_to(var_ref, new_var.shape))

    if FAILURES:
        print("FAILED:", "; ".join(FAILURES))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
