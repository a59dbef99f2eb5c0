"""Where a train step's time goes on CPU: each convolution's forward, input gradient
and kernel gradient under XLA (jcnn) against oneDNN (PyTorch), next to the whole step.

    python benchmarks/conv_profile.py [--model resnet20] [--batch 128] [--repeats 10]
        [--rounds 2] [--frameworks jcnn,torch] [--quick]

The convolutions are read from the jcnn model itself: its train-mode forward
is traced (`jax.make_jaxpr`) and every ``conv_general_dilated`` is collected
with its shapes, strides, paddings, dilations and groups; identical ones are
counted once with their multiplicity. The JAX worker (with the XLA flags
``jcnn train`` sets, `jcnn._xla.YNN_FLAG`) times, for each, the jitted
forward, the input gradient and the kernel gradient (each a `jax.vjp` with
the cotangent as an argument) and, in the same process, the model's whole
train step (`benchmarks/models.py`'s worker). The PyTorch worker (2 threads,
channels_last) times the same convolutions through ``F.conv2d`` and
``aten.convolution_backward`` (input and kernel gradients asked for one at a
time) and its eager train step of the same architecture. Workers alternate
over `rounds`; figures are medians, first calls excluded.

Reading the output: the count-weighted sum of a framework's conv times is
what its convolutions would cost in a step if run one by one; the step time
minus that sum is everything else (norms, activations, pooling, loss,
optimiser, and the overlap XLA's fusion buys). The first convolution's input
gradient is not needed in training (its input is the image), so it is timed
but left out of the sums. An asymmetric padding (``SAME`` with stride 2) is
given to PyTorch as the symmetric one with the same output size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H
import models as M

from jcnn._xla import YNN_FLAG


def _convs(name: str, batch: int) -> list[dict]:
    """The model's convolutions, as plain dicts, identical ones merged with a count."""
    import jax
    import jax.numpy as jnp

    model = M.jcnn_model(name)
    shape = (batch, *M.MODELS[name][0])
    x = jnp.zeros(shape, jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x[:1], train=False))

    def forward(v, x):
        return model.apply(v, x, train=True, mutable=["batch_stats"])

    found: dict[str, dict] = {}

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                lhs, rhs = (v.aval.shape for v in eqn.invars)
                dn = eqn.params["dimension_numbers"]
                conv = {
                    "lhs": list(lhs),
                    "rhs": list(rhs),
                    "lhs_spec": list(dn.lhs_spec),
                    "rhs_spec": list(dn.rhs_spec),
                    "out_spec": list(dn.out_spec),
                    "strides": list(eqn.params["window_strides"]),
                    "padding": [list(p) for p in eqn.params["padding"]],
                    "lhs_dilation": list(eqn.params["lhs_dilation"]),
                    "rhs_dilation": list(eqn.params["rhs_dilation"]),
                    "groups": eqn.params["feature_group_count"],
                    "first": list(lhs) == list(shape),
                }
                key = json.dumps(conv, sort_keys=True)
                found.setdefault(key, dict(conv, count=0))["count"] += 1
            for sub in _subjaxprs(eqn.params.values()):
                walk(sub)

    walk(jax.make_jaxpr(forward)(variables, x).jaxpr)
    return list(found.values())


def _subjaxprs(values):
    """The jaxprs inside an equation's params (pjit, remat, custom_vjp, scan, cond ...)."""
    for v in values:
        if hasattr(v, "eqns"):
            yield v
        elif hasattr(v, "jaxpr") and hasattr(v.jaxpr, "eqns"):
            yield v.jaxpr
        elif isinstance(v, list | tuple):
            yield from _subjaxprs(v)


def _nchw(conv: dict) -> dict:
    """The conv in PyTorch's terms: sizes, stride, symmetric padding, dilation, groups."""
    lhs, rhs = conv["lhs"], conv["rhs"]
    n, c, *hw = (lhs[d] for d in conv["lhs_spec"])
    o, _, *k = (rhs[d] for d in conv["rhs_spec"])
    pads = []
    for size, kk, s, d, (lo, hi) in zip(
        hw, k, conv["strides"], conv["rhs_dilation"], conv["padding"], strict=True
    ):
        out = (size + lo + hi - d * (kk - 1) - 1) // s + 1
        sym = max(lo, hi)
        if (size + 2 * sym - d * (kk - 1) - 1) // s + 1 != out:
            sym = min(lo, hi)
        pads.append(sym)
    return {
        "n": n,
        "c": c,
        "hw": hw,
        "o": o,
        "k": k,
        "stride": conv["strides"],
        "padding": pads,
        "dilation": conv["rhs_dilation"],
        "groups": conv["groups"],
    }


def _flops(conv: dict) -> float:
    """Forward FLOPs (2 per multiply-add)."""
    import math

    from jcnn.functional import conv_output_size

    t = _nchw(conv)
    out = [
        conv_output_size(h, k, stride=s, padding=p, dilation=d)
        for h, p, d, k, s in zip(
            t["hw"], t["padding"], t["dilation"], t["k"], t["stride"], strict=True
        )
    ]
    return 2.0 * t["n"] * t["o"] * math.prod(out) * math.prod(t["k"]) * t["c"] / t["groups"]


def _interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds of each blocking callable, timed in turn so all see the same load."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k] += H.time_calls(fn, repeats=1)
    return {k: H.median(v) for k, v in times.items()}


def _time_jax_conv(conv: dict, rng, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    from jax import lax

    lhs = jnp.asarray(rng.standard_normal(conv["lhs"]), jnp.float32)
    rhs = jnp.asarray(rng.standard_normal(conv["rhs"]) * 0.1, jnp.float32)

    def op(lhs, rhs):
        return lax.conv_general_dilated(
            lhs,
            rhs,
            conv["strides"],
            [tuple(p) for p in conv["padding"]],
            conv["lhs_dilation"],
            conv["rhs_dilation"],
            lax.ConvDimensionNumbers(
                *(tuple(conv[k]) for k in ("lhs_spec", "rhs_spec", "out_spec"))
            ),
            conv["groups"],
        )

    g = jnp.asarray(rng.standard_normal(jax.eval_shape(op, lhs, rhs).shape), jnp.float32)
    fwd = jax.jit(op)
    dx = jax.jit(lambda lhs, rhs, g: jax.vjp(lambda a: op(a, rhs), lhs)[1](g)[0])
    dw = jax.jit(lambda lhs, rhs, g: jax.vjp(lambda b: op(lhs, b), rhs)[1](g)[0])
    return _interleaved(
        {
            "fwd": lambda: jax.block_until_ready(fwd(lhs, rhs)),
            "dx": lambda: jax.block_until_ready(dx(lhs, rhs, g)),
            "dw": lambda: jax.block_until_ready(dw(lhs, rhs, g)),
        },
        repeats,
    )


def jax_worker(spec: dict) -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    out = [_time_jax_conv(conv, rng, spec["repeats"]) for conv in spec["convs"]]
    step = M.jax_worker(dict(spec["step"], framework="jcnn"))
    return {"convs": out, "step_s": H.median(step["train_s"])}


def torch_worker(spec: dict) -> dict:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    torch.manual_seed(0)
    cl = torch.channels_last
    out = []
    for conv in spec["convs"]:
        t = _nchw(conv)
        x = torch.randn(t["n"], t["c"], *t["hw"]).contiguous(memory_format=cl)
        w = torch.randn(t["o"], t["c"] // t["groups"], *t["k"]).contiguous(memory_format=cl)
        args = (t["stride"], t["padding"], t["dilation"])
        y = F.conv2d(x, w, None, *args, t["groups"])
        g = torch.randn_like(y).contiguous(memory_format=cl)

        def grad(mask, x=x, w=w, g=g, args=args, groups=t["groups"]):
            return torch.ops.aten.convolution_backward(
                g, x, w, None, *args, False, [0, 0], groups, mask
            )

        with torch.no_grad():
            out.append(
                _interleaved(
                    {
                        "fwd": lambda x=x, w=w, a=args, gr=t["groups"]: F.conv2d(
                            x, w, None, *a, gr
                        ),
                        "dx": lambda grad=grad: grad([True, False, False]),
                        "dw": lambda grad=grad: grad([False, True, False]),
                    },
                    spec["repeats"],
                )
            )
    step = M.torch_worker(dict(spec["step"], framework="torch"))
    return {"convs": out, "step_s": H.median(step["train_s"])}


def worker(spec: dict) -> dict:
    if spec["framework"] == "discover":
        return {"convs": _convs(spec["model"], spec["batch"])}
    return torch_worker(spec) if spec["framework"] == "torch" else jax_worker(spec)


def _describe(conv: dict) -> str:
    t = _nchw(conv)
    hw = "x".join(map(str, t["hw"]))
    k = "x".join(map(str, t["k"]))
    s = "" if set(t["stride"]) == {1} else f" s{t['stride'][0]}"
    g = "" if t["groups"] == 1 else f" g{t['groups']}"
    return f"{hw}x{t['c']} -> {t['o']}, {k}{s}{g}"


def report(convs: list[dict], runs: dict, step_spec: dict) -> str:
    frameworks = list(runs)
    med = {
        f: [
            {p: H.median([r["convs"][i][p] for r in runs[f]]) for p in ("fwd", "dx", "dw")}
            for i in range(len(convs))
        ]
        for f in frameworks
    }
    cols = ["conv (input -> output)", "count", "GFLOP fwd"]
    for f in frameworks:
        cols += [f"{f} fwd ms", "dx ms", "dw ms"]
    if len(frameworks) == 2:
        cols.append(f"{frameworks[0]} / {frameworks[1]}")
    rows, totals = [], {f: {"fwd": 0.0, "dx": 0.0, "dw": 0.0} for f in frameworks}
    for i, conv in enumerate(convs):
        row = [_describe(conv) + (" (first)" if conv["first"] else ""), conv["count"]]
        row.append(_flops(conv) / 1e9)
        sums = {}
        for f in frameworks:
            m = med[f][i]
            row += [1e3 * m["fwd"], 1e3 * m["dx"], 1e3 * m["dw"]]
            for p in ("fwd", "dx", "dw"):
                if not (p == "dx" and conv["first"]):
                    totals[f][p] += conv["count"] * m[p]
            sums[f] = m["fwd"] + m["dw"] + (0 if conv["first"] else m["dx"])
        if len(frameworks) == 2:
            row.append(f"x{sums[frameworks[0]] / sums[frameworks[1]]:.2f}")
        rows.append(row)
    lines = [H.markdown_table(cols, rows), ""]
    step_cols = ["", "convs fwd ms", "dx ms", "dw ms", "convs total ms", "train step ms", "rest ms"]
    step_rows = []
    for f in frameworks:
        t = totals[f]
        conv_total = sum(t.values())
        step = H.median([r["step_s"] for r in runs[f]])
        step_rows.append(
            [
                f,
                1e3 * t["fwd"],
                1e3 * t["dx"],
                1e3 * t["dw"],
                1e3 * conv_total,
                1e3 * step,
                1e3 * (step - conv_total),
            ]
        )
    lines += [
        f"Sums weighted by count; batch {step_spec['batch']}; the step is `benchmarks/models.py`'s "
        "(SGD momentum, a fixed batch).",
        "",
        H.markdown_table(step_cols, step_rows),
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet20", choices=sorted(M.MODELS))
    parser.add_argument("--batch", type=int, default=None, help="default: the model's")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per op and worker")
    parser.add_argument("--steps", type=int, default=5, help="train steps per timed sample")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--frameworks", default="jcnn,torch", help="jcnn and/or torch")
    parser.add_argument("--quick", action="store_true", help="tiny settings, for a test")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.quick:
        args.batch, args.repeats, args.steps, args.rounds = args.batch or 2, 1, 1, 1
    batch = args.batch or M.MODELS[args.model][1]
    print(H.header("python " + " ".join(sys.argv)))
    print()
    spec = {"framework": "discover", "model": args.model, "batch": batch}
    convs = H.run_worker(__file__, ["--worker", json.dumps(spec)])["convs"]
    frameworks = [f for f in ("jcnn", "torch") if f in args.frameworks.split(",")]
    if "torch" in frameworks and not H.torch_available():
        frameworks.remove("torch")
        print("torch is not installed: timing jcnn only")
    step_spec = {
        "model": args.model,
        "batch": batch,
        "steps": args.steps,
        "repeats": max(1, args.repeats // 3),
    }
    runs = {f: [] for f in frameworks}
    for _ in range(args.rounds):
        for f in frameworks:
            spec = {"framework": f, "convs": convs, "repeats": args.repeats, "step": step_spec}
            flags = YNN_FLAG if f == "jcnn" else ""
            runs[f].append(H.run_worker(__file__, ["--worker", json.dumps(spec)], xla_flags=flags))
    print(f"- load average after: {H.loadavg()}")
    print()
    print(report(convs, runs, step_spec))


if __name__ == "__main__":
    main()
