"""Start the learning rate between 0.1 and 0.001, decay it, and end at least 100x below the peak.

jcnn's `cnn_small` at width 0.25 (batch norm, ReLU) trained on 2,000
Fashion-MNIST images for 4 epochs (batch 64, SGD + momentum 0.9), tested on
2,000 test images; mean ± std over seeds. Statements of which setting is
best are made on 1,000 held-out training images (validation accuracy); the
test set measures the settings so chosen. Three sweeps around one reference
run, a cosine decay from 0.1 to 0.001:

A. the shape, at peak 0.1 and final/peak 1/100: constant (no decay), step
   (x0.1 at 50% and 75% of training), exponential, cosine, and a linear
   warmup over the first half epoch followed by cosine;
B. how far to decay: cosine from 0.1 down to 0.1 / r for r in 1 (constant),
   10, 100 and 1000;
C. where to start: cosine from the peak p to p / 100 for p in 1, 0.1, 0.01,
   0.001 and 0.0001; and a constant 0.01, which separates the peak's effect
   from the decay's.

    python experiments/lr_schedules/run.py [--smoke] [--seeds N] [--out DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common

from jcnn import models
from jcnn import optim as joptim

NAME = "lr_schedules"
PEAK = 0.1
RATIO = 100
SHAPES = ("constant", "step", "exponential", "cosine", "warmup_cosine")
RATIOS = (1, 10, 100, 1000)
PEAKS = (1.0, 0.1, 0.01, 0.001, 0.0001)
FULL = dict(train=2000, val=1000, test=2000, epochs=4, batch=64, width=0.25, warmup_epochs=0.5)
SMOKE = dict(FULL, train=128, val=60, test=128, epochs=1)
# Two peaks of one shape: two arms, one compiled step (the peak rate is traced).
SMOKE_GRID = dict(shapes=("cosine",), ratios=(RATIO,), peaks=(PEAK, PEAK / 10), constant_peaks=())
CONSTANT_PEAKS = (0.01,)  # constant rates besides PEAK's (part C's control)
SUMMARY = (
    "val_accuracy",
    "test_accuracy",
    "train_accuracy",
    "test_accuracy_curve",
    "train_loss_curve",
    "diverged",
    "wall_s",
)  # the keys of `common.run_seeds` each row reports


def schedule(shape: str, peak: float, ratio: float, cfg) -> dict:
    """The `jcnn.optim.make_optimizer` config of a schedule from `peak` to `peak / ratio`."""
    base = {"name": "sgd", "momentum": 0.9, "lr": peak}
    final = peak / ratio
    if shape == "constant" or ratio == 1:
        return {**base, "schedule": "constant"}
    if shape == "step":  # two x0.1 drops reach 1/100; other ratios are not two equal drops
        return {**base, "schedule": "step", "boundaries": (0.5, 0.75), "decay": ratio**-0.5}
    if shape == "warmup_cosine":
        warm = {"warmup_epochs": cfg["warmup_epochs"]}
        return {**base, "schedule": "warmup_cosine", "final_lr": final, **warm}
    return {**base, "schedule": shape, "final_lr": final}


def arms(grid) -> list[tuple[str, str, float, float]]:
    """``(sweep, shape, peak, ratio)`` of every distinct run; the reference run once."""
    out = [("shape", s, PEAK, 1 if s == "constant" else RATIO) for s in grid["shapes"]]
    out += [("ratio", "cosine", PEAK, r) for r in grid["ratios"] if r not in (1, RATIO)]
    out += [("peak", "cosine", p, RATIO) for p in grid["peaks"] if p != PEAK]
    out += [("peak", "constant", p, 1) for p in grid["constant_peaks"]]
    return out


def main(argv=None) -> dict:
    args = common.parse_args(NAME, __doc__, argv)
    cfg = SMOKE if args.smoke else FULL
    grid = (
        SMOKE_GRID
        if args.smoke
        else dict(shapes=SHAPES, ratios=RATIOS, peaks=PEAKS, constant_peaks=CONSTANT_PEAKS)
    )
    seeds = range(args.seeds)
    start = time.perf_counter()
    data = common.load_data(cfg["train"], cfg["test"], val_size=cfg["val"])
    model = models.create("cnn_small", num_classes=10, width=cfg["width"])
    steps_per_epoch = cfg["train"] // cfg["batch"]
    rows = []
    for sweep, shape, peak, ratio in arms(grid):
        optim = schedule(shape, peak, ratio, cfg)
        runs = common.run_seeds(
            model, data, seeds, epochs=cfg["epochs"], batch_size=cfg["batch"], optim=optim
        )
        sched = joptim.make_schedule(
            optim, steps_per_epoch=steps_per_epoch, num_epochs=cfg["epochs"]
        )
        lrs = jax.vmap(sched)(np.arange(steps_per_epoch * cfg["epochs"]))
        rows.append(
            {
                "sweep": sweep,
                "shape": shape,
                "peak": peak,
                "ratio": ratio,
                "optim": optim,
                "lr_curve": np.asarray(lrs, np.float64).tolist(),
                **common.pick(runs, *SUMMARY),
            }
        )
        acc = common.fmt(*common.mean_std(rows[-1]["test_accuracy"]), scale=100)
        print(f"{shape:>13} peak {peak:<6g} ratio {ratio:<5g}: {acc}", flush=True)
    wall = time.perf_counter() - start
    meta = {**cfg, "peak": PEAK, "ratio": RATIO, **grid, "seeds": args.seeds}
    meta["smoke"] = args.smoke
    common.write_results(args.out, NAME, rows, tables(rows, cfg), meta=meta, wall_s=wall)
    plot(rows, cfg, args.out)
    return {"rows": rows, "wall_s": wall}


def find(rows, shape, peak, ratio):
    for r in rows:
        if r["shape"] == shape and np.isclose(r["peak"], peak) and r["ratio"] == ratio:
            return r
    return None


def label(r) -> str:
    if r["shape"] == "constant":
        return f"constant {r['peak']:g}"
    return f"{r['shape']} {r['peak']:g} → {r['peak'] / r['ratio']:g}"


def tables(rows, cfg) -> str:
    ref = find(rows, "cosine", PEAK, RATIO)

    def line(r):
        acc = common.fmt(*common.mean_std(r["test_accuracy"]), scale=100)
        acc += f" ({r['diverged']} div.)" if r["diverged"] else ""
        vs = (
            "—"
            if ref is None or r is ref
            else common.compare(r["test_accuracy"], ref["test_accuracy"])
        )
        train = common.fmt(*common.mean_std(r["train_accuracy"]), scale=100)
        val = common.fmt(*common.mean_std(r["val_accuracy"]), scale=100)
        return (label(r), f"{r['peak']:g}", f"{r['ratio']:g}", train, val, acc, vs)

    header = (
        "schedule",
        "peak lr",
        "peak / final",
        "train acc. %",
        "val. acc. %",
        "test acc. %",
        f"test vs cosine {PEAK:g} → {PEAK / RATIO:g}",
    )
    parts = []
    for title, pick in (
        (
            "A. Shape",
            lambda r: (
                r["shape"] in SHAPES and np.isclose(r["peak"], PEAK) and r["ratio"] in (1, RATIO)
            ),
        ),
        (
            "B. Decay ratio (cosine)",
            lambda r: np.isclose(r["peak"], PEAK) and r["shape"] in ("constant", "cosine"),
        ),
        (
            "C. Peak (cosine to peak / 100; and constant rates)",
            lambda r: (r["shape"] == "cosine" and r["ratio"] == RATIO) or r["shape"] == "constant",
        ),
    ):
        chosen = [r for r in rows if pick(r)]
        if title.startswith("B"):
            chosen.sort(key=lambda r: r["ratio"])
        if title.startswith("C"):
            chosen.sort(key=lambda r: (r["shape"] == "constant", -r["peak"]))
        parts.append(f"**{title}**\n\n" + common.markdown_table(header, [line(r) for r in chosen]))
    intro = (
        f"Accuracy after {cfg['epochs']} epochs on the {cfg['train']:,} training images (eval "
        f"mode), on {cfg['val']:,} held-out training images (validation: where a best "
        f"setting is chosen) and on {cfg['test']:,} test images, mean ± std over seeds; the "
        f"last column compares test accuracies with the reference cosine {PEAK:g} → "
        f"{PEAK / RATIO:g}."
    )
    return "\n\n".join([intro, *parts])


def plot(rows, cfg, out) -> None:
    fig, axes = common.figure(1, 4, figsize=(18, 4.2))
    steps = len(rows[0]["lr_curve"])
    t = np.arange(steps) / (steps / cfg["epochs"])
    ax = axes[0, 0]
    shapes = [r for r in rows if r["sweep"] == "shape"]
    for i, r in enumerate(shapes):
        ax.plot(t, r["lr_curve"], color=f"C{i}", label=r["shape"])
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(f"A. the schedules (peak {PEAK:g})", fontsize="medium")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, which="both")

    ax = axes[0, 1]
    stats = [common.mean_std(r["test_accuracy"]) for r in shapes]
    ax.bar(
        [r["shape"] for r in shapes],
        [100 * m for m, _ in stats],
        yerr=[100 * np.nan_to_num(s) for _, s in stats],
        capsize=3,
        color=[f"C{i}" for i in range(len(shapes))],
    )
    ax.set_ylim(max(0, 100 * min(m for m, _ in stats) - 10), None)
    ax.set_ylabel("test accuracy % (mean ± std)")
    ax.set_title("A. shape: final test accuracy", fontsize="medium")
    ax.tick_params(axis="x", labelrotation=25)

    ratio = sorted(
        (r for r in rows if np.isclose(r["peak"], PEAK) and r["shape"] in ("constant", "cosine")),
        key=lambda r: r["ratio"],
    )
    peak = sorted(
        (r for r in rows if r["shape"] == "cosine" and r["ratio"] == RATIO),
        key=lambda r: r["peak"],
    )
    for ax, key, chosen, xlabel, title in (
        (axes[0, 2], "ratio", ratio, "peak / final", f"B. how far to decay (cosine from {PEAK:g})"),
        (axes[0, 3], "peak", peak, "peak learning rate", f"C. where to start (cosine to /{RATIO})"),
    ):
        common.errorbar(
            ax, [r[key] for r in chosen], [r["test_accuracy"] for r in chosen], fmt="o-"
        )
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy % (mean ± std)")
        ax.set_title(title, fontsize="medium")
        ax.axhline(10, color="0.4", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    axes[0, 2].axvspan(100, max(RATIOS) * 1.5, color="C2", alpha=0.1, label="claim: >= 100")
    axes[0, 3].axvspan(0.001, 0.1, color="C2", alpha=0.1, label="claim: 0.001 to 0.1")
    for ax in axes[0, 2:]:
        ax.legend(fontsize="small")
    fig.suptitle(
        f"cnn_small ×{cfg['width']:g}, SGD + momentum 0.9, {cfg['epochs']} epochs of "
        f"{cfg['train']:,} Fashion-MNIST images"
    )
    common.savefig(fig, out / "lr_schedules.png")


if __name__ == "__main__":
    main()
