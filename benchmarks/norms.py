"""Forward + backward time of group norm relative to batch norm.

    python benchmarks/norms.py [--shape 32,32,32,64] [--groups 32] [--dtype float32]

Times one jitted forward + backward step (``jax.vjp``: the output, then the
gradients of x, scale and bias for a fixed cotangent) of

* ``batch_norm``: `jcnn.functional.batch_norm`, train mode;
* ``group_norm before``: the textbook formulation, two-pass mean and variance
  of an ``(N, H, W, G, C/G)`` reshape, then normalise, then scale and bias;
* ``group_norm after``: `jcnn.functional.group_norm`;
* ``group_norm unshifted`` (for information): jcnn's formulation with
  ``E[x^2] - E[x]^2`` instead of pivot-shifted sums. It skips materialising
  the shifted input on XLA:CPU but loses the variance in float32 when
  ``|mean| >> std``, which is why jcnn does not use it;

and prints the median milliseconds and the GN/BN ratio before and after.
Compilation and a warm-up call are excluded; the functions are timed in
interleaved rounds so that load from other processes hits all of them alike,
and each reported time is the median over all rounds and repeats, in wall
time and in process CPU time (all threads).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jcnn.functional as F


def group_norm_before(x, scale, bias, *, num_groups, eps=1e-5):
    """The textbook group norm: 5-D reshape, two-pass moments, normalise, affine."""
    n, h, w, c = x.shape
    xg = x.reshape(n, h, w, num_groups, c // num_groups)
    mean = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = jnp.square(xg - mean).mean(axis=(1, 2, 4), keepdims=True)
    return ((xg - mean) / jnp.sqrt(var + eps)).reshape(x.shape) * scale + bias


def group_norm_unshifted(x, scale, bias, *, num_groups, eps=1e-5):
    """jcnn's formulation with one-pass E[x^2] - E[x]^2 instead of shifted sums."""
    _, h, w, c = x.shape
    xf = x.astype(jnp.float32)
    count = h * w * (c // num_groups)
    onehot = jnp.asarray(np.repeat(np.eye(num_groups), c // num_groups, axis=1), jnp.float32)
    hi = jax.lax.Precision.HIGHEST
    mean = jnp.dot(xf.sum((1, 2)), onehot.T, precision=hi) / count
    var = jnp.dot((xf * xf).sum((1, 2)), onehot.T, precision=hi) / count - mean * mean
    a = jnp.dot(jax.lax.rsqrt(jnp.maximum(var, 0) + eps), onehot, precision=hi) * scale
    b = bias - jnp.dot(mean, onehot, precision=hi) * a
    return (xf * a[:, None, None, :] + b[:, None, None, :]).astype(x.dtype)


def forward_backward(norm):
    """A jitted step returning the output, any aux outputs and the three gradients."""

    def step(x, scale, bias, cotangent):
        y, vjp, aux = jax.vjp(norm, x, scale, bias, has_aux=True)
        return y, aux, vjp(cotangent)

    return jax.jit(step)


def time_interleaved(steps: dict, args, rounds: int, repeats: int) -> dict:
    """Median wall and process-CPU milliseconds per call of each step.

    CPU time (all threads) is less disturbed than wall time when other
    processes share the cores, so both are reported.
    """
    for step in steps.values():  # compile + warm up
        jax.block_until_ready(step(*args))
        jax.block_until_ready(step(*args))
    wall = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for _ in range(repeats):
                w, c = time.perf_counter(), time.process_time()
                jax.block_until_ready(step(*args))
                wall[name].append(time.perf_counter() - w)
                cpu[name].append(time.process_time() - c)
    return {name: (1e3 * np.median(wall[name]), 1e3 * np.median(cpu[name])) for name in steps}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="32,32,32,64", help="N,H,W,C")
    parser.add_argument("--groups", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    dtype = jnp.dtype(args.dtype)
    c, g = shape[-1], args.groups

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape), dtype)
    cotangent = jnp.asarray(rng.standard_normal(shape), dtype)
    scale = jnp.asarray(rng.uniform(0.5, 1.5, c), jnp.float32)
    bias = jnp.asarray(rng.standard_normal(c), jnp.float32)
    mean, var = jnp.zeros(c), jnp.ones(c)

    def bn(x, s, b):
        return F.batch_norm(x, s, b, mean, var, train=True)

    def gn_before(x, s, b):
        return group_norm_before(x, s, b, num_groups=g).astype(x.dtype), ()

    def gn_after(x, s, b):
        return F.group_norm(x, s, b, num_groups=g), ()

    def gn_unshifted(x, s, b):
        return group_norm_unshifted(x, s, b, num_groups=g), ()

    steps = {
        "batch_norm": forward_backward(bn),
        "group_norm before": forward_backward(gn_before),
        "group_norm after": forward_backward(gn_after),
        "group_norm unshifted": forward_backward(gn_unshifted),
    }
    # Same function: compare outputs and gradients with the before formulation.
    call = (x, scale, bias, cotangent)
    before = jax.tree_util.tree_leaves(steps["group_norm before"](*call))
    rel_diff = {}
    for name in ("group_norm after", "group_norm unshifted"):
        after = jax.tree_util.tree_leaves(steps[name](*call))
        rel_diff[name] = max(
            float(jnp.max(jnp.abs(u.astype(jnp.float32) - v.astype(jnp.float32))))
            / float(jnp.max(jnp.abs(u.astype(jnp.float32))))
            for u, v in zip(before, after, strict=True)
        )

    # Accuracy when |mean| >> std (mean 1e3, std 1), against float64 NumPy.
    x_far = rng.standard_normal((4, 8, 8, c)) + 1e3
    grouped = x_far.reshape(4, 8, 8, g, c // g)
    g_mean, g_var = grouped.mean((1, 2, 4), keepdims=True), grouped.var((1, 2, 4), keepdims=True)
    exact = ((grouped - g_mean) / np.sqrt(g_var + 1e-5)).reshape(x_far.shape)
    ones, zeros = jnp.ones(c), jnp.zeros(c)
    far_err = {
        name: float(
            np.max(
                np.abs(np.asarray(norm(jnp.asarray(x_far, jnp.float32), ones, zeros)[0]) - exact)
            )
        )
        for name, norm in (("group_norm after", gn_after), ("group_norm unshifted", gn_unshifted))
    }

    ms = time_interleaved(steps, call, args.rounds, args.repeats)
    print(
        f"forward+backward, x {shape} {args.dtype}, groups={g}, backend "
        f"{jax.default_backend()} ({jax.device_count()} device), "
        f"median of {args.rounds}x{args.repeats} calls"
    )
    bn_wall, bn_cpu = ms["batch_norm"]
    print(f"  {'':<21} {'wall ms':>8} {'GN/BN':>6}  {'cpu ms':>8} {'GN/BN':>6}")
    for name, (wall, cpu) in ms.items():
        agree = f"  (max rel. diff to before {rel_diff[name]:.1e})" if name in rel_diff else ""
        print(
            f"  {name:<21} {wall:8.2f} {wall / bn_wall:5.2f}x  "
            f"{cpu:8.2f} {cpu / bn_cpu:5.2f}x{agree}"
        )
    for name, err in far_err.items():
        print(f"  {name}: max abs error at mean 1e3, std 1 (float32): {err:.1e}")
    for clock, i in (("wall", 0), ("cpu", 1)):
        before = ms["group_norm before"][i] / ms["batch_norm"][i]
        after = ms["group_norm after"][i] / ms["batch_norm"][i]
        print(f"GN/BN ({clock}): before {before:.2f}x, after {after:.2f}x")


if __name__ == "__main__":
    main()
