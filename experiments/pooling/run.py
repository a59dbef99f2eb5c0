"""Max pooling beats mean pooling for downsampling, and a strided convolution can replace either.

A `cnn_small`-shaped network at width 0.25 (conv8-conv8-down-conv16-conv16-
down-dense32, batch norm and ReLU after each conv) whose two 2x downsamplings
are done four ways: a 2x2 max pool, a 2x2 mean pool, the stage's second conv
with stride 2 (no pool: fewer FLOPs, the same parameters), or an extra 3x3
stride-2 conv in place of the pool (Springenberg et al.'s All-CNN: more
parameters). Trained on 3,000 Fashion-MNIST images for 3 epochs (batch 64,
SGD + momentum 0.9, lr 0.02 with cosine decay), tested on 2,000 test images
(mean ± std over seeds); parameters and forward FLOPs from
`jcnn.summary.summarize`; speed as the median time of a jitted train step on a
batch of 64 after warm-up (rounds interleaved over the variants).

    python experiments/pooling/run.py [--smoke] [--seeds N] [--out DIR]
"""

import sys
import time
from pathlib import Path

import jax
import numpy as np
from flax import linen as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common

from jcnn import data as jdata
from jcnn import nn as jnn
from jcnn import optim as joptim
from jcnn.models import Parts
from jcnn.models._parts import scaled
from jcnn.summary import summarize
from jcnn.train.state import create_state
from jcnn.train.step import make_train_step

NAME = "pooling"
DOWNSAMPLING = {
    "max": "2x2 max pool",
    "mean": "2x2 mean pool",
    "strided": "stride-2 conv (2nd of the stage)",
    "conv": "extra 3x3 stride-2 conv",
}
OPTIM = {"name": "sgd", "lr": 0.02, "momentum": 0.9, "schedule": "cosine"}
FULL = dict(train=3000, test=2000, epochs=3, batch=64, width=0.25, rounds=5, steps=10)
SMOKE = dict(train=128, test=128, epochs=1, batch=64, width=0.25, rounds=1, steps=2)
SMOKE_DOWNSAMPLING = ("strided",)


class PoolCNN(nn.Module):
    """Two stages of two 3x3 conv-BN-ReLU, each followed by a 2x downsampling `down`."""

    down: str = "max"
    width: float = 0.25
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, *, train: bool):
        p = Parts()  # batch norm, ReLU, He-normal
        layer = 0
        for stage, features in enumerate((32, 64), start=1):
            f = scaled(features, self.width)
            for i in range(2):
                layer += 1
                stride = 2 if self.down == "strided" and i == 1 else 1
                x = p.conv_norm_act(x, f, 3, train=train, suffix=str(layer), stride=stride)
            if self.down == "max":
                x = jnn.MaxPool2d(2, name=f"pool{stage}")(x)
            elif self.down == "mean":
                x = jnn.AvgPool2d(2, name=f"pool{stage}")(x)
            elif self.down == "conv":
                x = p.conv_norm_act(x, f, 3, train=train, suffix=f"_down{stage}", stride=2)
        x = jnn.Flatten()(x)
        x = p.activate(p.dense(x, scaled(128, self.width), name="fc1"), name="act5")
        return p.dense(x, self.num_classes, name="fc2")


def step_times(models, data, cfg) -> dict[str, float]:
    """Median ms of one jitted train step (batch `cfg["batch"]`) after warm-up, per model.

    The rounds visit the models in turn, so a change in the machine's load
    falls on all of them alike.
    """
    tx = joptim.make_optimizer(OPTIM, steps_per_epoch=10, num_epochs=1)
    runners = {}
    images, labels = jdata.take(data.train, np.arange(cfg["batch"]))
    for name, model in models.items():
        step = jax.jit(make_train_step(model, tx, num_classes=10, mean=data.mean, std=data.std))
        state = create_state(model, tx, jax.random.key(0), data.input_shape)
        for _ in range(3):  # compile and warm up
            state, metrics = step(state, images, labels)
        jax.block_until_ready(metrics)
        runners[name] = [step, state]
    times = {name: [] for name in models}
    for _ in range(cfg["rounds"]):
        for name, runner in runners.items():
            step, state = runner
            for _ in range(cfg["steps"]):
                t = time.perf_counter()
                state, metrics = step(state, images, labels)
                jax.block_until_ready(metrics)
                times[name].append(time.perf_counter() - t)
            runner[1] = state
    return {name: 1000 * float(np.median(t)) for name, t in times.items()}


def main(argv=None) -> dict:
    args = common.parse_args(NAME, __doc__, argv)
    cfg = SMOKE if args.smoke else FULL
    names = SMOKE_DOWNSAMPLING if args.smoke else tuple(DOWNSAMPLING)
    seeds = range(args.seeds)
    start = time.perf_counter()
    data = common.load_data(cfg["train"], cfg["test"])
    models = {n: PoolCNN(down=n, width=cfg["width"]) for n in names}
    ms = step_times(models, data, cfg)
    rows = []
    for name, model in models.items():
        summary = summarize(model, data.input_shape)
        runs = common.run_seeds(
            model, data, seeds, epochs=cfg["epochs"], batch_size=cfg["batch"], optim=OPTIM
        )
        keys = ("test_accuracy", "train_accuracy", "test_accuracy_curve", "diverged", "wall_s")
        rows.append(
            {
                "downsampling": name,
                "params": int(summary.total_params),
                "flops": int(summary.total_flops),
                "step_ms": ms[name],
                **common.pick(runs, *keys),
            }
        )
        acc = common.fmt(*common.mean_std(rows[-1]["test_accuracy"]), scale=100)
        print(
            f"{name:>8}: {summary.total_params} params, {ms[name]:.1f} ms/step, {acc}", flush=True
        )
    wall = time.perf_counter() - start
    meta = {**cfg, "optim": OPTIM, "seeds": args.seeds, "smoke": args.smoke}
    common.write_results(args.out, NAME, rows, table(rows, cfg), meta=meta, wall_s=wall)
    plot(rows, cfg, args.out)
    return {"rows": rows, "wall_s": wall}


def table(rows, cfg) -> str:
    ref = next((r for r in rows if r["downsampling"] == "max"), None)
    header = (
        "downsampling",
        "parameters",
        "forward MFLOPs / image",
        f"train step, ms (batch {cfg['batch']})",
        "train acc. %",
        "test acc. %",
        "test vs max pool",
    )
    body = [
        (
            DOWNSAMPLING[r["downsampling"]],
            f"{r['params']:,}",
            f"{r['flops'] / 1e6:.2f}",
            f"{r['step_ms']:.1f}",
            common.fmt(*common.mean_std(r["train_accuracy"]), scale=100),
            common.fmt(*common.mean_std(r["test_accuracy"]), scale=100),
            "—"
            if r is ref or ref is None
            else common.compare(r["test_accuracy"], ref["test_accuracy"]),
        )
        for r in rows
    ]
    return (
        f"Accuracy after {cfg['epochs']} epochs of {cfg['train']:,} training images (eval "
        f"mode) and on {cfg['test']:,} test images, mean ± std over seeds; step time: median "
        f"of {cfg['rounds']} × {cfg['steps']} steps after warm-up.\n\n"
        + common.markdown_table(header, body)
    )


def plot(rows, cfg, out) -> None:
    fig, axes = common.figure(1, 3, figsize=(14, 4))
    names = [r["downsampling"] for r in rows]
    colors = [f"C{i}" for i in range(len(rows))]
    stats = [common.mean_std(r["test_accuracy"]) for r in rows]
    ax = axes[0, 0]
    ax.bar(
        names,
        [100 * m for m, _ in stats],
        yerr=[100 * np.nan_to_num(s) for _, s in stats],
        capsize=3,
        color=colors,
    )
    ax.set_ylim(max(0, 100 * min(m for m, _ in stats) - 5), None)
    ax.set_ylabel("test accuracy % (mean ± std)")
    ax.set_title(f"accuracy after {cfg['epochs']} epochs", fontsize="medium")
    for ax, key, label in (
        (axes[0, 1], "params", "parameters"),
        (axes[0, 2], "step_ms", f"train step, ms (batch {cfg['batch']}, median)"),
    ):
        ax.bar(names, [r[key] for r in rows], color=colors)
        ax.set_ylabel(label)
        ax.set_title(label.split(",")[0], fontsize="medium")
    fig.suptitle(f"downsampling in cnn_small ×{cfg['width']:g}, Fashion-MNIST")
    common.savefig(fig, out / "pooling.png")


if __name__ == "__main__":
    main()
