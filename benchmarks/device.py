"""Train-step throughput and MFU of a zoo model on synthetic images, for accelerators.

    python benchmarks/device.py [--model resnet50] [--size 224] [--batch 256]
        [--dtype bfloat16] [--steps 20] [--peak-tflops 990] [--measured-tflops 790]

One jitted, donated `jcnn.train.step.make_train_step` of ``jcnn.models.create(model,
dtype=dtype)`` (float32 parameters, optimiser state and BN statistics) with SGD
momentum, on a fixed batch of random uint8 images of ``size x size x 3`` held on
the device, crop+flip augmentation included. Prints one JSON line: img/s
(median of `steps` timed steps after two warm-up steps), the train FLOPs per
image (3x the forward FLOPs of `jcnn.summary`, 2 per multiply-add: 24.5 G for
ResNet-50 at 224), the achieved TFLOP/s and the MFU against `--peak-tflops`
(the dense bf16 peak of an H200 is ~990 TFLOP/s by the datasheet) and against
`--measured-tflops` (bf16 matmuls on random data reach ~790 TFLOP/s on the lent
H200, as measured by this workplace). `benchmarks/device.sh` runs
it on a lent GPU; ``--size 32 --batch 4 --steps 1`` is a CPU dry run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jcnn import models, summary
from jcnn.train.state import create_state
from jcnn.train.step import make_train_step


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peak-tflops", type=float, default=990.0)
    parser.add_argument("--measured-tflops", type=float, default=790.0)
    args = parser.parse_args(argv)

    shape = (args.size, args.size, 3)
    model = models.create(args.model, num_classes=1000, dtype=jnp.dtype(args.dtype))
    flops = 3 * summary.summarize(models.create(args.model, num_classes=1000), shape).total_flops
    tx = optax.sgd(0.1, momentum=0.9)
    state = jax.jit(lambda: create_state(model, tx, jax.random.key(0), shape))()
    step = jax.jit(
        make_train_step(
            model, tx, num_classes=1000, mean=0.45, std=0.25, augment_ops=("crop", "flip")
        ),
        donate_argnums=0,
    )
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.integers(0, 256, (args.batch, *shape), dtype=np.uint8))
    labels = jax.device_put(rng.integers(0, 1000, (args.batch,), dtype=np.int32))

    start = time.perf_counter()
    state, metrics = step(state, images, labels)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - start
    for _ in range(2):
        state, metrics = step(state, images, labels)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        state, metrics = step(state, images, labels)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - start)
    img_s = args.batch / statistics.median(times)
    tflops = img_s * flops / 1e12
    result = {
        "model": args.model,
        "size": args.size,
        "batch": args.batch,
        "dtype": args.dtype,
        "img_s": img_s,
        "train_gflop_per_img": flops / 1e9,
        "tflops": tflops,
        "mfu": tflops / args.peak_tflops,
        "mfu_of_measured_matmul": tflops / args.measured_tflops,
        "first_step_s": first,
        "loss_finite": bool(np.isfinite(float(metrics["loss"]))),
        "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
        "jax": jax.__version__,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
