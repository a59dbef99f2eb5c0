"""Small weights vanish the signal, large ones saturate; Xavier fits tanh, He ReLU, LeCun SELU.

The 20-layer plain CNN of the activations study (3x3 convs, width 16, no
normalisation) with five initialisers of every conv and the head -- a fixed
N(0, 0.01^2), Xavier-normal, LeCun-normal, He-normal and a fixed N(0, 1) --
crossed with tanh, ReLU and SELU. At initialisation: the standard deviation of
each layer's output on 128 Fashion-MNIST images (mean over seeds) and the
share of the last layer's units where the activation's slope f'(x) < 0.05.
After a fixed budget (4,000 train images, 3 epochs, SGD + momentum): test
accuracy on 2,000 test images, mean ± std over seeds. Each activation's best
initialiser is chosen on 1,000 held-out training images (validation accuracy,
mean over seeds) and the others are compared with it on the test set.

    python experiments/initialization/run.py [--smoke] [--seeds N] [--out DIR]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _common as common

import jcnn.functional as F
from jcnn import init
from jcnn.models import Parts

NAME = "initialization"
# name -> (initialiser, what it stands for). The fixed scales are the classic
# "gaussian std 0.01" of early CNN recipes and a unit normal; for a 3x3 conv
# of 16 channels (fan_in 144) He's std is 0.118 and Xavier's = LeCun's 0.083
# (fan_in = fan_out, so the two differ only in the first conv and the head).
INITS = {
    "N(0, 0.01²)": (lambda: init.normal(0.01), "too small"),
    "xavier_normal": (init.xavier_normal, "Glorot & Bengio 2010"),
    "lecun_normal": (init.lecun_normal, "LeCun et al. 1998"),
    "he_normal": (init.he_normal, "He et al. 2015"),
    "N(0, 1)": (lambda: init.normal(1.0), "too large"),
}
ACTIVATIONS = ("tanh", "relu", "selu")
# The initialiser the claim pairs with each activation.
EXPECTED = {"tanh": "xavier_normal", "relu": "he_normal", "selu": "lecun_normal"}
SATURATED_SLOPE = 0.05
OPTIM = {"name": "sgd", "lr": 0.01, "momentum": 0.9}  # as in the activations study
FULL = dict(depth=20, width=16, train=4000, val=1000, test=2000, epochs=3, batch=64, probe=128)
SMOKE = dict(depth=3, width=4, train=128, val=60, test=128, epochs=1, batch=64, probe=32)
SMOKE_GRID = (("relu",), ("xavier_normal", "he_normal"))


def slope(activation: str, pre):
    """f'(x) elementwise (a JVP with a tangent of ones: the activations are elementwise)."""
    return jax.jvp(getattr(F, activation), (pre,), (jnp.ones_like(pre),))[1]


def signal_profile(model, init_model, act, x, seeds):
    """Per-layer output std and last-layer saturated share at initialisation, mean over seeds."""
    stds, saturated = [], []
    for seed in seeds:
        variables = init_model.init(jax.random.key(seed), x[:1], train=False)
        out = common.layer_outputs(model, variables, x, prefixes=("conv", "act"))
        stds.append([common.array_std(a) for a in out["act"]])
        saturated.append(float(jnp.mean(slope(act, out["conv"][-1]) < SATURATED_SLOPE)))
    return np.mean(stds, axis=0), float(np.mean(saturated))


def main(argv=None) -> dict:
    args = common.parse_args(NAME, __doc__, argv)
    cfg = SMOKE if args.smoke else FULL
    activations, inits = SMOKE_GRID if args.smoke else (ACTIVATIONS, tuple(INITS))
    seeds = range(args.seeds)
    start = time.perf_counter()
    data = common.load_data(cfg["train"], cfg["test"], val_size=cfg["val"])
    x, _ = data.batch(cfg["probe"])
    rows = []
    for act in activations:
        parts = Parts(norm=None, activation=act)
        # One compiled step per activation: the initialisers only change the start.
        model = common.PlainCNN(depth=cfg["depth"], width=cfg["width"], parts=parts)
        for name in inits:
            init_model = model.clone(kernel_init=INITS[name][0]())
            stds, saturated = signal_profile(model, init_model, act, x, seeds)
            runs = common.run_seeds(
                model,
                data,
                seeds,
                epochs=cfg["epochs"],
                batch_size=cfg["batch"],
                optim=OPTIM,
                eval_train=False,
                init_model=init_model,
            )
            rows.append(
                {
                    "activation": act,
                    "init": name,
                    "act_std": stds.tolist(),
                    "saturated_last": saturated,
                    **common.pick(runs, "val_accuracy", "test_accuracy", "diverged", "wall_s"),
                }
            )
            acc = common.fmt(*common.mean_std(rows[-1]["test_accuracy"]), scale=100)
            print(f"{act:>5} {name:>14}: std last {stds[-1]:.2e}, acc {acc}", flush=True)
    wall = time.perf_counter() - start
    meta = {**cfg, "optim": OPTIM, "seeds": args.seeds, "smoke": args.smoke}
    common.write_results(args.out, NAME, rows, table(rows, cfg), meta=meta, wall_s=wall)
    plot(rows, cfg, activations, inits, args.out)
    return {"rows": rows, "wall_s": wall}


def table(rows, cfg) -> str:
    d = cfg["depth"]
    mid = d // 2
    header = (
        "activation",
        "init",
        "std layer 1",
        f"std layer {mid}",
        f"std layer {d}",
        f"f′ < {SATURATED_SLOPE} at layer {d}",
        "val. acc. %",
        "test acc. % (mean ± std)",
        "vs best init (test)",
        "diverged",
    )
    body = []
    for r in rows:
        same = [q for q in rows if q["activation"] == r["activation"]]
        best = max(same, key=lambda q: np.mean(q["val_accuracy"]))  # chosen on validation
        std = r["act_std"]
        body.append(
            (
                r["activation"],
                ("**" + r["init"] + "**") if EXPECTED[r["activation"]] == r["init"] else r["init"],
                f"{std[0]:.2g}",
                f"{std[mid - 1]:.2g}",
                f"{std[-1]:.2g}",
                f"{100 * r['saturated_last']:.0f}%",
                common.fmt(*common.mean_std(r["val_accuracy"]), scale=100),
                common.fmt(*common.mean_std(r["test_accuracy"]), scale=100),
                "best" if best is r else common.compare(r["test_accuracy"], best["test_accuracy"]),
                f"{r['diverged']}/{len(r['test_accuracy'])}",
            )
        )
    return (
        f"Std of each layer's output at initialisation (mean over seeds), share of layer-{d} "
        f"units with slope f′(x) < {SATURATED_SLOPE} (for ReLU: its inactive half), and test "
        f"accuracy after {cfg['epochs']} epochs of {cfg['train']:,} images ({cfg['test']:,} test "
        f"images). **Bold**: the initialiser the claim pairs with the activation. The best "
        f"init of each activation is the one with the highest mean validation accuracy "
        f"({cfg['val']:,} held-out training images); `vs best init` compares test "
        f"accuracies, a tie when the gap is within the spread.\n\n"
        + common.markdown_table(header, body)
    )


def plot(rows, cfg, activations, inits, out) -> None:
    layers = np.arange(1, cfg["depth"] + 1)
    colors = {name: f"C{i}" for i, name in enumerate(INITS)}
    fig, axes = common.figure(1, len(activations), figsize=(4.2 * len(activations), 4))
    for ax, act in zip(axes[0], activations, strict=True):
        for r in (r for r in rows if r["activation"] == act):
            lw = 2.4 if EXPECTED[act] == r["init"] else 1.3
            ax.plot(layers, r["act_std"], color=colors[r["init"]], lw=lw, label=r["init"])
        ax.set_yscale("log")
        ax.set_title(act)
        ax.set_xlabel("layer (1 = input side)")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("std of the layer's output at init")
    axes[0, -1].legend(fontsize="small")
    fig.suptitle(f"{cfg['depth']}-layer plain CNN at init (thick: the expected init)")
    common.savefig(fig, out / "activation_std.png")

    fig, axes = common.figure(1, 1, figsize=(8, 3.6))
    ax = axes[0, 0]
    width = 0.8 / len(inits)
    for i, name in enumerate(inits):
        stats = [
            common.mean_std(r["test_accuracy"])
            for act in activations
            for r in rows
            if r["activation"] == act and r["init"] == name
        ]
        ax.bar(
            np.arange(len(activations)) + (i - (len(inits) - 1) / 2) * width,
            [100 * m for m, _ in stats],
            width,
            yerr=[100 * np.nan_to_num(s) for _, s in stats],
            color=colors[name],
            capsize=2,
            label=name,
        )
    ax.axhline(10, color="0.4", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(activations)), activations)
    ax.set_ylabel("test accuracy % (mean ± std)")
    ax.set_title(f"after {cfg['epochs']} epochs of {cfg['train']:,} images", fontsize="medium")
    ax.legend(fontsize="small", ncols=3)
    common.savefig(fig, out / "accuracy.png")


if __name__ == "__main__":
    main()
