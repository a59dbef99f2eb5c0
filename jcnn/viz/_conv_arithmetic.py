"""How padding, stride and dilation move a kernel over an input (one axis pair)."""

from __future__ import annotations

from jcnn.functional import conv_output_size
from jcnn.functional._checks import check_int
from jcnn.viz._figure import new_figure, save


def _positions(out: int) -> list[tuple[int, int]]:
    """Up to four output positions: the first two of row 0, the next row, the last."""
    wanted = [(0, 0), (0, 1), (1, 0), (out - 1, out - 1)]
    return list(dict.fromkeys((i, j) for i, j in wanted if i < out and j < out))


def _grid(ax, row0, col0, size, *, color, edge, ls="-"):
    """A `size` x `size` grid of unit cells, top-left corner at (row0, col0)."""
    from matplotlib.patches import Rectangle

    for i in range(size):
        for j in range(size):
            ax.add_patch(Rectangle((col0 + j, row0 + i), 1, 1, fc=color, ec=edge, lw=0.6, ls=ls))


def _cell(ax, row, col):
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((col, row), 1, 1, fc="tab:blue", alpha=0.6, ec="navy", lw=1))


def plot_conv_arithmetic(
    out, *, n: int, k: int, p: int = 0, s: int = 1, d: int = 1, figsize=None, dpi: int = 100
):
    r"""A square `n` x `n` input, padded by `p`, under a `k` x `k` kernel of
    stride `s` and dilation `d`.

    Each panel is one output position ``(i, j)``: the padded input (padding
    grey and dashed), the kernel taps it reads (blue, at rows
    :math:`s i + d u - p`, columns :math:`s j + d v - p` of the input,
    :math:`u, v < k`) and, on the right, the output map with ``(i, j)``
    marked. The title gives
    :math:`o = \lfloor (n + 2p - d(k - 1) - 1) / s \rfloor + 1`. The default
    size is 3.2 x 3.4 inches per panel. Returns the PNG path.
    """
    fn = "plot_conv_arithmetic"
    n, k, s, d = (check_int(v, name, fn) for v, name in ((n, "n"), (k, "k"), (s, "s"), (d, "d")))
    p = check_int(p, "p", fn, minimum=0)
    span = d * (k - 1) + 1
    if span > n + 2 * p:
        raise ValueError(
            f"{fn}: the dilated kernel spans {span} pixels (d*(k-1)+1) but the padded input "
            f"has only n + 2p = {n + 2 * p}; there is no output position."
        )
    o = conv_output_size(n, k, stride=s, padding=p, dilation=d)
    positions = _positions(o)
    figsize = figsize or (3.2 * len(positions), 3.4)
    fig = new_figure(figsize, dpi, fn)
    axes = fig.subplots(1, len(positions), squeeze=False)[0]
    size = n + 2 * p
    gap = 1.5
    for ax, (oi, oj) in zip(axes, positions, strict=True):
        _grid(ax, 0, 0, size, color="0.85", edge="0.5", ls="--")  # padding ring
        _grid(ax, p, p, n, color="white", edge="0.3")  # the input
        for u in range(k):
            for v in range(k):
                _cell(ax, oi * s + u * d, oj * s + v * d)  # kernel taps
        x0 = size + gap
        _grid(ax, 0, x0, o, color="white", edge="0.3")
        _cell(ax, oi, x0 + oj)
        ax.set_xlim(-0.5, x0 + max(o, 1) + 0.5)
        ax.set_ylim(max(size, o) + 0.5, -0.5)
        ax.set_aspect("equal")
        ax.set_axis_off()
        ax.set_title(f"output ({oi}, {oj})", fontsize="small")
    fig.suptitle(
        f"n={n}, k={k}, p={p}, s={s}, d={d}:  o = floor((n + 2p - d(k-1) - 1)/s) + 1 = {o}",
        fontsize="medium",
    )
    return save(fig, out)
