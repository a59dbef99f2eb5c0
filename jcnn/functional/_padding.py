"""Padding specifications shared by convolution and pooling.

A padding spec is one of:

* ``"VALID"``: no padding;
* ``"SAME"``: XLA/TensorFlow rule, output size ``ceil(n / stride)``; the total
  padding ``max((out - 1) * stride + d * (k - 1) + 1 - n, 0)`` is split with
  the odd pixel on the high (bottom/right) side;
* ``"SAME_SYMMETRIC"``: PyTorch's ``padding=d * (k - 1) // 2`` on both sides
  (equal to ``"SAME"`` only for stride 1 and odd kernels);
* an int ``p``: ``p`` on all four sides;
* a pair ``(ph, pw)``: ``ph`` top and bottom, ``pw`` left and right;
* explicit ``((top, bottom), (left, right))``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from jcnn.functional._checks import _is_int

PaddingPair = tuple[int, int]
STRING_PADDINGS = ("SAME", "VALID", "SAME_SYMMETRIC")


def _same_pad(n: int, k: int, stride: int, dilation: int) -> PaddingPair:
    out = -(-n // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def _explicit_pair(value, fn: str, name: str) -> PaddingPair:
    if _is_int(value):
        if value < 0:
            raise ValueError(f"{fn}: `{name}` must be non-negative, got {value!r}.")
        return int(value), int(value)
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_int(v) for v in value)
    ):
        if any(v < 0 for v in value):
            raise ValueError(f"{fn}: `{name}` must be non-negative, got {tuple(value)!r}.")
        return int(value[0]), int(value[1])
    raise TypeError(f"{fn}: `{name}` entries must be an int or a (lo, hi) pair, got {value!r}.")


def padding_1d(
    padding, n: int, k: int, stride: int, dilation: int, *, fn: str, name: str = "padding"
) -> PaddingPair:
    """Resolves a one-axis padding spec (a string, an int or `(lo, hi)`) to `(lo, hi)`."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return 0, 0
        if mode == "SAME":
            return _same_pad(n, k, stride, dilation)
        if mode == "SAME_SYMMETRIC":
            p = dilation * (k - 1) // 2
            return p, p
        raise ValueError(
            f"{fn}: unknown `{name}` {padding!r}; expected one of {STRING_PADDINGS}, "
            "an int, a pair or ((lo, hi), (lo, hi))."
        )
    if isinstance(padding, numbers.Real) and not _is_int(padding):
        raise TypeError(f"{fn}: `{name}` must be a string or ints, got {padding!r}.")
    return _explicit_pair(padding, fn, name)


def padding_2d(
    padding,
    spatial: tuple[int, int],
    window: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
    *,
    fn: str,
    name: str = "padding",
) -> tuple[PaddingPair, PaddingPair]:
    """Resolves a 2-D padding spec to explicit `((top, bottom), (left, right))`."""
    if isinstance(padding, str) or _is_int(padding):
        per_axis = (padding, padding)
    elif isinstance(padding, Sequence) and len(padding) == 2:
        if all(_is_int(p) for p in padding):
            per_axis = ((padding[0], padding[0]), (padding[1], padding[1]))
        else:
            per_axis = tuple(padding)
    else:
        raise TypeError(
            f"{fn}: `{name}` must be one of {STRING_PADDINGS}, an int, a pair (ph, pw) "
            f"or ((top, bottom), (left, right)), got {padding!r}."
        )
    return tuple(  # type: ignore[return-value]
        padding_1d(p, n, k, s, d, fn=fn, name=name)
        for p, n, k, s, d in zip(per_axis, spatial, window, stride, dilation, strict=True)
    )
