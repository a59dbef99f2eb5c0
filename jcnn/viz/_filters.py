"""The learned first-layer filters of a trained run."""

from __future__ import annotations

import math

import jax
import numpy as np

from jcnn.viz._figure import new_figure, save


def first_conv_kernel(params) -> tuple[str, np.ndarray]:
    """``(name, HWIO kernel)`` of the first conv: ``conv1`` of the zoo's models,
    else the first 4-D ``kernel`` in tree order."""
    if "conv1" in params and np.ndim(params["conv1"].get("kernel")) == 4:
        return "conv1", np.asarray(params["conv1"]["kernel"])
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if np.ndim(leaf) == 4 and getattr(path[-1], "key", None) == "kernel":
            return jax.tree_util.keystr(path), np.asarray(leaf)
    raise ValueError("plot_filters: the model has no 4-D conv kernel to show.")


def plot_filters(trained, out, *, figsize=(8.0, 4.5), dpi: int = 100):
    """One tile per output channel of the first conv layer of `trained`
    (`jcnn.interop.Trained`, or a workdir).

    One input channel: the kernel on a diverging map centred at 0 (red
    positive, blue negative), one symmetric scale for all tiles so their
    strengths compare; three: each filter min-max scaled to RGB; otherwise
    the mean over input channels. Returns the PNG path.
    """
    from jcnn.interop import load_trained

    if not hasattr(trained, "variables"):
        trained = load_trained(trained)
    name, k = first_conv_kernel(trained.variables["params"])
    kh, kw, cin, cout = k.shape
    cols = math.ceil(math.sqrt(cout * figsize[0] / figsize[1]))
    rows = math.ceil(cout / cols)
    fig = new_figure(figsize, dpi, "plot_filters")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    scale = float(np.abs(k).max()) or 1.0
    for o, ax in enumerate(axes):
        ax.set_axis_off()
        if o >= cout:
            continue
        if cin == 3:
            f = k[:, :, :, o]
            f = (f - f.min()) / (np.ptp(f) or 1.0)
            ax.imshow(f, interpolation="nearest")
        else:
            f = k[:, :, :, o].mean(axis=2)
            ax.imshow(f, cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
    fig.suptitle(
        f"{trained.config.model.name} {name}: {cout} filters {kh}x{kw}x{cin} "
        f"(step {trained.step}, |w| <= {scale:.3g})",
        fontsize="medium",
    )
    return save(fig, out)
