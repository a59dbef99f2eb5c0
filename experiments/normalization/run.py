"""BN speeds convergence and tolerates larger learning rates; it degrades at small batches, GN not.

And layer norm is worse than batch norm on CNNs; and ReLU should not follow batch norm.

jcnn's `cnn_small` at width 0.25 (convs of 8, 8, 16, 16 channels, dense 32;
each conv followed by the norm under test and ReLU) with batch norm, group
norm (4 groups), layer norm, instance norm or none, trained with SGD +
momentum 0.9 on 2,000 Fashion-MNIST images for 2 epochs and tested on 2,000
test images; mean ± std over seeds. Three parts:

A. learning rate: batch 32 and lr in {0.003125, 0.0125, 0.05, 0.2}; test
   accuracy after each epoch and the training loss of every step (convergence).
   Each norm's best rate is chosen on 1,000 held-out training images
   (validation accuracy after the last epoch, mean over seeds) and compared
   with BN's on the test set.
B. batch size: 2, 8, 32 and 128 with lr = 0.0125 * batch / 32 (Goyal et al.'s
   linear scaling rule, 0.1 per 256 images), the same 2 epochs of images at
   every batch size (so batch 2 takes 2,000 steps and batch 128 31).
C. the activation after batch norm: ReLU, sigmoid and tanh (batch 32, lr 0.0125).

    python experiments/normalization/run.py [--smoke] [--seeds N] [--out DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common

from jcnn import models

NAME = "normalization"
NORMS = {"BN": "batch", "GN": "group", "LN": "layer", "IN": "instance", "none": None}
# 4 groups: 2 and 4 channels per group at this width (Wu & He's default of 32
# groups needs >= 64 channels; with 8 channels it would be instance norm).
NUM_GROUPS = 4
MOMENTUM = 0.9
FULL = dict(
    train=2000,
    val=1000,
    test=2000,
    epochs=2,
    width=0.25,
    base_batch=32,
    base_lr=0.0125,
    lrs=(0.003125, 0.0125, 0.05, 0.2),
    batches=(2, 8, 32, 128),
    norms=tuple(NORMS),
    activations=("relu", "sigmoid", "tanh"),
)
SMOKE = dict(
    FULL,
    train=128,
    val=60,
    test=128,
    epochs=1,
    lrs=(0.0125, 0.05),  # two rates to choose from; one compiled step per norm
    batches=(32,),
    norms=("BN", "GN"),
    activations=("relu",),
)
CURVE_POINTS = 200


def make_model(norm: str, activation: str, cfg):
    return models.create(
        "cnn_small",
        num_classes=10,
        width=cfg["width"],
        norm=NORMS[norm],
        activation=activation,
        num_groups=NUM_GROUPS,
    )


def arm(data, cfg, seeds, *, part, norm, lr, batch, activation="relu") -> dict:
    """One setting trained from every seed: the row of results.json."""
    model = make_model(norm, activation, cfg)
    optim = {"name": "sgd", "lr": lr, "momentum": MOMENTUM}
    runs = common.run_seeds(
        model, data, seeds, epochs=cfg["epochs"], batch_size=batch, optim=optim, eval_train=False
    )
    row = {
        "part": part,
        "norm": norm,
        "activation": activation,
        "lr": lr,
        "batch": batch,
        **common.pick(runs, "val_accuracy", "test_accuracy", "test_accuracy_epochs"),
        "train_loss_curve": common.downsample(runs["train_loss_steps_curve"], CURVE_POINTS),
        **common.pick(runs, "diverged", "wall_s"),
    }
    acc = common.fmt(*common.mean_std(row["test_accuracy"]), scale=100)
    print(f"{part} {norm:>4} {activation:>7} lr {lr:<7g} batch {batch:>3}: {acc}", flush=True)
    return row


def main(argv=None) -> dict:
    args = common.parse_args(NAME, __doc__, argv)
    cfg = SMOKE if args.smoke else FULL
    seeds = range(args.seeds)
    start = time.perf_counter()
    data = common.load_data(cfg["train"], cfg["test"], val_size=cfg["val"])
    base = dict(lr=cfg["base_lr"], batch=cfg["base_batch"])
    rows = []
    for norm in cfg["norms"]:
        for lr in cfg["lrs"]:
            rows.append(arm(data, cfg, seeds, part="lr", norm=norm, lr=lr, batch=base["batch"]))
    for norm in cfg["norms"]:
        for batch in cfg["batches"]:
            lr = cfg["base_lr"] * batch / cfg["base_batch"]
            if batch != base["batch"]:  # the base batch is part A's run at base_lr
                rows.append(arm(data, cfg, seeds, part="batch", norm=norm, lr=lr, batch=batch))
    for act in cfg["activations"]:
        if act != "relu":  # BN + ReLU is part A's run at base_lr
            rows.append(arm(data, cfg, seeds, part="activation", norm="BN", activation=act, **base))
    wall = time.perf_counter() - start
    meta = {**cfg, "momentum": MOMENTUM, "num_groups": NUM_GROUPS}
    meta.update(seeds=args.seeds, smoke=args.smoke)
    common.write_results(args.out, NAME, rows, tables(rows, cfg), meta=meta, wall_s=wall)
    plot(rows, cfg, args.out)
    return {"rows": rows, "wall_s": wall}


def find(rows, norm, *, lr=None, batch=None, activation="relu"):
    """The row of `norm` at `lr` and `batch` (either part), or None."""
    for r in rows:
        if (r["norm"], r["activation"]) == (norm, activation) and (
            (lr is None or np.isclose(r["lr"], lr)) and (batch is None or r["batch"] == batch)
        ):
            return r
    return None


def cell(row, epoch: int = -1) -> str:
    acc = [a[epoch] if len(a) > epoch else a[-1] for a in row["test_accuracy_epochs"]]
    text = common.fmt(*common.mean_std(acc), scale=100)
    return text + (f" ({row['diverged']} div.)" if row["diverged"] else "")


def tables(rows, cfg) -> str:
    b0, lr0 = cfg["base_batch"], cfg["base_lr"]
    norms = cfg["norms"]
    epochs = cfg["epochs"]

    def best(norm):  # chosen on the validation set
        runs = [r for r in rows if r["norm"] == norm and r["part"] == "lr"]
        return max(runs, key=lambda r: np.mean(r["val_accuracy"]))

    bn_best = best("BN") if "BN" in norms else None
    header = (
        "norm",
        *(f"lr {lr:g}" for lr in cfg["lrs"]),
        "best lr (val.)",
        "val. acc. at best",
        "test acc. at best",
        "best vs BN's best (test)",
    )
    body = [
        (
            n,
            *(cell(find(rows, n, lr=lr, batch=b0)) for lr in cfg["lrs"]),
            f"{best(n)['lr']:g}",
            common.fmt(*common.mean_std(best(n)["val_accuracy"]), scale=100),
            cell(best(n)),
            "—"
            if bn_best is None or n == "BN"
            else common.compare(best(n)["test_accuracy"], bn_best["test_accuracy"]),
        )
        for n in norms
    ]
    part_a = (
        f"**A. Learning rate** (batch {b0}): test accuracy % after {epochs} epochs of "
        f"{cfg['train']:,} images, mean ± std over seeds ('div.': runs whose loss became "
        f"non-finite). Each norm's best rate is the one with the highest mean validation "
        f"accuracy ({cfg['val']:,} held-out training images); the last column compares "
        f"test accuracies at the chosen rates.\n\n" + common.markdown_table(header, body)
    )
    header = ("norm", "after epoch 1", f"after epoch {epochs}", "mean train loss, epoch 1")
    body = []
    for n in norms:
        r = find(rows, n, lr=lr0, batch=b0)
        half = len(r["train_loss_curve"]) // epochs
        body.append((n, cell(r, 0), cell(r), f"{np.mean(r['train_loss_curve'][:half]):.3f}"))
    convergence = (
        f"**A. Convergence** at lr {lr0:g}, batch {b0}: test accuracy % after each epoch.\n\n"
        + common.markdown_table(header, body)
    )
    batches = cfg["batches"]
    header = ("norm", *(f"batch {b} (lr {lr0 * b / b0:g})" for b in batches))
    body = [(n, *(cell(find(rows, n, batch=b, lr=lr0 * b / b0)) for b in batches)) for n in norms]
    if {"BN", "GN"} <= set(norms):
        body.append(
            (
                "BN vs GN",
                *(
                    common.compare(
                        find(rows, "BN", batch=b, lr=lr0 * b / b0)["test_accuracy"],
                        find(rows, "GN", batch=b, lr=lr0 * b / b0)["test_accuracy"],
                    )
                    for b in batches
                ),
            )
        )
    part_b = (
        f"**B. Batch size**: test accuracy % after {epochs} epochs of {cfg['train']:,} images "
        f"at every batch size, lr scaled linearly with the batch.\n\n"
        + common.markdown_table(header, body)
    )
    relu = find(rows, "BN", lr=lr0, batch=b0)
    header = ("BN followed by", "test acc. % (mean ± std)", "vs BN + ReLU")
    body = []
    for act in cfg["activations"]:
        r = find(rows, "BN", lr=lr0, batch=b0, activation=act)
        vs = "—" if act == "relu" else common.compare(r["test_accuracy"], relu["test_accuracy"])
        body.append((act, cell(r), vs))
    part_c = (
        f"**C. The activation after BN** (lr {lr0:g}, batch {b0}).\n\n"
        + common.markdown_table(header, body)
    )
    return "\n\n".join((part_a, convergence, part_b, part_c))


def plot(rows, cfg, out) -> None:
    b0, lr0 = cfg["base_batch"], cfg["base_lr"]
    colors = {n: f"C{i}" for i, n in enumerate(NORMS)}
    fig, axes = common.figure(1, 3, figsize=(15, 4.2))
    ax = axes[0, 0]
    for n in cfg["norms"]:
        curve = find(rows, n, lr=lr0, batch=b0)["train_loss_curve"]
        ax.plot(np.linspace(0, cfg["epochs"], len(curve)), curve, color=colors[n], label=n)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_title(f"convergence: lr {lr0:g}, batch {b0}", fontsize="medium")
    ax.set_ylim(0, 2.5)
    ax.legend(fontsize="small")

    for ax, key, values, label in (
        (axes[0, 1], "lr", cfg["lrs"], f"learning rate (batch {b0})"),
        (axes[0, 2], "batch", cfg["batches"], f"batch size (lr = {lr0:g} × batch / {b0})"),
    ):
        for n in cfg["norms"]:
            if key == "lr":
                arms = [find(rows, n, lr=v, batch=b0) for v in values]
            else:
                arms = [find(rows, n, batch=v, lr=lr0 * v / b0) for v in values]
            common.errorbar(
                ax,
                values,
                [r["test_accuracy"] for r in arms],
                marker="o",
                color=colors[n],
                label=n,
            )
        ax.set_xscale("log", base=2 if key == "batch" else 10)
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set_xlabel(label)
        ax.set_ylabel(f"test accuracy % after {cfg['epochs']} epochs")
        ax.axhline(10, color="0.4", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    axes[0, 1].set_title("learning-rate tolerance", fontsize="medium")
    axes[0, 2].set_title("batch-size sensitivity", fontsize="medium")
    fig.suptitle(f"cnn_small ×{cfg['width']:g}, {cfg['train']:,} Fashion-MNIST images")
    common.savefig(fig, out / "normalization.png")


if __name__ == "__main__":
    main()
