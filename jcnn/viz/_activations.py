"""The activation functions of `jcnn.functional` and their derivatives, side by side."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jcnn.functional as F
from jcnn.viz._figure import new_figure, save

ACTIVATIONS = ("sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "swish")
# |f'(x)| below this counts as saturated: a gradient passing through 10 such
# layers shrinks by 1e-13 or more.
SATURATION = 0.05


def plot_activations(
    out, *, names=ACTIVATIONS, x_range=(-6.0, 6.0), figsize=(12.0, 4.5), dpi: int = 100
):
    r"""Plots f(x) (left) and f'(x) (right) for each activation in `names`.

    The derivatives are `jax.grad` of the `jcnn.functional` functions at 801
    points of `x_range`; the band :math:`|f'(x)| < 0.05` is shaded, so the
    saturating tails of sigmoid and tanh (and the dead half of ReLU) are
    visible. Returns the PNG path.
    """
    fn = "plot_activations"
    unknown = [n for n in names if n not in ACTIVATIONS]
    if not names or unknown:
        raise ValueError(
            f"{fn}: `names` must be a non-empty subset of {ACTIVATIONS}, got {names!r}."
        )
    lo, hi = x_range
    if not lo < hi:
        raise ValueError(f"{fn}: `x_range` must be (lo, hi) with lo < hi, got {x_range!r}.")
    x = jnp.linspace(lo, hi, 801, dtype=jnp.float32)
    fig = new_figure(figsize, dpi, fn)
    ax_f, ax_d = fig.subplots(1, 2)
    for name in names:
        f = getattr(F, name)
        y = np.asarray(f(x))
        dy = np.asarray(jax.vmap(jax.grad(f))(x))
        (line,) = ax_f.plot(x, y, label=name, lw=1.5)
        ax_d.plot(x, dy, color=line.get_color(), lw=1.5)
    ax_d.axhspan(-SATURATION, SATURATION, color="0.5", alpha=0.2, label=f"|f'| < {SATURATION}")
    ax_f.set_title("f(x)")
    ax_d.set_title("f'(x): saturated where it is near 0")
    for ax in (ax_f, ax_d):
        ax.axhline(0, color="0.3", lw=0.6)
        ax.axvline(0, color="0.3", lw=0.6)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    ax_f.legend(fontsize="small", ncols=2)
    ax_d.legend(fontsize="small", loc="upper left")
    return save(fig, out)
