"""Convolution, its output-size arithmetic, parameter count and receptive field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jcnn.functional._checks import _is_int, check_floating, check_int, check_ndim, pair
from jcnn.functional._padding import padding_1d, padding_2d

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


def conv2d(x, kernel, bias=None, *, stride=1, padding="SAME", dilation=1, groups=1):
    r"""2-D convolution of an NHWC input with an HWIO kernel.

    Each output channel is a sum over its group's input channels of a sliding
    window product, plus a bias:

    .. math::
        y[n, i, j, o] = b_o + \sum_{u, v, c} x_p[n, s_h i + d_h u, s_w j + d_w v,
        g(o) C_g + c]\; k[u, v, c, o]

    where ``x_p`` is the padded input, ``C_g = C_in / groups`` and ``g(o)`` is
    the group of output channel ``o``. Per spatial axis the output size is
    ``floor((n + lo + hi - d (k - 1) - 1) / s) + 1`` (see `conv_output_size`).

    Args:
      x: input of shape ``(N, H, W, C_in)``, floating point.
      kernel: weights of shape ``(kh, kw, C_in // groups, C_out)``; ``C_out``
        must be divisible by ``groups``. Depthwise convolution is
        ``groups == C_in`` with ``C_out = multiplier * C_in``.
      bias: optional ``(C_out,)`` added to every output position.
      stride: int or ``(sh, sw)``, >= 1.
      padding: ``"SAME"`` (XLA/TF: output ``ceil(n / s)``, odd pixel at the
        bottom/right), ``"VALID"``, ``"SAME_SYMMETRIC"`` (PyTorch
        ``d (k - 1) // 2`` on both sides), an int, a pair ``(ph, pw)`` or
        ``((top, bottom), (left, right))``.
      dilation: int or ``(dh, dw)``, >= 1 (atrous convolution).
      groups: number of channel groups, dividing both ``C_in`` and ``C_out``.

    Returns:
      ``(N, H_out, W_out, C_out)`` in the promoted dtype of ``x`` and ``kernel``.
    """
    fn = "conv2d"
    check_ndim(x, 4, "x", fn, "NHWC")
    check_ndim(kernel, 4, "kernel", fn, "HWIO")
    check_floating(x, "x", fn)
    check_floating(kernel, "kernel", fn)
    stride_hw = pair(stride, "stride", fn)
    dilation_hw = pair(dilation, "dilation", fn)
    groups = check_int(groups, "groups", fn)
    kh, kw, k_in, c_out = kernel.shape
    c_in = x.shape[-1]
    if c_in % groups:
        raise ValueError(f"conv2d: `x` has {c_in} channels, which groups={groups} does not divide.")
    if k_in * groups != c_in:
        raise ValueError(
            f"conv2d: `x` has {c_in} channels but `kernel` of shape {tuple(kernel.shape)} "
            f"with groups={groups} expects {k_in * groups}; the kernel's third axis must be "
            f"C_in // groups = {c_in // groups}."
        )
    if c_out % groups:
        raise ValueError(
            f"conv2d: `kernel` has {c_out} output channels, which groups={groups} does not divide."
        )
    if bias is not None and tuple(jnp.shape(bias)) != (c_out,):
        raise ValueError(
            f"conv2d: `bias` must have shape ({c_out},), got {tuple(jnp.shape(bias))}."
        )
    pads = padding_2d(padding, x.shape[1:3], (kh, kw), stride_hw, dilation_hw, fn=fn)
    for axis, n, k, d, (lo, hi) in zip(
        "HW", x.shape[1:3], (kh, kw), dilation_hw, pads, strict=True
    ):
        if n + lo + hi < d * (k - 1) + 1:
            raise ValueError(
                f"conv2d: the dilated kernel ({d * (k - 1) + 1} along {axis}) is larger than "
                f"the padded input ({n} + {lo} + {hi} = {n + lo + hi}); use a smaller kernel "
                "or dilation, or more padding."
            )
    on_cpu = jax.default_backend() == "cpu"
    if groups == c_in > 1 and on_cpu:
        y = _depthwise_shifted(x, kernel, stride_hw, pads, dilation_hw)
    elif (
        groups == 1
        and on_cpu
        and _window_exceeds_output(x.shape, kernel.shape, stride_hw, pads, dilation_hw)
    ):
        y = _im2col(x, kernel, stride_hw, pads, dilation_hw)
    else:
        y = lax.conv_general_dilated(
            x,
            kernel,
            window_strides=stride_hw,
            padding=pads,
            rhs_dilation=dilation_hw,
            dimension_numbers=_DIMENSION_NUMBERS,
            feature_group_count=groups,
        )
    return y if bias is None else y + bias


def _depthwise_shifted(x, kernel, stride, pads, dilation):
    """Depthwise convolution as ``kh * kw`` strided slices times per-channel weights.

    The same function as ``conv_general_dilated`` with ``feature_group_count =
    C_in``; on XLA:CPU, where grouped convolution is slow, it runs
    forward+backward 4.0x (YNNPACK off) and 6.6x (on) faster on
    128x16x16x64, 3x3, stride 1 (`python benchmarks/primitives.py`, quiet
    2-core machine, 2026-11-30; `benchmarks/RESULTS.md`). A
    channel multiplier ``m`` repeats each input channel ``m`` times, matching
    the output order of grouped convolution (output ``c * m + j`` reads input ``c``).
    """
    n, h, w, c = x.shape
    kh, kw, _, c_out = kernel.shape
    if c_out != c:
        x = jnp.repeat(x, c_out // c, axis=-1)
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    (sh, sw), (dh, dw) = stride, dilation
    ho = (h + sum(pads[0]) - dh * (kh - 1) - 1) // sh + 1
    wo = (w + sum(pads[1]) - dw * (kw - 1) - 1) // sw + 1
    y = None
    for u in range(kh):
        for v in range(kw):
            start = (0, u * dh, v * dw, 0)
            limit = (n, u * dh + (ho - 1) * sh + 1, v * dw + (wo - 1) * sw + 1, c_out)
            term = lax.slice(x, start, limit, (1, sh, sw, 1)) * kernel[u, v, 0]
            y = term if y is None else y + term
    return y


def _output_hw(x_shape, kernel_shape, stride, pads, dilation) -> tuple[int, int]:
    return tuple(
        conv_output_size(n, k, stride=st, padding=p, dilation=d)
        for n, k, st, d, p in zip(
            x_shape[1:3], kernel_shape[:2], stride, dilation, pads, strict=True
        )
    )


def _window_exceeds_output(x_shape, kernel_shape, stride, pads, dilation) -> bool:
    """Whether an output side is shorter than the dilated kernel's side (e.g. a 3x3
    conv on a 2x2 map): XLA:CPU runs such convolutions (and the input gradient of
    a stride-2 conv that produces one) 10-40x slower than the same work as a matmul."""
    out = _output_hw(x_shape, kernel_shape, stride, pads, dilation)
    window = [d * (k - 1) + 1 for k, d in zip(kernel_shape[:2], dilation, strict=True)]
    return max(window) > 1 and min(out) < max(window)


def _im2col(x, kernel, stride, pads, dilation):
    """Convolution as one matmul of the ``(N * H_out * W_out, kh * kw * C_in)`` patch
    matrix with the kernel reshaped to ``(kh * kw * C_in, C_out)``.

    The same function as ``conv_general_dilated`` (groups 1). Used on CPU for
    small maps only (`_window_exceeds_output`), where the patch matrix is small.
    Measured on a 2-core CPU, 2026-11-30: XLA's 2x2x512 -> 512, 3x3 conv at batch
    32 took 206 ms forward and 204 ms for the input gradient against oneDNN's 9
    and 8 (`python benchmarks/conv_profile.py --model resnet18`); as a matmul,
    forward+backward takes 19 ms, and ResNet-18 at 64x64 trains at 133 instead
    of 22 img/s (`python benchmarks/models.py --models resnet18`). On 8x8 and
    larger maps the matmul form is slower than XLA's convolution.
    """
    n = x.shape[0]
    kh, kw, c_in, c_out = kernel.shape
    ho, wo = _output_hw(x.shape, kernel.shape, stride, pads, dilation)
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    (sh, sw), (dh, dw) = stride, dilation
    cols = [
        lax.slice(
            x,
            (0, u * dh, v * dw, 0),
            (n, u * dh + (ho - 1) * sh + 1, v * dw + (wo - 1) * sw + 1, c_in),
            (1, sh, sw, 1),
        )
        for u in range(kh)
        for v in range(kw)
    ]
    patches = jnp.concatenate(cols, axis=-1).reshape(n * ho * wo, kh * kw * c_in)
    y = jnp.matmul(patches, kernel.reshape(kh * kw * c_in, c_out))
    return y.reshape(n, ho, wo, c_out)


def conv_output_size(n: int, kernel_size: int, *, stride: int = 1, padding=0, dilation: int = 1):
    """Output length of a convolution (or pooling) along one axis.

    ``floor((n + lo + hi - dilation * (kernel_size - 1) - 1) / stride) + 1``,
    the formula every CNN framework implements. `padding` takes the per-axis
    forms of `conv2d`: ``"SAME"``, ``"VALID"``, ``"SAME_SYMMETRIC"``, an int
    ``p`` (both sides) or ``(lo, hi)``.
    """
    fn = "conv_output_size"
    n = check_int(n, "n", fn)
    k = check_int(kernel_size, "kernel_size", fn)
    s = check_int(stride, "stride", fn)
    d = check_int(dilation, "dilation", fn)
    lo, hi = padding_1d(padding, n, k, s, d, fn=fn)
    span = n + lo + hi - d * (k - 1)
    if span < 1:
        raise ValueError(
            f"conv_output_size: the dilated kernel ({d * (k - 1) + 1}) is larger than the "
            f"padded input ({n} + {lo} + {hi} = {n + lo + hi})."
        )
    return (span - 1) // s + 1


def conv_param_count(
    kernel_size, in_channels: int, out_channels: int, *, groups: int = 1, bias: bool = True
) -> int:
    """Number of parameters of a conv layer: ``kh*kw*(C_in/groups)*C_out (+ C_out)``."""
    fn = "conv_param_count"
    kh, kw = pair(kernel_size, "kernel_size", fn)
    c_in = check_int(in_channels, "in_channels", fn)
    c_out = check_int(out_channels, "out_channels", fn)
    g = check_int(groups, "groups", fn)
    if c_in % g or c_out % g:
        raise ValueError(
            f"conv_param_count: groups={g} must divide in_channels={c_in} and out_channels={c_out}."
        )
    return kh * kw * (c_in // g) * c_out + (c_out if bias else 0)


class ReceptiveField(NamedTuple):
    """Receptive field after one layer: its `size` in input pixels and its
    `jump` (the distance in input pixels between adjacent output positions)."""

    size: int
    jump: int


def receptive_field(layers: Sequence) -> list[ReceptiveField]:
    """Receptive field of each layer of a chain, along one spatial axis.

    Each layer is ``(kernel, stride)`` or ``(kernel, stride, dilation)`` (a
    pooling layer is a layer like any other). With ``r_0 = 1, j_0 = 1``:
    ``r_l = r_{l-1} + d_l (k_l - 1) j_{l-1}`` and ``j_l = j_{l-1} s_l``.
    Three 3x3 convs give 7; conv3 -> pool2/2 -> conv3 gives 8.

    Returns one `ReceptiveField(size, jump)` per layer.
    """
    fn = "receptive_field"
    size, jump = 1, 1
    out = []
    for i, layer in enumerate(layers):
        if (
            isinstance(layer, str)
            or not isinstance(layer, Sequence)
            or len(layer) not in (2, 3)
            or not all(_is_int(v) for v in layer)
        ):
            raise TypeError(
                f"{fn}: `layers[{i}]` must be (kernel, stride) or (kernel, stride, dilation) "
                f"ints, got {layer!r}."
            )
        k = check_int(layer[0], f"layers[{i}] kernel", fn)
        s = check_int(layer[1], f"layers[{i}] stride", fn)
        d = check_int(layer[2], f"layers[{i}] dilation", fn) if len(layer) == 3 else 1
        size += d * (k - 1) * jump
        jump *= s
        out.append(ReceptiveField(size, jump))
    return out
