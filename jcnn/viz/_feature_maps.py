"""The feature maps of one test image through a trained run."""

from __future__ import annotations

import jax
import numpy as np

from jcnn.viz._figure import new_figure, save


def activation_maps(trained, x) -> list[tuple[str, np.ndarray]]:
    """``(module path, (H, W, C) map)`` of every 4-D activation layer (modules
    named ``act*``) on the single normalised image `x` ``(1, H, W, C)``, in
    call order."""
    _, state = trained.model.apply(
        trained.variables, x, train=False, capture_intermediates=True, mutable=["intermediates"]
    )
    maps = []
    flat = jax.tree_util.tree_flatten_with_path(state["intermediates"])[0]
    for path, value in flat:
        keys = [getattr(p, "key", None) for p in path]
        module = [k for k in keys if isinstance(k, str) and k != "__call__"]
        if module and module[-1].startswith("act") and np.ndim(value) == 4:
            maps.append(("/".join(module), np.asarray(value[0])))
    return maps


def plot_feature_maps(
    trained,
    out,
    *,
    index: int = 0,
    max_layers: int = 6,
    max_channels: int = 8,
    figsize=(10.0, 7.0),
    dpi: int = 100,
):
    """Test image `index` of `trained` (`jcnn.interop.Trained`, or a workdir)
    and the first `max_channels` channels of up to `max_layers` activation
    layers (evenly spaced from first to last), one row per layer, each map on
    its own colour scale. Returns the PNG path.
    """
    from jcnn.functional._checks import check_int
    from jcnn.interop import load_trained

    fn = "plot_feature_maps"
    if not hasattr(trained, "variables"):
        trained = load_trained(trained)
    n = int(trained.images.shape[0])
    index = check_int(index, "index", fn, minimum=0)
    if index >= n:
        raise ValueError(f"{fn}: `index` must be < {n} (the test images), got {index}.")
    max_layers = check_int(max_layers, "max_layers", fn)
    max_channels = check_int(max_channels, "max_channels", fn)
    image = trained.images[index : index + 1]
    x = trained.normalize(image)
    maps = activation_maps(trained, x)
    if not maps:
        raise ValueError(f"{fn}: the model has no 4-D activation layers (named act*).")
    pick = np.unique(np.linspace(0, len(maps) - 1, min(max_layers, len(maps))).round().astype(int))
    maps = [maps[i] for i in pick]
    # No constrained layout: the row labels sit in the left margin, outside the axes.
    fig = new_figure(figsize, dpi, fn, layout=None)
    fig.subplots_adjust(left=0.14, right=0.99, bottom=0.01, top=0.92, wspace=0.08, hspace=0.25)
    axes = fig.subplots(len(maps) + 1, max_channels, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    label = int(trained.labels[index])
    pred = int(np.argmax(trained.logits(x)[0]))
    axes[0, 0].imshow(np.asarray(image[0]).squeeze(), cmap="gray")
    rows = [("input", np.asarray(image[0]).shape)] + [(name, m.shape) for name, m in maps]
    for row, (name, shape) in enumerate(rows):
        axes[row, 0].text(
            -0.15,
            0.5,
            f"{name}\n{'x'.join(map(str, shape))}",
            transform=axes[row, 0].transAxes,
            ha="right",
            va="center",
            fontsize="x-small",
        )
    for row, (_, m) in enumerate(maps, start=1):
        for c in range(min(max_channels, m.shape[2])):
            axes[row, c].imshow(m[:, :, c], cmap="viridis", interpolation="nearest")
    fig.suptitle(
        f"{trained.config.model.name}, test image {index}: {trained.class_names[label]} "
        f"(predicted {trained.class_names[pred]}); channels 0-{max_channels - 1} of each layer",
        fontsize="medium",
    )
    return save(fig, out)
