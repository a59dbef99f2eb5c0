"""Saturating activations (sigmoid, tanh) vanish gradients in deep nets; the ReLU family does not.

A 20-layer plain CNN (3x3 convs, width 16, no normalisation; `PlainCNN`) with
each of jcnn's ten activations. At initialisation: the norm of d loss / d W of
every conv kernel on a real batch of 128 Fashion-MNIST images, averaged over
seeds, (a) with the initialiser each activation is normally paired with and
(b) with He-normal for all (jcnn's default). After a fixed budget (4,000
train images, 3 epochs, SGD + momentum): test accuracy on 2,000 test images,
mean ± std over seeds.

    python experiments/activations/run.py [--smoke] [--seeds N] [--out DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common

from jcnn.models import ACTIVATIONS, Parts

NAME = "activations"
# The initialiser each activation is paired with in practice: Glorot & Bengio
# (2010) for the saturating pair, He et al. (2015) for the rectifiers,
# Klambauer et al. (2017) for SELU. Maxout of 2 pieces keeps the second
# moment of its inputs (E[max(a, b)^2] = E[a^2] for i.i.d. symmetric a, b),
# so the variance-preserving choice is LeCun (1 / fan_in), not He.
MATCHED_INIT = {
    "sigmoid": "xavier_normal",
    "tanh": "xavier_normal",
    "selu": "lecun_normal",
    "maxout": "lecun_normal",
}
SATURATING = ("sigmoid", "tanh")
# SGD + momentum at lr 0.01: the setting He et al. (2015) trained deep plain
# (no normalisation) nets with; the same for every arm, not tuned.
OPTIM = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
FULL = dict(depth=20, width=16, train=4000, test=2000, epochs=3, batch=64, probe=128)
SMOKE = dict(depth=3, width=4, train=128, test=128, epochs=1, batch=64, probe=32)
SMOKE_ACTIVATIONS = ("relu", "selu")  # He and non-He paths, the `vs relu` column


def init_of(activation: str) -> str:
    return MATCHED_INIT.get(activation, "he_normal")


def profile(model, init_model, x, y, seeds) -> tuple[np.ndarray, np.ndarray]:
    """Per-conv-layer gradient norms and output stds at initialisation, mean over `seeds`."""
    norms, stds = [], []
    for seed in seeds:
        variables = init_model.init(jax.random.key(seed), x[:1], train=False)
        # `model` and `init_model` differ only in their initialiser: one compile.
        layers = common.kernel_grad_norms(model, variables, x, y)
        norms.append([g for name, g in layers if name.startswith("conv")])
        outputs = common.layer_outputs(model, variables, x, prefixes=("act",))["act"]
        stds.append([common.array_std(a) for a in outputs])
    return np.mean(norms, axis=0), np.mean(stds, axis=0)


def main(argv=None) -> dict:
    args = common.parse_args(NAME, __doc__, argv)
    cfg = SMOKE if args.smoke else FULL
    activations = SMOKE_ACTIVATIONS if args.smoke else ACTIVATIONS
    seeds = range(args.seeds)
    start = time.perf_counter()
    data = common.load_data(cfg["train"], cfg["test"])
    x, y = data.batch(cfg["probe"])
    rows = []
    for act in activations:
        model = common.PlainCNN(
            depth=cfg["depth"],
            width=cfg["width"],
            parts=Parts(norm=None, activation=act, kernel_init=init_of(act)),
        )
        matched, stds = profile(model, model, x, y, seeds)
        he = model.clone(parts=Parts(norm=None, activation=act, kernel_init="he_normal"))
        he_profile = matched if init_of(act) == "he_normal" else profile(model, he, x, y, seeds)[0]
        runs = common.run_seeds(
            model,
            data,
            seeds,
            epochs=cfg["epochs"],
            batch_size=cfg["batch"],
            optim=OPTIM,
            eval_train=False,
        )
        rows.append(
            {
                "activation": act,
                "init": init_of(act),
                "grad_norms": matched.tolist(),
                "grad_norms_he": he_profile.tolist(),
                "act_std": stds.tolist(),
                # Conv 1 sees 1 input channel; convs 2.. all have the same kernel shape.
                "grad_ratio": float(matched[1] / matched[-1]),
                "grad_ratio_he": float(he_profile[1] / he_profile[-1]),
                **common.pick(runs, "test_accuracy", "test_accuracy_curve", "diverged", "wall_s"),
            }
        )
        print(
            f"{act:>10}: grad ratio {rows[-1]['grad_ratio']:.2e}, test accuracy "
            f"{common.fmt(*common.mean_std(rows[-1]['test_accuracy']), scale=100)}",
            flush=True,
        )
    wall = time.perf_counter() - start
    markdown = table(rows, cfg)
    common.write_results(args.out, NAME, rows, markdown, meta=settings(cfg, args), wall_s=wall)
    plot(rows, cfg, args.out)
    return {"rows": rows, "wall_s": wall}


def settings(cfg, args) -> dict:
    return {**cfg, "optim": OPTIM, "seeds": args.seeds, "smoke": args.smoke}


def table(rows, cfg) -> str:
    relu = next((r["test_accuracy"] for r in rows if r["activation"] == "relu"), None)
    last = cfg["depth"]
    header = (
        "activation",
        "init",
        f"‖g₂‖/‖g{last}‖ (its init)",
        f"‖g₂‖/‖g{last}‖ (He)",
        f"‖g{last}‖",
        f"output std, layer {last}",
        "test acc. % (mean ± std)",
        "vs relu",
        "diverged",
    )
    body = [
        (
            r["activation"],
            r["init"],
            f"{r['grad_ratio']:.2g}",
            f"{r['grad_ratio_he']:.2g}",
            f"{r['grad_norms'][-1]:.2g}",
            f"{r['act_std'][-1]:.2g}",
            common.fmt(*common.mean_std(r["test_accuracy"]), scale=100),
            "—"
            if r["activation"] == "relu" or relu is None
            else common.compare(r["test_accuracy"], relu),
            f"{r['diverged']}/{len(r['test_accuracy'])}",
        )
        for r in rows
    ]
    return (
        f"At initialisation (mean over seeds): the gradient norm of conv 2 over that of conv "
        f"{last} (< 1: the gradient shrinks on its way back to the input), with each "
        f"activation's usual initialiser and with He-normal for all; the gradient norm of conv "
        f"{last} and the std of its output (usual initialiser). Then the test accuracy after "
        f"{cfg['epochs']} epochs of {cfg['train']:,} images ({cfg['test']:,} test images); "
        f"`vs relu`: tie when the gap is within the spread.\n\n"
        + common.markdown_table(header, body)
    )


def plot(rows, cfg, out) -> None:
    fig, axes = common.figure(1, 3, figsize=(15, 4.3))
    layers = np.arange(1, cfg["depth"] + 1)
    colors = dict(zip(ACTIVATIONS, [f"C{i}" for i in range(len(ACTIVATIONS))], strict=True))
    for ax, key, title in (
        (axes[0, 0], "grad_norms", "‖d loss / d W‖, each activation's usual init"),
        (axes[0, 1], "grad_norms_he", "‖d loss / d W‖, He-normal init for all"),
        (axes[0, 2], "act_std", "std of the layer's output, usual init"),
    ):
        for r in rows:
            style = "--" if r["activation"] in SATURATING else "-"
            ax.plot(layers, r[key], style, color=colors[r["activation"]], label=r["activation"])
        ax.set_yscale("log")
        ax.set_xlabel("conv layer (1 = input side)")
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("at initialisation")
    axes[0, 2].legend(fontsize="small", ncols=2)
    fig.suptitle(f"{cfg['depth']}-layer plain CNN, no normalisation, Fashion-MNIST batch")
    common.savefig(fig, out / "grad_norms.png")

    fig, axes = common.figure(1, 1, figsize=(7, 3.6))
    ax = axes[0, 0]
    stats = [common.mean_std(r["test_accuracy"]) for r in rows]
    ax.bar(
        np.arange(len(rows)),
        [100 * m for m, _ in stats],
        yerr=[100 * np.nan_to_num(s) for _, s in stats],
        color=[colors[r["activation"]] for r in rows],
        capsize=3,
    )
    ax.axhline(10, color="0.4", lw=0.8, ls=":", label="chance")
    ax.set_ylabel("test accuracy % (mean ± std)")
    ax.set_title(f"after {cfg['epochs']} epochs of {cfg['train']:,} images", fontsize="medium")
    ax.set_xticks(np.arange(len(rows)), [r["activation"] for r in rows], rotation=30)
    ax.legend(fontsize="small")
    common.savefig(fig, out / "accuracy.png")


if __name__ == "__main__":
    main()
