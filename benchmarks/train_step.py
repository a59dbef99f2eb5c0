"""Train-step throughput of a config's model, with and without YNNPACK on XLA:CPU.

Run: ``python benchmarks/train_step.py [--config default] [--steps 20] [--ynn eltwise+reduce]``.
Each variant is ``jcnn bench`` in its own subprocess (XLA reads ``XLA_FLAGS``
once, when the backend starts): the config's jitted, donated train step (its
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

from jcnn._xla import YNN_FLAG

VARIANTS = {
    "ynnpack on (jaxlib default)": "",
    "ynnpack off": "--xla_cpu_experimental_ynn_fusion_type=",
    "jcnn train's flags": YNN_FLAG,
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
    """`jcnn bench` of `config` in a subprocess whose ``XLA_FLAGS`` are `flags`."""
    env = dict(os.environ, XLA_FLAGS=flags, JCNN_KEEP_XLA_FLAGS="1")
    out = subprocess.run(
        [sys.executable, "-m", "jcnn.cli", "bench", f"--config={config}", f"--steps={steps}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["compile_s"] = result["first_step_s"]
    return result


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
