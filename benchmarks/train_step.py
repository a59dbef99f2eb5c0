"""Train-step throughput of a config's model, with and without YNNPACK on XLA:CPU.

Run: ``python benchmarks/train_step.py [--config default] [--steps 20] [--ynn eltwise+reduce]``.
Each variant runs in its own subprocess (XLA reads ``XLA_FLAGS`` once, when
the backend starts): one jitted, donated train step of the config (its
model, optimiser, augmentation and batch size) on real batches, the first
(compiling) step excluded, then the mean over `steps` steps. Variants
alternate over `rounds` so they share the machine's load; the ratio is the
figure, the absolute times depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time
import jax
from jcnn import configs
from jcnn import data as jdata
from jcnn.train.loop import build, initial_state
from jcnn.train.step import make_train_step

config, steps = sys.argv[1], int(sys.argv[2])
c = configs.get(config)
run = build(c, quiet=True)
state = initial_state(run)
step = jax.jit(make_train_step(run.model, run.tx, num_classes=10, mean=run.mean, std=run.std,
                               augment_ops=tuple(c.data.augment),
                               crop_padding=c.data.crop_padding), donate_argnums=0)
order = jdata.batch_indices(0, 0, len(run.train.labels), c.data.batch_size)
t = time.perf_counter()
state, m = step(state, *jdata.take(run.train, order[0]))
jax.block_until_ready(m)
compile_s = time.perf_counter() - t
t = time.perf_counter()
for b in range(1, steps + 1):
    state, m = step(state, *jdata.take(run.train, order[b]))
jax.block_until_ready(m)
dt = (time.perf_counter() - t) / steps
print(json.dumps({"img_s": c.data.batch_size / dt, "ms": dt * 1e3, "compile_s": compile_s}))
"""

VARIANTS = {
    "ynnpack on (jaxlib default)": "",
    "ynnpack off (jcnn train)": "--xla_cpu_experimental_ynn_fusion_type=",
}


def ynn_variants(spec: str) -> dict[str, str]:
    """``--ynn eltwise+reduce,dot`` -> variants that give YNNPACK only those fusion
    types (XLA's LibraryFusionType names, lower case, without the prefix)."""
    variants = dict(VARIANTS)
    for kinds in filter(None, spec.split(",")):
        kinds = kinds.replace("+", ",")
        variants[f"ynnpack {kinds} only"] = f"--xla_cpu_experimental_ynn_fusion_type={kinds}"
    return variants


def measure(config: str, steps: int, flags: str) -> dict:
    env = dict(os.environ, XLA_FLAGS=flags, JCNN_KEEP_XLA_FLAGS="1")
    out = subprocess.run(
        [sys.executable, "-c", WORKER, config, str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--ynn",
        default="",
        help="extra variants: comma-separated YNNPACK fusion-type sets, '+' within a set "
        "(e.g. eltwise+reduce,individual_convolution)",
    )
    args = parser.parse_args(argv)
    variants = ynn_variants(args.ynn)
    results = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, flags in variants.items():
            results[name].append(measure(args.config, args.steps, flags))
    print(f"config {args.config}: train step, {args.steps} steps x {args.rounds} rounds")
    base = statistics.median(r["img_s"] for r in results[next(iter(variants))])
    for name, runs in results.items():
        img_s = statistics.median(r["img_s"] for r in runs)
        compile_s = statistics.median(r["compile_s"] for r in runs)
        print(f"  {name:<28} {img_s:8.0f} img/s  x{img_s / base:.2f}  compile {compile_s:.1f} s")
    print(f"  load average: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
