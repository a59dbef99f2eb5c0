"""Random flips and crops improve generalisation, most when training data is scarce.

jcnn's `cnn_small` at width 0.25 (batch norm, ReLU) trained on 500, 2,000 or
6,000 Fashion-MNIST images with and without augmentation on the device
(`jcnn.data.augment_batch`): a random left-right flip and a random crop of
the image zero-padded by 2 pixels (shifts of up to ±2 pixels), and, at 2,000
images, each of the two alone. Every run sees the same 12,000 images (240
steps of batch 50: 24, 6 and 2 epochs), with SGD + momentum 0.9 and lr 0.02
decayed by a cosine to 0. Test accuracy on 2,000 test images and accuracy on
the (unaugmented) training images: mean ± std over seeds.

    python experiments/augmentation/run.py [--smoke] [--seeds N] [--out DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common

from jcnn import models

NAME = "augmentation"
AUGMENTS = {"none": (), "flip": ("flip",), "crop": ("crop",), "flip + crop": ("flip", "crop")}
CROP_PADDING = 2
OPTIM = {"name": "sgd", "lr": 0.02, "momentum": 0.9, "schedule": "cosine"}
FULL = dict(sizes=(500, 2000, 6000), single_size=2000, images_seen=12000, test=2000, batch=50)
# The test set as large as the training set: one compiled eval step serves both.
SMOKE = dict(sizes=(100,), single_size=None, images_seen=100, test=100, batch=50)
WIDTH = 0.25


def arms(cfg):
    """``(size, augmentation)`` pairs: on/off at every size, each op alone at one size
    (`single_size`, None: none)."""
    out = [(n, a) for n in cfg["sizes"] for a in ("none", "flip + crop")]
    if cfg["single_size"] is None:
        return out
    return out + [(cfg["single_size"], a) for a in ("flip", "crop")]


def main(argv=None) -> dict:
    args = common.parse_args(NAME, __doc__, argv)
    cfg = SMOKE if args.smoke else FULL
    seeds = range(args.seeds)
    start = time.perf_counter()
    model = models.create("cnn_small", num_classes=10, width=WIDTH)
    datasets = {n: common.load_data(n, cfg["test"]) for n in cfg["sizes"]}
    rows = []
    for size, aug in arms(cfg):
        epochs = cfg["images_seen"] // size  # the sizes divide the budget and the batch
        runs = common.run_seeds(
            model,
            datasets[size],
            seeds,
            epochs=epochs,
            batch_size=cfg["batch"],
            optim=OPTIM,
            augment=AUGMENTS[aug],
            crop_padding=CROP_PADDING,
            eval_every_epoch=False,
        )
        keys = ("test_accuracy", "train_accuracy", "train_loss_curve", "diverged", "wall_s")
        rows.append(
            {"train_size": size, "augment": aug, "epochs": epochs, **common.pick(runs, *keys)}
        )
        acc = common.fmt(*common.mean_std(rows[-1]["test_accuracy"]), scale=100)
        print(f"{size:>6} images, {aug:>11}: test {acc}", flush=True)
    wall = time.perf_counter() - start
    meta = {**cfg, "optim": OPTIM, "crop_padding": CROP_PADDING, "width": WIDTH}
    meta.update(seeds=args.seeds, smoke=args.smoke)
    common.write_results(args.out, NAME, rows, tables(rows, cfg), meta=meta, wall_s=wall)
    plot(rows, cfg, args.out)
    return {"rows": rows, "wall_s": wall}


def find(rows, size, aug):
    return next(r for r in rows if r["train_size"] == size and r["augment"] == aug)


def singles(rows, cfg) -> tuple[int, list[str]]:
    """The size of the each-op comparison and the augmentations measured at it."""
    n = cfg["single_size"] or cfg["sizes"][0]
    return n, [a for a in AUGMENTS if any(r["train_size"] == n and r["augment"] == a for r in rows)]


def acc(r, key="test_accuracy") -> str:
    return common.fmt(*common.mean_std(r[key]), scale=100)


def tables(rows, cfg) -> str:
    header = (
        "training images (epochs)",
        "train acc. %, none",
        "test acc. %, none",
        "train acc. %, flip + crop",
        "test acc. %, flip + crop",
        "test gain, points",
        "flip + crop vs none",
    )
    body = []
    for n in cfg["sizes"]:
        off, on = find(rows, n, "none"), find(rows, n, "flip + crop")
        gain = 100 * (np.mean(on["test_accuracy"]) - np.mean(off["test_accuracy"]))
        body.append(
            (
                f"{n:,} ({off['epochs']})",
                acc(off, "train_accuracy"),
                acc(off),
                acc(on, "train_accuracy"),
                acc(on),
                f"{gain:+.1f}",
                common.compare(on["test_accuracy"], off["test_accuracy"]),
            )
        )
    on_off = (
        f"**On/off** by training-set size: accuracy after {cfg['images_seen']:,} images seen "
        f"(batch {cfg['batch']}), on the training images without augmentation (eval mode) and "
        f"on {cfg['test']:,} test images; mean ± std over seeds.\n\n"
        + common.markdown_table(header, body)
    )
    n, augs = singles(rows, cfg)
    none = find(rows, n, "none")
    header = ("augmentation", "train acc. %", "test acc. %", "test vs none")
    body = [
        (
            a,
            acc(find(rows, n, a), "train_accuracy"),
            acc(find(rows, n, a)),
            "—"
            if a == "none"
            else common.compare(find(rows, n, a)["test_accuracy"], none["test_accuracy"]),
        )
        for a in augs
    ]
    single = f"**Each op** at {n:,} training images.\n\n" + common.markdown_table(header, body)
    return on_off + "\n\n" + single


def plot(rows, cfg, out) -> None:
    fig, axes = common.figure(1, 2, figsize=(12, 4.2))
    ax = axes[0, 0]
    for i, aug in enumerate(("none", "flip + crop")):
        for key, style, what in (
            ("test_accuracy", "-o", "test"),
            ("train_accuracy", ":^", "train"),
        ):
            common.errorbar(
                ax,
                cfg["sizes"],
                [find(rows, n, aug)[key] for n in cfg["sizes"]],
                fmt=style,
                color=f"C{i}",
                label=f"{aug}, {what}",
            )
    ax.set_xscale("log")
    ax.set_xticks(cfg["sizes"], [f"{n:,}" for n in cfg["sizes"]])
    ax.minorticks_off()
    ax.set_xlabel(f"training images (each run sees {cfg['images_seen']:,})")
    ax.set_ylabel("accuracy % (mean ± std)")
    ax.set_title("augmentation on/off", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax = axes[0, 1]
    n, augs = singles(rows, cfg)
    stats = [common.mean_std(find(rows, n, a)["test_accuracy"]) for a in augs]
    ax.bar(
        augs,
        [100 * m for m, _ in stats],
        yerr=[100 * np.nan_to_num(s) for _, s in stats],
        capsize=3,
        color=[f"C{list(AUGMENTS).index(a)}" for a in augs],
    )
    ax.set_ylim(max(0, 100 * min(m for m, _ in stats) - 8), None)
    ax.set_ylabel("test accuracy % (mean ± std)")
    ax.set_title(f"each op at {n:,} training images", fontsize="medium")
    fig.suptitle(f"cnn_small ×{WIDTH:g} on Fashion-MNIST")
    common.savefig(fig, out / "augmentation.png")


if __name__ == "__main__":
    main()
