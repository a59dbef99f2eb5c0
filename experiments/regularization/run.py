"""Dropout curbs overfitting on few samples; DropBlock beats it on conv maps; Disout works too.

And a per-channel DropBlock mask beats one shared by the channels; Disout regularises by
distorting units rather than dropping them.

A `cnn_small`-shaped network at width 0.25 (conv8-conv8-pool-conv16-conv16-
pool-dense32, batch norm and ReLU after each conv) trained on only 2,000
Fashion-MNIST images for 10 epochs (SGD + momentum 0.9, lr 0.05 with cosine
decay, batch 64), with one regulariser on the convolutional maps: none;
dropout of each unit after each pool; DropConnect on the kernels of the two
convs before the pools; DropBlock (3x3 blocks) after each pool with one mask
shared by the channels or one mask per channel; Disout (3x3 blocks replaced
by noise of 1 std, per channel) after each pool. Each regulariser runs at the
rates 0.05, 0.1, 0.2 and 0.3, and its rate is chosen on 1,000 held-out
training images (validation accuracy after training, mean over seeds). At
the chosen rates: test accuracy on 2,000 test images and accuracy on the
2,000 training images (eval mode), mean ± std over seeds, and the gap.

    python experiments/regularization/run.py [--smoke] [--seeds N] [--out DIR]
"""

import sys
import time
from pathlib import Path

import numpy as np
from flax import linen as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common

from jcnn import init
from jcnn import nn as jnn
from jcnn.models import Parts
from jcnn.models._parts import scaled

NAME = "regularization"
METHODS = ("none", "dropout", "dropconnect", "dropblock", "dropblock_channel", "disout")
LABELS = {
    "none": "none",
    "dropout": "dropout",
    "dropconnect": "DropConnect",
    "dropblock": "DropBlock (shared mask)",
    "dropblock_channel": "DropBlock (per channel)",
    "disout": "Disout",
}
RATES = (0.05, 0.1, 0.2, 0.3)
BLOCK = 3  # Parts' default for the 14x14 and 7x7 maps of 28 px inputs
DISOUT_ALPHA = 1.0
FULL = dict(train=2000, val=1000, test=2000, epochs=10, batch=64, width=0.25, rates=RATES)
SMOKE = dict(train=128, val=60, test=128, epochs=1, batch=64, width=0.25, rates=(0.1, 0.2))
SMOKE_METHODS = ("none", "dropconnect")
CURVES = ("test_accuracy_curve", "test_loss_curve", "train_loss_curve")
OPTIM = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "schedule": "cosine"}


class RegCNN(nn.Module):
    """`jcnn.models.SmallCNN`'s layout with `method` on its conv maps (or conv kernels)."""

    method: str = "none"
    rate: float = 0.0
    width: float = 0.25
    num_classes: int = 10

    @nn.compact
    def __call__(self, x, *, train: bool):
        p = Parts()  # batch norm, ReLU, He-normal
        layer = 0
        for stage, features in enumerate((32, 64), start=1):
            for i in range(2):
                layer += 1
                f = scaled(features, self.width)
                if self.method == "dropconnect" and i == 1:
                    conv = jnn.DropConnectConv2d(
                        f,
                        3,
                        rate=self.rate,
                        use_bias=False,
                        kernel_init=init.he_normal(),
                        name=f"conv{layer}",
                    )
                    x = conv(x, train=train)
                else:
                    x = p.conv(x, f, 3, name=f"conv{layer}")
                x = p.normalize(x, train=train, name=f"norm{layer}")
                x = p.activate(x, name=f"act{layer}")
            x = jnn.MaxPool2d(2, name=f"pool{stage}")(x)
            x = self.regularize(x, train, name=f"reg{stage}")
        x = jnn.Flatten()(x)
        x = p.activate(p.dense(x, scaled(128, self.width), name="fc1"), name="act5")
        return p.dense(x, self.num_classes, name="fc2")

    def regularize(self, x, train, name):
        """`method` on the feature map, as `jcnn.models.Parts` places it (DropConnect: none)."""
        regularizer = None if self.method == "none" else self.method
        parts = Parts(
            regularizer=regularizer, rate=self.rate, block_size=BLOCK, disout_alpha=DISOUT_ALPHA
        )
        return parts.regularize(x, train=train, name=name)


def main(argv=None) -> dict:
    args = common.parse_args(NAME, __doc__, argv)
    cfg = SMOKE if args.smoke else FULL
    methods = SMOKE_METHODS if args.smoke else METHODS
    seeds = range(args.seeds)
    start = time.perf_counter()
    data = common.load_data(cfg["train"], cfg["test"], val_size=cfg["val"])
    rows = []
    for method in methods:
        mine = []
        for rate in (0.0,) if method == "none" else cfg["rates"]:
            model = RegCNN(method=method, rate=rate, width=cfg["width"])
            runs = common.run_seeds(
                model, data, seeds, epochs=cfg["epochs"], batch_size=cfg["batch"], optim=OPTIM
            )
            test, train = runs["test_accuracy"], runs["train_accuracy"]
            mine.append(
                {
                    "method": method,
                    "rate": rate,
                    **common.pick(runs, "val_accuracy", "test_accuracy", "train_accuracy"),
                    "gap": [a - b for a, b in zip(train, test, strict=True)],
                    **common.pick(runs, *CURVES, "diverged", "wall_s"),
                }
            )
            print(
                f"{method:>18} rate {rate:<4g}: "
                f"val {common.fmt(*common.mean_std(runs['val_accuracy']), scale=100)}, "
                f"test {common.fmt(*common.mean_std(test), scale=100)}, "
                f"train {common.fmt(*common.mean_std(train), scale=100)}",
                flush=True,
            )
        best = max(mine, key=lambda r: np.mean(r["val_accuracy"]))
        rows += [{**r, "chosen": r is best} for r in mine]
    wall = time.perf_counter() - start
    meta = {**cfg, "optim": OPTIM, "block_size": BLOCK, "alpha": DISOUT_ALPHA}
    meta.update(seeds=args.seeds, smoke=args.smoke)
    common.write_results(args.out, NAME, rows, tables(rows, cfg), meta=meta, wall_s=wall)
    plot(rows, cfg, args.out)
    return {"rows": rows, "wall_s": wall}


def tables(rows, cfg) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    header = ("regulariser", *(f"rate {rate:g}" for rate in cfg["rates"]))
    body = []
    for m in methods:
        mine = {r["rate"]: r for r in rows if r["method"] == m}
        cells = []
        for rate in cfg["rates"] if m != "none" else (0.0,):
            r = mine[rate]
            text = common.fmt(*common.mean_std(r["val_accuracy"]), scale=100)
            text += f" ({r['diverged']} div.)" if r["diverged"] else ""
            cells.append(f"**{text}**" if r["chosen"] and m != "none" else text)
        body.append((LABELS[m], *cells, *[""] * (len(cfg["rates"]) - len(cells))))
    sweep = (
        f"**Rate sweep**: validation accuracy % ({cfg['val']:,} held-out training images) "
        f"after {cfg['epochs']} epochs, mean ± std over seeds; the chosen rate in bold "
        f"('none' has no rate: its one run is in the first column).\n\n"
        + common.markdown_table(header, body)
    )
    by = {r["method"]: r for r in rows if r["chosen"]}
    header = (
        "regulariser",
        "chosen rate",
        "train acc. %",
        "test acc. %",
        "gap (train − test), points",
        "test vs none",
        "test vs dropout",
    )

    def vs(r, other):
        if other not in by or r["method"] == other:
            return "—"
        return common.compare(r["test_accuracy"], by[other]["test_accuracy"])

    body = [
        (
            LABELS[r["method"]],
            "—" if r["method"] == "none" else f"{r['rate']:g}",
            common.fmt(*common.mean_std(r["train_accuracy"]), scale=100),
            common.fmt(*common.mean_std(r["test_accuracy"]), scale=100),
            common.fmt(*common.mean_std(r["gap"]), scale=100),
            vs(r, "none"),
            vs(r, "dropout"),
        )
        for r in by.values()
    ]
    extra = ""
    if {"dropblock", "dropblock_channel"} <= set(by):
        extra = (
            "\n\nPer-channel vs shared DropBlock at their chosen rates, test accuracy: "
            + common.compare(
                by["dropblock_channel"]["test_accuracy"], by["dropblock"]["test_accuracy"]
            )
            + "."
        )
    chosen = (
        f"**At the chosen rates**: accuracy after {cfg['epochs']} epochs on the "
        f"{cfg['train']:,} training images (eval mode, all of them) and on {cfg['test']:,} "
        f"test images, mean ± std over seeds.\n\n" + common.markdown_table(header, body) + extra
    )
    return sweep + "\n\n" + chosen


def plot(rows, cfg, out) -> None:
    chosen = [r for r in rows if r["chosen"]]
    colors = {m: f"C{i}" for i, m in enumerate(METHODS)}
    fig, axes = common.figure(1, 3, figsize=(17, 4.2))
    ax = axes[0, 0]
    for m in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == m]
        if m == "none":
            mean = common.mean_std(mine[0]["val_accuracy"])[0]
            ax.axhline(100 * mean, color=colors[m], ls="--", label=LABELS[m])
            continue
        common.errorbar(
            ax,
            [r["rate"] for r in mine],
            [r["val_accuracy"] for r in mine],
            marker="o",
            color=colors[m],
            label=LABELS[m],
        )
    ax.set_xlabel("rate")
    ax.set_ylabel("validation accuracy % (mean ± std)")
    ax.set_title("rate sweep (choice on validation)", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    epochs = np.arange(1, cfg["epochs"] + 1)
    ax = axes[0, 1]
    for r in chosen:
        ax.plot(
            epochs,
            100 * np.asarray(r["test_accuracy_curve"]),
            "-o",
            ms=3,
            color=colors[r["method"]],
            label=LABELS[r["method"]],
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy % (mean over seeds)")
    ax.set_title("test accuracy during training, chosen rates", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax = axes[0, 2]
    x = np.arange(len(chosen))
    for offset, key, label in ((-0.2, "train_accuracy", "train"), (0.2, "test_accuracy", "test")):
        stats = [common.mean_std(r[key]) for r in chosen]
        ax.bar(
            x + offset,
            [100 * m for m, _ in stats],
            0.4,
            yerr=[100 * np.nan_to_num(s) for _, s in stats],
            capsize=3,
            label=label,
            color="C7" if key == "train_accuracy" else "C0",
        )
    ax.set_xticks(x, [LABELS[r["method"]] for r in chosen], rotation=25, ha="right")
    low = min(min(r["test_accuracy"]) for r in chosen)
    ax.set_ylim(max(0, 100 * low - 10), 100)
    ax.set_ylabel("accuracy % (mean ± std)")
    ax.set_title(
        f"after {cfg['epochs']} epochs, {cfg['train']:,} training images", fontsize="medium"
    )
    ax.legend(fontsize="small")
    common.savefig(fig, out / "regularization.png")


if __name__ == "__main__":
    main()
