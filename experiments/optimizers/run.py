"""Momentum speeds up SGD, Nesterov a little more, Adam trains fastest (each at its best rate).

jcnn's `cnn_small` at width 0.25 (batch norm, ReLU) trained on 2,000
Fashion-MNIST images for 3 epochs (batch 64, constant learning rate) with
plain SGD, SGD + momentum 0.9, SGD + Nesterov momentum 0.9 and Adam (default
betas), each over a sweep of four learning rates half a decade apart (the
momentum grids are 10x below plain SGD's, as momentum 0.9 multiplies the step
by about 1 / (1 - 0.9)); when the best rate is an end of its sweep, the next
half-decade rate beyond it is added (at most twice), so that the chosen rate
is inside the sweep. The learning rate is chosen on 1,000 held-out
training images (validation accuracy after the last epoch, mean over seeds);
the chosen runs are then measured on 2,000 test images: mean ± std over seeds.

    python experiments/optimizers/run.py [--smoke] [--seeds N] [--out DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common

from jcnn import models

NAME = "optimizers"
OPTIMIZERS = {
    "SGD": ({"name": "sgd"}, (0.03, 0.1, 0.3, 1.0)),
    "momentum": ({"name": "sgd", "momentum": 0.9}, (0.003, 0.01, 0.03, 0.1)),
    "Nesterov": ({"name": "sgd", "momentum": 0.9, "nesterov": True}, (0.003, 0.01, 0.03, 0.1)),
    "Adam": ({"name": "adam"}, (1e-4, 3e-4, 1e-3, 3e-3)),
}
FULL = dict(train=2000, val=1000, test=2000, epochs=3, batch=64, width=0.25)
SMOKE = dict(train=192, val=64, test=128, epochs=1, batch=64, width=0.25)
# The reference of the `vs momentum` column and another; one rate each, extended once, so
# that the sweep has two arms to choose from (one compiled step per optimiser).
SMOKE_OPTIMIZERS = ("momentum", "Adam")
SMOKE_EXTENSIONS = 1
CURVE_POINTS = 150
# A best rate at an end of the sweep adds the next half-decade rate beyond it, at most
# this many times per optimiser (the initial grids are a guess; the optimum must be inside).
MAX_EXTENSIONS = 2


def sweep_point(name, base, lr, model, data, cfg, seeds) -> dict:
    """One optimiser at one learning rate, from every seed: its row of results.json."""
    runs = common.run_seeds(
        model,
        data,
        seeds,
        epochs=cfg["epochs"],
        batch_size=cfg["batch"],
        optim={**base, "lr": lr},
        eval_train=False,
    )
    row = {
        "optimizer": name,
        "lr": lr,
        **common.pick(runs, "val_accuracy", "val_accuracy_epochs", "test_accuracy"),
        "train_loss_curve": common.downsample(runs["train_loss_steps_curve"], CURVE_POINTS),
        **common.pick(runs, "diverged", "wall_s"),
    }
    val = common.fmt(*common.mean_std(row["val_accuracy"]), scale=100)
    print(f"{name:>9} lr {lr:<7g}: val {val}", flush=True)
    return row


def next_rate(lrs, best):
    """The half-decade step beyond `best` when it is an end of the sweep `lrs`, else None."""
    ladder = [float(f"{m}e{e}") for e in range(-6, 2) for m in (1, 3)]
    i = int(np.argmin([abs(np.log(v / best)) for v in ladder]))
    if best == min(lrs) and i > 0:
        return ladder[i - 1]
    if best == max(lrs) and i + 1 < len(ladder):
        return ladder[i + 1]
    return None


def main(argv=None) -> dict:
    args = common.parse_args(NAME, __doc__, argv)
    cfg = SMOKE if args.smoke else FULL
    names = SMOKE_OPTIMIZERS if args.smoke else tuple(OPTIMIZERS)
    seeds = range(args.seeds)
    start = time.perf_counter()
    data = common.load_data(cfg["train"], cfg["test"], val_size=cfg["val"])
    model = models.create("cnn_small", num_classes=10, width=cfg["width"])
    rows = []
    for name in names:
        base, lrs = OPTIMIZERS[name]
        lrs = list(lrs[1:2] if args.smoke else lrs)
        mine, extensions = {}, 0
        while True:
            for lr in lrs:
                if lr not in mine:
                    mine[lr] = sweep_point(name, base, lr, model, data, cfg, seeds)
            best = max(lrs, key=lambda lr: np.mean(mine[lr]["val_accuracy"]))
            extra = next_rate(lrs, best)
            if extra is None or extensions == (SMOKE_EXTENSIONS if args.smoke else MAX_EXTENSIONS):
                break
            lrs, extensions = sorted([*lrs, extra]), extensions + 1
        for lr in lrs:
            mine[lr]["chosen"] = lr == best
            rows.append(mine[lr])
    wall = time.perf_counter() - start
    meta = {**cfg, "optimizers": {k: OPTIMIZERS[k] for k in names}}
    meta.update(seeds=args.seeds, smoke=args.smoke)
    common.write_results(args.out, NAME, rows, tables(rows, cfg), meta=meta, wall_s=wall)
    plot(rows, cfg, args.out)
    return {"rows": rows, "wall_s": wall}


def tables(rows, cfg) -> str:
    names = list(dict.fromkeys(r["optimizer"] for r in rows))
    width = max(len([r for r in rows if r["optimizer"] == n]) for n in names)
    header = ("optimizer", *(f"lr #{i + 1}" for i in range(width)))
    body = []
    for n in names:
        cells = []
        for r in (r for r in rows if r["optimizer"] == n):
            text = f"{r['lr']:g}: " + common.fmt(*common.mean_std(r["val_accuracy"]), scale=100)
            text += f" ({r['diverged']} div.)" if r["diverged"] else ""
            cells.append(f"**{text}**" if r["chosen"] else text)
        body.append((n, *cells, *[""] * (width - len(cells))))
    sweep = (
        f"**Sweep**: validation accuracy % ({cfg['val']:,} held-out training images) after "
        f"{cfg['epochs']} epochs, mean ± std over seeds, per learning rate; the chosen rate "
        f"in bold.\n\n" + common.markdown_table(header, body)
    )
    chosen = {r["optimizer"]: r for r in rows if r["chosen"]}
    ref = chosen.get("momentum")
    header = (
        "optimizer",
        "chosen lr",
        "val acc. % after epoch 1",
        "test acc. % (mean ± std)",
        "test vs momentum",
    )
    body = []
    for n, r in chosen.items():
        first = [a[0] for a in r["val_accuracy_epochs"]]
        vs = (
            "—"
            if ref is None or n == "momentum"
            else common.compare(r["test_accuracy"], ref["test_accuracy"])
        )
        body.append(
            (
                n,
                f"{r['lr']:g}",
                common.fmt(*common.mean_std(first), scale=100),
                common.fmt(*common.mean_std(r["test_accuracy"]), scale=100),
                vs,
            )
        )
    final = (
        f"**At the chosen learning rate**: validation accuracy after the first epoch (speed) "
        f"and test accuracy ({cfg['test']:,} test images) after {cfg['epochs']} epochs.\n\n"
        + common.markdown_table(header, body)
    )
    return sweep + "\n\n" + final


def plot(rows, cfg, out) -> None:
    names = list(dict.fromkeys(r["optimizer"] for r in rows))
    colors = {n: f"C{i}" for i, n in enumerate(OPTIMIZERS)}
    fig, axes = common.figure(1, 3, figsize=(15, 4.2))
    ax = axes[0, 0]
    for n in names:
        mine = [r for r in rows if r["optimizer"] == n]
        common.errorbar(
            ax,
            [r["lr"] for r in mine],
            [r["val_accuracy"] for r in mine],
            marker="o",
            color=colors[n],
            label=n,
        )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation accuracy %")
    ax.set_title("learning-rate sweep", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    chosen = [r for r in rows if r["chosen"]]
    ax = axes[0, 1]
    for r in chosen:
        curve = r["train_loss_curve"]
        ax.plot(
            np.linspace(0, cfg["epochs"], len(curve)),
            curve,
            color=colors[r["optimizer"]],
            label=f"{r['optimizer']} (lr {r['lr']:g})",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_title("training loss at the chosen rate", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax = axes[0, 2]
    epochs = np.arange(1, cfg["epochs"] + 1)
    for r in chosen:
        curve = 100 * np.asarray(common.mean_curve(r["val_accuracy_epochs"]))
        ax.plot(epochs, curve, "-o", color=colors[r["optimizer"]], label=r["optimizer"])
    ax.set_xlabel("epoch")
    ax.set_xticks(epochs)
    ax.set_ylabel("validation accuracy % (mean over seeds)")
    ax.set_title("validation accuracy at the chosen rate", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(f"cnn_small ×{cfg['width']:g}, {cfg['train']:,} Fashion-MNIST images")
    common.savefig(fig, out / "optimizers.png")


if __name__ == "__main__":
    main()
