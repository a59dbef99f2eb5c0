"""Forward + backward GFLOP/s of jcnn's primitives against the machine's ceilings.

    python benchmarks/primitives.py [--repeats 20] [--rounds 2] [--quick]

Each case jits ``(args, g) -> (op(args), vjp(g))`` (the cotangent is an argument,
so XLA cannot fold the backward pass), compiles and runs it once (excluded),
then times it; the median over `rounds` x `repeats` calls is reported. Each
XLA flag setting (YNNPACK off as ``jcnn train`` runs, and jaxlib's default,
on) runs in its own subprocess, alternating over rounds. Next to each jcnn op
runs its peer, the formulation a plain Flax user gets (``lax.conv`` as
``flax.linen.Conv`` calls it, ``flax.linen.max_pool`` / ``avg_pool``
(reduce_window), ``flax.linen.BatchNorm`` / ``GroupNorm``); "peer/jcnn" > 1
means jcnn is faster.

What is counted (per call, forward + backward):

* conv: 2 FLOPs per multiply-add of the forward conv, times 3 (the input
  gradient and the kernel gradient each cost one forward's MACs);
* pools: 1 op per input element forward (a compare or an add) and 1 per input
  element backward (the input gradient), i.e. 2 x input elements;
* norms: 15 ops per element (forward: sum and sum of squares 3, normalise +
  affine 4; backward: scale/bias gradient sums 3, input gradient 5), a
  nominal count: these ops are memory-bound;
* bytes: the minimum float32 traffic, 4 x (forward: read x, write y;
  backward: read x and g, write dx) = 20 bytes per input element for pools
  and norms (pools write a smaller y; counted at input size for simplicity).

The ceilings are measured in the same process: float32 matmul GFLOP/s of a
2048x2048 ``jnp.dot`` and the streaming GB/s of ``2 * a + 1`` on 64 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H

FLAGS = {"ynn off": H.YNN_OFF, "ynn on": ""}


def _cases(quick: bool):
    """name -> (shape description, arrays builder, jcnn op, peer op, FLOPs, bytes)."""
    from functools import partial

    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jcnn.functional as F

    n = 2 if quick else 128
    rng = np.random.default_rng(0)

    def arr(*shape):
        return jnp.asarray(rng.standard_normal(shape), jnp.float32)

    def lax_conv(x, k, groups=1):
        return jax.lax.conv_general_dilated(
            x,
            k,
            (1, 1),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=groups,
        )

    cases = {}

    def conv(name, h, c, o, k, groups=1):
        macs = n * h * h * o * k * k * (c // groups)
        cases[name] = (
            f"{n}x{h}x{h}x{c} -> {o}, {k}x{k}" + (f", groups {groups}" if groups > 1 else ""),
            (arr(n, h, h, c), arr(k, k, c // groups, o)),
            partial(F.conv2d, groups=groups),
            partial(lax_conv, groups=groups),
            3 * 2 * macs,
            4 * (2 * n * h * h * c + 2 * n * h * h * o),
        )

    conv("conv 3x3", 16, 32, 32, 3)
    conv("conv 3x3 (64 ch)", 8, 64, 64, 3)
    conv("conv 1x1", 16, 64, 64, 1)
    conv("depthwise 3x3", 16, 64, 64, 3, groups=64)

    h, c = 32, 32
    elems = n * h * h * c
    x = arr(n, h, h, c)
    cases["max pool 2x2"] = (
        f"{n}x{h}x{h}x{c}",
        (x,),
        lambda x: F.max_pool2d(x, 2),
        lambda x: nn.max_pool(x, (2, 2), (2, 2)),
        2 * elems,
        20 * elems,
    )
    cases["avg pool 2x2"] = (
        f"{n}x{h}x{h}x{c}",
        (x,),
        lambda x: F.avg_pool2d(x, 2),
        lambda x: nn.avg_pool(x, (2, 2), (2, 2)),
        2 * elems,
        20 * elems,
    )
    cases["global mean pool"] = (
        f"{n}x{h}x{h}x{c}",
        (x,),
        F.global_avg_pool,
        lambda x: x.mean(axis=(1, 2)),
        2 * elems,
        20 * elems,
    )
    scale, bias = arr(c) + 1.0, arr(c)
    mean, var = jnp.zeros(c), jnp.ones(c)
    bn = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
    bn_vars = {"params": {"scale": scale, "bias": bias},
               "batch_stats": {"mean": mean, "var": var}}  # fmt: skip
    gn = nn.GroupNorm(num_groups=8, epsilon=1e-5)
    cases["batch norm (train)"] = (
        f"{n}x{h}x{h}x{c}",
        (x, scale, bias),
        lambda x, s, b: F.batch_norm(x, s, b, mean, var, train=True)[0],
        lambda x, s, b: bn.apply(
            {**bn_vars, "params": {"scale": s, "bias": b}}, x, mutable=["batch_stats"]
        )[0],
        15 * elems,
        20 * elems,
    )
    cases["group norm (8 groups)"] = (
        f"{n}x{h}x{h}x{c}",
        (x, scale, bias),
        lambda x, s, b: F.group_norm(x, s, b, num_groups=8),
        lambda x, s, b: gn.apply({"params": {"scale": s, "bias": b}}, x),
        15 * elems,
        20 * elems,
    )
    return cases


def _fwd_bwd(op):
    import jax

    def run(args, g):
        y, vjp = jax.vjp(op, *args)
        return y, vjp(g)

    return jax.jit(run)


def worker(spec: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    repeats, quick = spec["repeats"], spec["quick"]
    out = {"cases": {}, "meta": {}}
    m = 256 if quick else 2048
    a = jnp.asarray(np.random.default_rng(0).standard_normal((m, m)), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, a).block_until_ready()
    out["matmul_gflops"] = (
        2 * m**3 / H.median(H.time_calls(lambda: dot(a, a).block_until_ready(), repeats=7)) / 1e9
    )
    s = jnp.ones((1 << 12 if quick else 1 << 24,), jnp.float32)
    stream = jax.jit(lambda v: 2 * v + 1)
    stream(s).block_until_ready()
    out["stream_gbs"] = (
        8 * s.size / H.median(H.time_calls(lambda: stream(s).block_until_ready(), repeats=7)) / 1e9
    )
    for name, (shape, args, op, peer, flops, nbytes) in _cases(quick).items():
        out["meta"][name] = (shape, flops, nbytes)
        g = jnp.ones(jax.eval_shape(op, *args).shape, jnp.float32)
        fns = {"jcnn": _fwd_bwd(op), "peer": _fwd_bwd(peer)}
        for fn in fns.values():
            jax.block_until_ready(fn(args, g))
        times = {k: [] for k in fns}
        for _ in range(repeats):  # interleaved: both see the same load
            for k, fn in fns.items():
                times[k] += H.time_calls(
                    lambda fn=fn, args=args, g=g: jax.block_until_ready(fn(args, g)), repeats=1
                )
        out["cases"][name] = times
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for a test")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.quick:
        args.repeats, args.rounds = 2, 1
    print(H.header("python " + " ".join(sys.argv)))
    spec = json.dumps({"repeats": args.repeats, "quick": args.quick})
    runs = {k: [] for k in FLAGS}
    for _ in range(args.rounds):
        for k, flags in FLAGS.items():
            runs[k].append(H.run_worker(__file__, ["--worker", spec], xla_flags=flags))
    matmul = max(r["matmul_gflops"] for rs in runs.values() for r in rs)
    stream = max(r["stream_gbs"] for rs in runs.values() for r in rs)
    print(f"- load average after: {H.loadavg()}")
    print(
        f"- ceilings: float32 matmul {matmul:.0f} GFLOP/s, stream {stream:.1f} GB/s "
        f"(max over workers; per flag: "
        + "; ".join(
            f"{k} {H.median([r['matmul_gflops'] for r in rs]):.0f} GFLOP/s "
            f"{H.median([r['stream_gbs'] for r in rs]):.1f} GB/s"
            for k, rs in runs.items()
        )
        + ")\n"
    )
    rows = []
    for name, (shape, flops, nbytes) in runs["ynn off"][0]["meta"].items():
        row = [name, shape]
        for k in FLAGS:
            t = {
                w: H.median([s for r in runs[k] for s in r["cases"][name][w]])
                for w in ("jcnn", "peer")
            }
            gflops = flops / t["jcnn"] / 1e9
            row += [
                1e3 * t["jcnn"],
                gflops,
                f"{100 * gflops / matmul:.0f}%",
                f"{100 * nbytes / t['jcnn'] / 1e9 / stream:.0f}%",
                f"x{t['peer'] / t['jcnn']:.2f}",
            ]
        rows.append(row)
    cols = ["op (fwd+bwd)", "shape"]
    for k in FLAGS:
        cols += [f"{k}: ms", "GFLOP/s", "of matmul", "of stream", "peer/jcnn"]
    print(H.markdown_table(cols, rows))


if __name__ == "__main__":
    main()
