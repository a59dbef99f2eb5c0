"""Max, average, adaptive and global pooling over the spatial axes of NHWC input.

Two formulations compute a fixed-window pool. A non-overlapping pool
(``stride == window``) is a pad, a crop of the rows/columns the last window
does not reach, a reshape to ``(N, H/kh, kh, W/kw, kw, C)`` and a reduction
over the two window axes; any other pool is `lax.reduce_window`. On XLA:CPU
the reshape form of a 2x2/2 max pool on (32, 32, 32, 64) runs forward +
backward ~12x faster than `reduce_window`, whose gradient is a
`select_and_scatter` (``python benchmarks/pooling.py``). Both compute the same
function, gradient included (tested).

Max pooling gradients at ties: every max pool here routes the whole cotangent
of an output to the *first* maximal element of its window in row-major
``(row, column)`` order, as `select_and_scatter`, PyTorch and TensorFlow do.
`jnp.max`'s own derivative would split it equally among tied elements, which
would make the gradient depend on which formulation ran, so the reshape form
uses `_max_first`, a `jnp.max` with a first-maximum JVP.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jcnn.functional._checks import check_floating, check_ndim, pair
from jcnn.functional._padding import padding_2d

Pads = tuple[tuple[int, int], tuple[int, int]]


# ---------------------------------------------------------------- helpers ---


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _max_first(x, axes: tuple[int, ...]):
    """`jnp.max` over `axes` whose derivative follows the first maximum (row-major)."""
    return jnp.max(x, axis=axes)


@_max_first.defjvp
def _max_first_jvp(axes, primals, tangents):
    (x,), (t,) = primals, tangents
    y = jnp.max(x, axis=axes, keepdims=True)
    # Row-major flat position inside the reduced axes, broadcast over the rest.
    reduced = [x.shape[d] if d in axes else 1 for d in range(x.ndim)]
    size = int(np.prod(reduced))
    position = np.arange(size, dtype=np.int32).reshape(reduced)
    first = jnp.min(jnp.where(x == y, position, size), axis=axes, keepdims=True)
    chosen = position == first
    return jnp.squeeze(y, axes), jnp.sum(jnp.where(chosen, t, jnp.zeros_like(t)), axis=axes)


def _accumulation_dtype(dtype):
    # Sums of bf16/f16 are taken in float32 and cast back; float64 stays float64.
    return jnp.promote_types(dtype, jnp.float32)


def _window_args(x, window, stride, padding, fn: str):
    """Checks a fixed-window pool's arguments; returns (window, stride, pads)."""
    check_ndim(x, 4, "x", fn, "NHWC")
    check_floating(x, "x", fn)
    window_hw = pair(window, "window", fn)
    stride_hw = window_hw if stride is None else pair(stride, "stride", fn)
    pads = padding_2d(padding, x.shape[1:3], window_hw, stride_hw, fn=fn)
    for axis, n, k, s, (lo, hi) in zip("HW", x.shape[1:3], window_hw, stride_hw, pads, strict=True):
        if n + lo + hi < k:
            raise ValueError(
                f"{fn}: `window` ({k} along {axis}) is larger than the padded input "
                f"({n} + {lo} + {hi} = {n + lo + hi}); use a smaller window or more padding."
            )
        last_start = (n + lo + hi - k) // s * s - lo
        if lo >= k or last_start >= n:
            raise ValueError(
                f"{fn}: `padding` {(lo, hi)} along {axis} puts a whole window of size {k} "
                f"(stride {s}) in the padding of an input of size {n}; padding must leave "
                "at least one input element in every window."
            )
    return window_hw, stride_hw, pads


def _real_counts(n: int, k: int, s: int, lo: int, hi: int) -> np.ndarray:
    """Number of non-padding elements in each window along one axis."""
    starts = np.arange((n + lo + hi - k) // s + 1) * s - lo
    return np.minimum(starts + k, n) - np.maximum(starts, 0)


def _is_non_overlapping(window_hw, stride_hw) -> bool:
    return tuple(window_hw) == tuple(stride_hw)


def _blocks(x, window_hw, pads: Pads, fill):
    """Pads with `fill`, crops what no window reaches, reshapes to (N, oh, kh, ow, kw, C)."""
    if any(p for pad in pads for p in pad):
        x = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=fill)
    (kh, kw), (_, h, w, c) = window_hw, x.shape
    oh, ow = h // kh, w // kw
    x = x[:, : oh * kh, : ow * kw]
    return x.reshape(x.shape[0], oh, kh, ow, kw, c)


def _max_pool_reshape(x, window_hw, pads: Pads):
    """Non-overlapping max pool (stride == window) as reshape + max."""
    return _max_first(_blocks(x, window_hw, pads, -jnp.inf), (2, 4))


def _max_pool_reduce_window(x, window_hw, stride_hw, pads: Pads):
    """Any max pool as `lax.reduce_window` (gradient: `select_and_scatter`)."""
    return lax.reduce_window(
        x,
        # A concrete (NumPy) identity: a traced one would lose reduce_window's
        # autodiff rule under jit.
        np.array(-np.inf, x.dtype),
        lax.max,
        (1, *window_hw, 1),
        (1, *stride_hw, 1),
        ((0, 0), *pads, (0, 0)),
    )


def _sum_pool_reshape(x, window_hw, pads: Pads):
    return jnp.sum(_blocks(x, window_hw, pads, 0), axis=(2, 4))


def _sum_pool_reduce_window(x, window_hw, stride_hw, pads: Pads):
    return lax.reduce_window(
        x,
        np.array(0, x.dtype),
        lax.add,
        (1, *window_hw, 1),
        (1, *stride_hw, 1),
        ((0, 0), *pads, (0, 0)),
    )


# ------------------------------------------------------------ fixed window ---


def max_pool2d(x, window, *, stride=None, padding="VALID"):
    r"""2-D max pooling of an NHWC input, per channel.

    .. math::
        y[n, i, j, c] = \max_{0 \le u < k_h,\ 0 \le v < k_w}
        x_p[n, s_h i + u, s_w j + v, c]

    where ``x_p`` is ``x`` padded with ``-inf`` (a padded position never
    wins). Per spatial axis the output size is
    ``floor((n + lo + hi - k) / s) + 1`` (`conv_output_size` with dilation 1).

    Derivative: the cotangent of ``y[n, i, j, c]`` goes entirely to the
    maximal element of its window; at ties, to the first one in row-major
    ``(u, v)`` order (PyTorch/TensorFlow/`select_and_scatter` semantics), on
    every code path. A non-overlapping pool (``stride == window``) runs as
    reshape + max, any other as `lax.reduce_window`.

    Args:
      x: ``(N, H, W, C)``, floating point.
      window: int or ``(kh, kw)``, >= 1.
      stride: int or ``(sh, sw)``, >= 1; defaults to `window`.
      padding: ``"VALID"`` (default), ``"SAME"``, ``"SAME_SYMMETRIC"``, an
        int, a pair ``(ph, pw)`` or ``((top, bottom), (left, right))``, as in
        `conv2d`. Every window must keep at least one input element.

    Returns:
      ``(N, H_out, W_out, C)`` in the dtype of ``x``.
    """
    window_hw, stride_hw, pads = _window_args(x, window, stride, padding, "max_pool2d")
    if _is_non_overlapping(window_hw, stride_hw):
        return _max_pool_reshape(x, window_hw, pads)
    return _max_pool_reduce_window(x, window_hw, stride_hw, pads)


def avg_pool2d(x, window, *, stride=None, padding="VALID", count_include_pad=False):
    r"""2-D average pooling of an NHWC input, per channel.

    .. math::
        y[n, i, j, c] = \frac{1}{D_{ij}} \sum_{0 \le u < k_h,\ 0 \le v < k_w}
        x_p[n, s_h i + u, s_w j + v, c]

    where ``x_p`` is ``x`` padded with zeros and the divisor ``D_{ij}`` is the
    number of real (non-padding) elements of window ``(i, j)`` when
    ``count_include_pad=False`` (the default), or ``k_h k_w`` when True
    (PyTorch semantics for both). The sum is taken in float32 for bf16/f16
    input. The derivative spreads the cotangent of ``y[i, j]`` as
    ``1 / D_{ij}`` over the real elements of its window.

    Args:
      x: ``(N, H, W, C)``, floating point.
      window: int or ``(kh, kw)``, >= 1.
      stride: int or ``(sh, sw)``, >= 1; defaults to `window`.
      padding: as in `max_pool2d`.
      count_include_pad: bool; whether padded zeros count in the divisor.

    Returns:
      ``(N, H_out, W_out, C)`` in the dtype of ``x``.
    """
    fn = "avg_pool2d"
    window_hw, stride_hw, pads = _window_args(x, window, stride, padding, fn)
    if not isinstance(count_include_pad, bool):
        raise TypeError(
            f"{fn}: `count_include_pad` must be a bool, got {count_include_pad!r} "
            f"({type(count_include_pad).__name__})."
        )
    xa = x.astype(_accumulation_dtype(x.dtype))
    if _is_non_overlapping(window_hw, stride_hw):
        total = _sum_pool_reshape(xa, window_hw, pads)
    else:
        total = _sum_pool_reduce_window(xa, window_hw, stride_hw, pads)
    if count_include_pad:
        divisor = np.asarray(window_hw[0] * window_hw[1])
    else:
        counts = [
            _real_counts(n, k, s, lo, hi)
            for n, k, s, (lo, hi) in zip(x.shape[1:3], window_hw, stride_hw, pads, strict=True)
        ]
        divisor = np.outer(*counts)[:, :, None]
    return (total / divisor.astype(xa.dtype)).astype(x.dtype)


# ---------------------------------------------------------------- adaptive ---


def _adaptive_bins(n: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's bins: ``start = floor(i n / out)``, ``end = ceil((i + 1) n / out)``."""
    i = np.arange(out)
    return (i * n) // out, -((-(i + 1) * n) // out)


def _adaptive_args(x, output_size, fn: str) -> tuple[int, int]:
    check_ndim(x, 4, "x", fn, "NHWC")
    check_floating(x, "x", fn)
    return pair(output_size, "output_size", fn)


def _bin_average_matrix(n: int, out: int, dtype) -> np.ndarray:
    """``(out, n)`` matrix whose row ``i`` averages bin ``i``."""
    start, end = _adaptive_bins(n, out)
    j = np.arange(n)
    inside = (j >= start[:, None]) & (j < end[:, None])
    return (inside / (end - start)[:, None]).astype(dtype)


def _bin_indices(n: int, out: int) -> np.ndarray:
    """``(out, L)`` indices of each bin, short bins padded by repeating their *last*
    element (a repeat never changes a max, and the first-maximum rule routes the
    gradient to the real, earlier occurrence)."""
    start, end = _adaptive_bins(n, out)
    offsets = np.arange(int((end - start).max()))
    return np.minimum(start[:, None] + offsets, end[:, None] - 1).astype(np.int32)


def adaptive_avg_pool2d(x, output_size):
    r"""Average pooling to a fixed ``(oh, ow)`` output, whatever the input size.

    Along an axis of length ``n`` with ``out`` bins, bin ``i`` covers
    ``[floor(i n / out), ceil((i + 1) n / out))`` (PyTorch's rule: bins
    overlap when ``out`` does not divide ``n``, and repeat when ``out > n``);
    ``y[n, i, j, c]`` is the mean of ``x`` over bin ``i`` of H times bin ``j``
    of W. When the bins tile the input (``out`` divides ``n`` on both axes)
    this is a non-overlapping average pool; otherwise it is
    ``A_h x A_w^T`` with static ``(out, n)`` averaging matrices, taken in
    float32 (float64 for float64 input) at full matmul precision.

    Args:
      x: ``(N, H, W, C)``, floating point.
      output_size: int or ``(oh, ow)``, >= 1.

    Returns:
      ``(N, oh, ow, C)`` in the dtype of ``x``.
    """
    oh, ow = _adaptive_args(x, output_size, "adaptive_avg_pool2d")
    h, w = x.shape[1:3]
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(x, (h // oh, w // ow))
    acc = _accumulation_dtype(x.dtype)
    a_h, a_w = _bin_average_matrix(h, oh, acc), _bin_average_matrix(w, ow, acc)
    y = jnp.einsum("ih,nhwc,jw->nijc", a_h, x.astype(acc), a_w, precision=lax.Precision.HIGHEST)
    return y.astype(x.dtype)


def adaptive_max_pool2d(x, output_size):
    r"""Max pooling to a fixed ``(oh, ow)`` output, whatever the input size.

    ``y[n, i, j, c]`` is the max of ``x`` over bin ``i`` of H times bin ``j``
    of W, with the bins of `adaptive_avg_pool2d`. When the bins tile the
    input this is a non-overlapping `max_pool2d`; otherwise the bins are
    gathered with static indices (W first, then H) and reduced.

    Derivative: as `max_pool2d`, the whole cotangent of an output goes to the
    first maximal element of its bin in row-major order.

    Args:
      x: ``(N, H, W, C)``, floating point.
      output_size: int or ``(oh, ow)``, >= 1.

    Returns:
      ``(N, oh, ow, C)`` in the dtype of ``x``.
    """
    oh, ow = _adaptive_args(x, output_size, "adaptive_max_pool2d")
    h, w = x.shape[1:3]
    if h % oh == 0 and w % ow == 0:
        return max_pool2d(x, (h // oh, w // ow))
    # Reducing W before H keeps the tie rule row-major: the first row holding
    # the maximum wins, and within it the first column.
    cols = jnp.take(x, _bin_indices(w, ow), axis=2, mode="clip")
    x = _max_first(cols, (3,))  # (N, H, ow, C)
    rows = jnp.take(x, _bin_indices(h, oh), axis=1, mode="clip")
    return _max_first(rows, (2,))


def global_avg_pool(x):
    r"""Mean over the spatial axes: ``y[n, c] = \frac{1}{HW} \sum_{h, w} x[n, h, w, c]``.

    ``(N, H, W, C) -> (N, C)``; the sum is taken in float32 for bf16/f16.
    """
    fn = "global_avg_pool"
    check_ndim(x, 4, "x", fn, "NHWC")
    check_floating(x, "x", fn)
    return jnp.mean(x, axis=(1, 2), dtype=_accumulation_dtype(x.dtype)).astype(x.dtype)
