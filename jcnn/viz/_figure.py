"""Figures without pyplot: a `matplotlib.figure.Figure` rendered by Agg to PNG.

No global pyplot state and no display: safe in tests, threads and headless
machines. The PNG is ``figsize * dpi`` pixels exactly (no tight bounding box).
"""

from __future__ import annotations

from pathlib import Path


def check_figsize(figsize, dpi, fn: str) -> tuple[tuple[float, float], int]:
    """Validates a ``(width, height)`` in inches and a dpi."""
    ok = (
        isinstance(figsize, tuple | list)
        and len(figsize) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in figsize)
    )
    if not ok:
        raise ValueError(f"{fn}: `figsize` must be (width, height) inches > 0, got {figsize!r}.")
    if not isinstance(dpi, int) or isinstance(dpi, bool) or dpi < 10:
        raise ValueError(f"{fn}: `dpi` must be an int >= 10, got {dpi!r}.")
    return (float(figsize[0]), float(figsize[1])), dpi


def new_figure(figsize, dpi: int, fn: str, *, layout: str | None = "constrained"):
    """A new Agg-backed figure of `figsize` inches at `dpi`."""
    from matplotlib.figure import Figure

    figsize, dpi = check_figsize(figsize, dpi, fn)
    return Figure(figsize=figsize, dpi=dpi, layout=layout)


def save(fig, out) -> Path:
    """Writes `fig` as a PNG to `out` and returns the path."""
    out = Path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(
            f"viz: cannot write `out`={str(out)!r}: the directory {str(out.parent)!r} does not "
            "exist."
        )
    fig.savefig(out, format="png", dpi=fig.dpi)
    return out
