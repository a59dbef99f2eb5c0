"""SELU self-normalises: in a deep LeCun-initialised MLP, activations tend to mean 0, variance 1.

A 32-layer fully connected network (width 256) on flattened, standardised
Fashion-MNIST, three ways: SELU + LeCun-normal, ReLU + He-normal, and ReLU +
batch norm + He-normal. Per layer: the mean and variance of the layer's
output (over units and 512 test images) at initialisation -- also with the
input scaled by 0.5 and 2, to see whether the statistics are drawn back --
and after training (eval mode); test accuracy after a fixed budget (8,000
train images, 3 epochs, SGD + momentum), mean ± std over seeds.

    python experiments/selu/run.py [--smoke] [--seeds N] [--out DIR]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common

from jcnn.models import Parts

NAME = "selu"
ARMS = {
    "SELU + LeCun": Parts(norm=None, activation="selu", kernel_init="lecun_normal"),
    "ReLU + He": Parts(norm=None, activation="relu", kernel_init="he_normal"),
    "ReLU + BN + He": Parts(norm="batch", activation="relu", kernel_init="he_normal"),
}
INPUT_SCALES = (0.5, 1.0, 2.0)
# SGD + momentum at lr 0.01 (the default rate of SGD in most libraries), all arms.
OPTIM = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
FULL = dict(depth=32, width=256, train=8000, test=2000, epochs=3, batch=128, probe=512)
SMOKE = dict(depth=3, width=4, train=128, test=128, epochs=1, batch=64, probe=64)
SMOKE_ARMS = ("SELU + LeCun", "ReLU + BN + He")  # the reference and the batch-norm path


def layer_stats(model, variables, x, *, train: bool):
    """``(means, variances)`` of every layer's output, over its units and the batch."""
    outs = common.layer_outputs(model, variables, x, prefixes=("act",), train=train)["act"]
    return [float(jnp.mean(a)) for a in outs], [float(jnp.var(a)) for a in outs]


def main(argv=None) -> dict:
    args = common.parse_args(NAME, __doc__, argv)
    cfg = SMOKE if args.smoke else FULL
    seeds = range(args.seeds)
    start = time.perf_counter()
    data = common.load_data(cfg["train"], cfg["test"])
    x, _ = data.batch(cfg["probe"], split="test")
    rows = []
    for arm in SMOKE_ARMS if args.smoke else ARMS:
        parts = ARMS[arm]
        model = common.MLP(depth=cfg["depth"], width=cfg["width"], parts=parts)
        at_init = {s: ([], []) for s in INPUT_SCALES}
        for seed in seeds:
            variables = model.init(jax.random.key(seed), x[:1], train=False)
            for s in INPUT_SCALES:
                # BatchNorm on the batch statistics, as in training (the others
                # do not depend on `train`: one compile fewer).
                train = parts.norm is not None
                means, variances = layer_stats(model, variables, s * x, train=train)
                at_init[s][0].append(means)
                at_init[s][1].append(variances)
        runs = common.run_seeds(
            model,
            data,
            seeds,
            epochs=cfg["epochs"],
            batch_size=cfg["batch"],
            optim=OPTIM,
            keep_variables=True,
        )
        # A diverged run's weights are not finite: its statistics would be NaN.
        trained = [
            layer_stats(model, variables, x, train=False)
            for variables, at in zip(runs.pop("variables"), runs["diverged_at_step"], strict=True)
            if at is None
        ]
        nan = [math.nan] * cfg["depth"]
        rows.append(
            {
                "arm": arm,
                "init_mean": {str(s): np.mean(m, 0).tolist() for s, (m, _) in at_init.items()},
                "init_var": {str(s): np.mean(v, 0).tolist() for s, (_, v) in at_init.items()},
                "trained_mean": np.mean([m for m, _ in trained], 0).tolist() if trained else nan,
                "trained_var": np.mean([v for _, v in trained], 0).tolist() if trained else nan,
                "trained_runs": len(trained),
                "trained_var_runs": [v for _, v in trained],
                **common.pick(
                    runs, "test_accuracy", "train_accuracy", "diverged", "diverged_at_step"
                ),
                "train_loss": runs["train_loss_epochs"],
                "wall_s": runs["wall_s"],
            }
        )
        acc = common.fmt(*common.mean_std(rows[-1]["test_accuracy"]), scale=100)
        last = rows[-1]["init_var"]["1.0"][-1]
        print(f"{arm:>15}: var at layer {cfg['depth']} {last:.3g}, acc {acc}", flush=True)
    wall = time.perf_counter() - start
    meta = {**cfg, "optim": OPTIM, "seeds": args.seeds, "smoke": args.smoke}
    meta["input_scales"] = INPUT_SCALES
    common.write_results(args.out, NAME, rows, table(rows, cfg), meta=meta, wall_s=wall)
    plot(rows, cfg, args.out)
    return {"rows": rows, "wall_s": wall}


def table(rows, cfg) -> str:
    d = cfg["depth"]
    header = (
        "network",
        f"layer {d} at init: mean, var",
        "input ×0.5",
        "input ×2",
        f"var, layers 1–{d}, at init",
        f"layer {d} after training (runs)",
        f"var, layers 1–{d}, after training",
        "test acc. % (mean ± std)",
        "vs SELU",
        "diverged",
    )

    def pair(means, variances):
        return f"{means[-1]:+.2f}, {variances[-1]:.2f}"

    def span(values):
        return "n/a" if any(map(math.isnan, values)) else f"{min(values):.3g}–{max(values):.3g}"

    selu = rows[0]["test_accuracy"]
    body = [
        (
            r["arm"],
            pair(r["init_mean"]["1.0"], r["init_var"]["1.0"]),
            pair(r["init_mean"]["0.5"], r["init_var"]["0.5"]),
            pair(r["init_mean"]["2.0"], r["init_var"]["2.0"]),
            span(r["init_var"]["1.0"]),
            f"{pair(r['trained_mean'], r['trained_var'])} ({r['trained_runs']})",
            span(r["trained_var"]),
            common.fmt(*common.mean_std(r["test_accuracy"]), scale=100),
            "—" if r is rows[0] else common.compare(r["test_accuracy"], selu),
            f"{r['diverged']}/{len(r['test_accuracy'])}",
        )
        for r in rows
    ]
    return (
        f"Mean and variance of a layer's output over its units and {cfg['probe']} test images, "
        f"mean over seeds: at initialisation (batch norm on batch statistics) with the "
        f"standardised input as is, halved and doubled, and after training (eval mode; mean "
        f"over the runs that did not diverge). `var, layers 1–{d}`: the smallest and largest "
        f"variance over the {d} hidden layers. Test accuracy after {cfg['epochs']} epochs of "
        f"{cfg['train']:,} images ({cfg['test']:,} test images).\n\n"
        + common.markdown_table(header, body)
    )


def plot(rows, cfg, out) -> None:
    layers = np.arange(1, cfg["depth"] + 1)
    styles = {"0.5": ":", "1.0": "-", "2.0": "--"}
    fig, axes = common.figure(2, 2, figsize=(12, 7))
    for i, r in enumerate(rows):
        color = f"C{i}"
        for s, style in styles.items():
            label = f"{r['arm']}, input ×{float(s):g}"
            axes[0, 0].plot(layers, r["init_mean"][s], style, color=color, label=label)
            axes[0, 1].plot(layers, r["init_var"][s], style, color=color, label=label)
        axes[1, 0].plot(layers, r["trained_mean"], color=color, label=r["arm"])
        axes[1, 1].plot(layers, r["trained_var"], color=color, label=r["arm"])
    for row, when in ((0, "at initialisation"), (1, "after training (eval mode)")):
        axes[row, 0].axhline(0, color="0.3", lw=0.8)
        axes[row, 1].axhline(1, color="0.3", lw=0.8)
        axes[row, 1].set_yscale("log")
        axes[row, 0].set_ylabel(f"mean, {when}")
        axes[row, 1].set_ylabel(f"variance, {when}")
        for ax in axes[row]:
            ax.set_xlabel("layer (1 = input side)")
            ax.grid(alpha=0.3, which="both")
    axes[0, 1].legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1))
    axes[1, 1].legend(fontsize="small")
    fig.suptitle(f"{cfg['depth']}-layer fully connected net (width {cfg['width']}), Fashion-MNIST")
    common.savefig(fig, out / "layer_stats.png", dpi=90)


if __name__ == "__main__":
    main()
