"""Forward + backward time of the pooling formulations jcnn chooses between.

Run: ``python benchmarks/pooling.py [--repeats 50]``. Each case jits
``(x, g) -> (pool(x), vjp(g))`` (forward + backward), runs it once to compile (excluded), then
prints the median of `repeats` timed calls in ms and each formulation's time
relative to the jcnn path. Input: ``(32, 32, 32, 64)`` float32, NHWC.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jcnn.functional as F
from jcnn.functional import _pooling as P

SHAPE = (32, 32, 32, 64)
NO_PAD = ((0, 0), (0, 0))


def _fwd_bwd(pool):
    """jit of x, g -> (pool(x), g^T d pool / dx). The cotangent is an argument, not
    a constant, so XLA cannot constant-fold the backward pass of a linear pool."""

    def run(x, g):
        y, vjp = jax.vjp(pool, x)
        return y, vjp(g)[0]

    return jax.jit(run)


def _median_ms(variants: dict, x, repeats: int) -> dict[str, float]:
    """Median ms per variant. Calls are interleaved round-robin so that every
    variant sees the same machine load, which keeps the ratios honest."""
    runs = {}
    for name, pool in variants.items():
        g = np.random.default_rng(1).standard_normal(jax.eval_shape(pool, x).shape)
        runs[name] = (_fwd_bwd(pool), jnp.asarray(g, x.dtype))
        jax.block_until_ready(runs[name][0](x, runs[name][1]))  # compile + warm-up
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (fn, g) in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(x, g))
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def _adaptive_max_slices(x, out):
    """Peer: one slice + max per bin (the textbook loop)."""
    (h, w), (oh, ow) = x.shape[1:3], out
    hs, he = P._adaptive_bins(h, oh)
    ws, we = P._adaptive_bins(w, ow)
    rows = [
        jnp.stack(
            [jnp.max(x[:, a:b, c:d], axis=(1, 2)) for c, d in zip(ws, we, strict=True)],
            axis=1,
        )
        for a, b in zip(hs, he, strict=True)
    ]
    return jnp.stack(rows, axis=1)


def _adaptive_avg_slices(x, out):
    (h, w), (oh, ow) = x.shape[1:3], out
    hs, he = P._adaptive_bins(h, oh)
    ws, we = P._adaptive_bins(w, ow)
    rows = [
        jnp.stack(
            [jnp.mean(x[:, a:b, c:d], axis=(1, 2)) for c, d in zip(ws, we, strict=True)],
            axis=1,
        )
        for a, b in zip(hs, he, strict=True)
    ]
    return jnp.stack(rows, axis=1)


CASES = {
    "max_pool2d 2x2/2": {
        "jcnn (reshape + max, first-max JVP)": lambda x: F.max_pool2d(x, 2),
        "reduce_window (select_and_scatter)": lambda x: P._max_pool_reduce_window(
            x, (2, 2), (2, 2), NO_PAD
        ),
        "reshape + jnp.max (ties split)": lambda x: jnp.max(
            x.reshape(32, 16, 2, 16, 2, 64), axis=(2, 4)
        ),
    },
    "max_pool2d 3x3/2 SAME (overlapping)": {
        "jcnn (reduce_window)": lambda x: F.max_pool2d(x, 3, stride=2, padding="SAME"),
    },
    "avg_pool2d 2x2/2": {
        "jcnn (reshape + sum)": lambda x: F.avg_pool2d(x, 2),
        "reduce_window add": lambda x: P._sum_pool_reduce_window(x, (2, 2), (2, 2), NO_PAD) / 4,
    },
    "adaptive_avg_pool2d 32->7": {
        "jcnn (bin-matrix einsum)": lambda x: F.adaptive_avg_pool2d(x, 7),
        "per-bin slices": lambda x: _adaptive_avg_slices(x, (7, 7)),
    },
    "adaptive_max_pool2d 32->7": {
        "jcnn (gather W, H + first-max)": lambda x: F.adaptive_max_pool2d(x, 7),
        "per-bin slices": lambda x: _adaptive_max_slices(x, (7, 7)),
    },
    "adaptive_max_pool2d 32->8 (tiles)": {
        "jcnn (reshape + max)": lambda x: F.adaptive_max_pool2d(x, 8),
        "per-bin slices": lambda x: _adaptive_max_slices(x, (8, 8)),
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    x = jnp.asarray(np.random.default_rng(0).standard_normal(SHAPE), jnp.float32)
    print(
        f"backend={jax.default_backend()} input={SHAPE} float32, fwd+bwd, median of {args.repeats}"
    )
    for case, variants in CASES.items():
        print(f"\n{case}")
        times = _median_ms(variants, x, args.repeats)
        base = next(iter(times.values()))
        for name, ms in times.items():
            print(f"  {name:<40s} {ms:9.3f} ms   x{ms / base:6.2f} vs jcnn")


if __name__ == "__main__":
    main()
