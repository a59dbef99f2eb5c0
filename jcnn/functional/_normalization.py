"""Normalisation layers: batch, group, layer and instance norm.

All four normalise, then apply a per-channel affine map:
``y = scale * (x - mean) / sqrt(var + eps) + bias`` with ``scale, bias`` of
shape ``(C,)``. They differ only in the set of elements a mean and variance
are taken over. Statistics are reduced in float32 (or wider, if `x` is wider)
and the output has the dtype of `x`.

Variances are computed from sums of *shifted* values: with any pivot ``p``
close to the data, ``var = E[(x - p)^2] - (E[x] - p)^2`` is exact in exact
arithmetic and, unlike ``E[x^2] - E[x]^2``, does not cancel catastrophically
in float32 when ``|mean| >> std`` (Chan, Golub & LeVeque, 1983). The pivot
is read off the input (its first pixel) and carries no gradient; the result
does not depend on it mathematically.

References:
  Chan, Golub & LeVeque, "Algorithms for computing the sample variance:
  analysis and recommendations", The American Statistician 37(3), 1983.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from jcnn.functional._checks import check_floating, check_int, check_ndim


def _stats_dtype(dtype):
    """float32 statistics for bf16/fp16/fp32 input, float64 for float64 input."""
    return jnp.promote_types(dtype, jnp.float32)


def _check_real(value, name: str, fn: str, expected: str, ok) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(
            f"{fn}: `{name}` must be a Python float {expected}, "
            f"got {value!r} ({type(value).__name__})."
        )
    if not ok(float(value)):
        raise ValueError(f"{fn}: `{name}` must be {expected}, got {value!r}.")
    return float(value)


def _check_eps(eps, fn: str) -> float:
    return _check_real(eps, "eps", fn, "> 0", lambda v: v > 0.0)


def _check_channel_vector(v, name: str, channels: int, fn: str, *, optional: bool):
    if v is None:
        if optional:
            return
        raise TypeError(f"{fn}: `{name}` must be an array of shape ({channels},), got None.")
    shape = tuple(np.shape(v))
    if shape != (channels,):
        raise ValueError(
            f"{fn}: `{name}` must have shape ({channels},) (one value per channel of `x`), "
            f"got shape {shape}."
        )
    check_floating(v, name, fn)


def _check_axis_name(axis_name, fn: str):
    if axis_name is None or isinstance(axis_name, str):
        return axis_name
    if (
        isinstance(axis_name, Sequence)
        and len(axis_name) > 0
        and all(isinstance(a, str) for a in axis_name)
    ):
        return tuple(axis_name)
    raise TypeError(
        f"{fn}: `axis_name` must be None, a mesh/pmap axis name (str) or a non-empty "
        f"tuple of them, got {axis_name!r}."
    )


def _fold(mu, var, scale, bias, eps, sd):
    """``(d - mu) * a + bias`` folded into one ``d * a + b``: returns ``(a, b)``.

    ``d`` is the input minus a pivot close to the data and ``mu`` its mean
    (None for 0), so ``b = bias - mu * a`` does not cancel. ``a = scale /
    sqrt(var + eps)`` and ``b`` are per statistic (small arrays), so the
    full-size tensor is touched by a single multiply-add.
    """
    a = lax.rsqrt(var + jnp.asarray(eps, sd))
    if scale is not None:
        a = a * scale.astype(sd)
    b = jnp.zeros_like(a) if mu is None else -mu * a
    if bias is not None:
        b = b + bias.astype(sd)
    return a, b


def batch_norm(
    x,
    scale,
    bias,
    mean,
    var,
    *,
    train,
    momentum=0.9,
    eps=1e-5,
    axis_name=None,
    mask=None,
):
    r"""Batch normalisation over every axis of `x` but the last (channels).

    .. math::
        y = \gamma_c \frac{x - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c

    In training (``train=True``) :math:`\mu_c, \sigma^2_c` are the mean and
    the *biased* variance (divided by the count, not count - 1) of channel
    ``c`` over the batch and spatial axes, and the running statistics are
    updated as ``new = momentum * old + (1 - momentum) * batch`` (Flax/Keras
    meaning of `momentum`; PyTorch's 0.1 is our 0.9, see
    `batch_norm_momentum_from_torch`), with that same biased ``batch``
    variance (Flax's choice; PyTorch folds in the unbiased one, ``count /
    (count - 1)`` larger). In evaluation (``train=False``) the running
    `mean`, `var` are used and returned unchanged.

    Gradients flow through the batch statistics in training (the usual BN
    backward pass), and through `mean`, `var` in evaluation. The variance is
    computed from sums shifted by a pivot taken from the data (see the module
    docstring), so inputs with ``|mean| >> std`` stay accurate in float32, and
    is clamped at 0.

    Across devices: with `axis_name` (inside ``shard_map`` or ``pmap``) the
    statistics are those of the *global* batch. Each device reduces its
    shifted sums ``sum(x - p)``, ``sum((x - p)^2)`` and its element count and
    these are ``lax.psum``-ed, so devices may hold different numbers of valid
    examples (see `mask`) and the result is still the exact global statistic
    (not a mean of per-device means). The pivot ``p`` must be the same on all
    devices, so it costs one extra tiny ``psum`` of ``C + 1`` values.

    Args:
      x: ``(N, H, W, C)`` (NHWC activations) or ``(N, C)`` (after a dense
        layer), floating point.
      scale, bias: ``(C,)`` per-channel affine parameters, or None for 1 / 0.
      mean, var: ``(C,)`` running statistics, floating point; the updated
        ones keep their dtype (float32 in mixed precision).
      train: Python bool; batch statistics (True) or running ones (False).
      momentum: decay of the old running value, in ``[0, 1]``.
      eps: added to the variance, > 0.
      axis_name: None, or the ``shard_map``/``pmap`` axis name (or tuple of
        names) to compute statistics over all devices along.
      mask: optional ``(N,)`` bool (or 0/1) array marking the valid examples,
        e.g. to pad a last partial batch; statistics count only rows where
        ``mask != 0``. Masked-out rows are still normalised, with the valid
        rows' statistics; their values never reach the statistics, but should
        be finite (zero padding is fine): a NaN there would reach their `y`
        and the gradient of `scale`. If no example is valid (on any device),
        the running statistics are returned unchanged. Ignored when
        ``train=False``.

    Returns:
      ``(y, (new_mean, new_var))``: `y` of the shape and dtype of `x`.

    References:
      Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network
      Training by Reducing Internal Covariate Shift", ICML 2015.
    """
    fn = "batch_norm"
    if np.ndim(x) not in (2, 4):
        raise ValueError(
            f"{fn}: `x` must be NHWC (4-D) or (N, C) (2-D), got shape {tuple(np.shape(x))}."
        )
    check_floating(x, "x", fn)
    channels = x.shape[-1]
    _check_channel_vector(scale, "scale", channels, fn, optional=True)
    _check_channel_vector(bias, "bias", channels, fn, optional=True)
    _check_channel_vector(mean, "mean", channels, fn, optional=False)
    _check_channel_vector(var, "var", channels, fn, optional=False)
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(
            f"{fn}: `train` must be a Python bool (batch statistics if True, running ones "
            f"if False), got {train!r} ({type(train).__name__})."
        )
    momentum = _check_real(momentum, "momentum", fn, "in [0, 1]", lambda v: 0.0 <= v <= 1.0)
    eps = _check_eps(eps, fn)
    axis_name = _check_axis_name(axis_name, fn)
    if mask is not None and tuple(np.shape(mask)) != (x.shape[0],):
        raise ValueError(
            f"{fn}: `mask` must have shape ({x.shape[0]},) (one flag per example of `x`), "
            f"got shape {tuple(np.shape(mask))}."
        )

    sd = _stats_dtype(x.dtype)
    xf = x.astype(sd)
    if not train:
        d = xf - mean.astype(sd)  # centred first: no cancellation in `b` when |mean| >> std
        a, b = _fold(None, var.astype(sd), scale, bias, eps, sd)
        return (d * a + b).astype(x.dtype), (mean, var)

    axes = tuple(range(x.ndim - 1))
    per_example = int(np.prod(x.shape[1:-1]))
    corner = (0,) * (x.ndim - 2)  # first pixel of an example
    if mask is None:
        valid = None
        pivot = xf[(0, *corner)]
        count = jnp.asarray(x.shape[0] * per_example, sd)
    else:
        valid = jnp.asarray(mask) != 0
        pivot = xf[(jnp.argmax(valid), *corner)]  # the first valid example
        count = jnp.sum(valid, dtype=sd) * per_example
    if axis_name is not None:
        # Any common pivot will do: average those of the devices holding data.
        has_data = (count > 0).astype(sd)
        pivot_sum, n_holders = lax.psum((pivot * has_data, has_data), axis_name)
        pivot = pivot_sum / jnp.maximum(n_holders, 1)
    pivot = lax.stop_gradient(pivot)

    d = xf - pivot
    dv = d if valid is None else jnp.where(valid.reshape((-1,) + (1,) * (x.ndim - 1)), d, 0)
    sums = (jnp.sum(dv, axes), jnp.sum(dv * dv, axes), count)
    if axis_name is not None:
        sums = lax.psum(sums, axis_name)
    s1, s2, total = sums
    n = jnp.maximum(total, 1)
    mu = s1 / n  # batch mean - pivot
    batch_var = jnp.maximum(s2 / n - mu * mu, 0)
    a, b = _fold(mu, batch_var, scale, bias, eps, sd)
    y = (d * a + b).astype(x.dtype)

    def update(old, batch):
        new = momentum * old.astype(sd) + (1.0 - momentum) * batch
        if valid is not None:
            new = jnp.where(total > 0, new, old.astype(sd))
        return new.astype(old.dtype)

    return y, (update(mean, pivot + mu), update(var, batch_var))


def group_norm(x, scale, bias, *, num_groups, eps=1e-5):
    r"""Group normalisation: statistics over (H, W) and a group of channels.

    The ``C`` channels are split into `num_groups` contiguous groups of
    ``C / G``; each sample ``n`` and group ``g`` is normalised by the mean
    and (biased) variance of its ``H * W * C / G`` elements, then the
    per-channel affine map is applied:

    .. math::
        y_{nhwc} = \gamma_c \frac{x_{nhwc} - \mu_{n,g(c)}}
        {\sqrt{\sigma^2_{n,g(c)} + \epsilon}} + \beta_c

    ``num_groups=1`` is layer norm, ``num_groups=C`` instance norm. The
    statistics do not involve other samples, so there is no train/eval
    difference and no running state. Gradients flow through the statistics.

    Implementation: per-(sample, channel) sums over (H, W), shifted by a
    pivot per (sample, group) (accurate when ``|mean| >> std``), in the 4-D
    layout; the sums over the channels of each group (and the broadcast back)
    are small matmuls of the ``(N, C)`` arrays with a 0/1 matrix; the
    normalisation and affine map are folded into one ``d * a + b`` with
    ``a, b`` per (sample, channel). This avoids the 5-D ``(N, H, W, G, C/G)``
    reductions and normalised intermediates of the textbook formulation;
    forward + backward runs within ~1.3x of `batch_norm` on XLA:CPU, against
    3-7x for the textbook version (``benchmarks/norms.py``). One consequence
    of the matmuls (used when ``C / G > 1``): a NaN or inf in one group of a
    sample makes the whole sample's output NaN, not only that group's.

    Args:
      x: ``(N, H, W, C)``, floating point.
      scale, bias: ``(C,)`` per-channel affine parameters, or None for 1 / 0.
      num_groups: number of groups ``G``, dividing ``C``.
      eps: added to the variance, > 0.

    Returns:
      `y` of the shape and dtype of `x`.

    References:
      Wu & He, "Group Normalization", ECCV 2018.
    """
    return _group_norm(x, scale, bias, num_groups, eps, "group_norm")


def layer_norm(x, scale, bias, *, eps=1e-5):
    r"""Layer normalisation over (H, W, C) of each sample.

    :math:`y_{nhwc} = \gamma_c (x_{nhwc} - \mu_n) / \sqrt{\sigma^2_n + \epsilon}
    + \beta_c` with the mean and biased variance of sample ``n``; scale and
    bias are per channel ``(C,)``. Computed as (and bit-identical to)
    ``group_norm(x, scale, bias, num_groups=1, eps=eps)``.

    References:
      Ba, Kiros & Hinton, "Layer Normalization", arXiv:1607.06450, 2016.
    """
    return _group_norm(x, scale, bias, 1, eps, "layer_norm")


def instance_norm(x, scale, bias, *, eps=1e-5):
    r"""Instance normalisation over (H, W) of each sample and channel.

    :math:`y_{nhwc} = \gamma_c (x_{nhwc} - \mu_{nc}) / \sqrt{\sigma^2_{nc} +
    \epsilon} + \beta_c` with the mean and biased variance of each
    (sample, channel). Computed as (and bit-identical to)
    ``group_norm(x, scale, bias, num_groups=C, eps=eps)``.

    References:
      Ulyanov, Vedaldi & Lempitsky, "Instance Normalization: The Missing
      Ingredient for Fast Stylization", arXiv:1607.08022, 2016.
    """
    check_ndim(x, 4, "x", "instance_norm", "NHWC")
    return _group_norm(x, scale, bias, x.shape[-1], eps, "instance_norm")


def _group_norm(x, scale, bias, num_groups, eps, fn):
    check_ndim(x, 4, "x", fn, "NHWC")
    check_floating(x, "x", fn)
    _, h, w, c = x.shape
    groups = check_int(num_groups, "num_groups", fn)
    if c % groups:
        raise ValueError(
            f"{fn}: `num_groups`={groups} must divide the number of channels of `x`, "
            f"got C={c} (x of shape {tuple(x.shape)})."
        )
    _check_channel_vector(scale, "scale", c, fn, optional=True)
    _check_channel_vector(bias, "bias", c, fn, optional=True)
    eps = _check_eps(eps, fn)

    sd = _stats_dtype(x.dtype)
    per_group = c // groups
    xf = x.astype(sd)
    if per_group == 1:  # instance norm: each channel is its own group

        def to_group(v):
            return v

        to_channel = to_group
    else:
        # Group sums and their broadcast back to channels as matmuls with a 0/1
        # (G, C) matrix. XLA:CPU fuses a reshape-sum / broadcast-reshape into every
        # full-size elementwise loop of the forward and backward pass, with costly
        # index arithmetic per element; a dot is materialised once as a small
        # (N, C) or (N, G) array instead (see benchmarks/norms.py). HIGHEST: no
        # bf16/TF32 passes on accelerators, so the sums stay float32.
        onehot = jnp.asarray(np.repeat(np.eye(groups), per_group, axis=1), sd)

        def to_group(v):  # (N, C) -> (N, G)
            return jnp.dot(v, onehot.T, precision=lax.Precision.HIGHEST)

        def to_channel(v):  # (N, G) -> (N, C)
            return jnp.dot(v, onehot, precision=lax.Precision.HIGHEST)

    def spatial(v):  # (N, C) -> (N, 1, 1, C)
        return v[:, None, None, :]

    # Pivot per (sample, group): the group's mean over its first pixel.
    pivot = lax.stop_gradient(to_group(xf[:, 0, 0, :]) / per_group)
    d = xf - spatial(to_channel(pivot))
    count = h * w * per_group
    mu = to_group(jnp.sum(d, (1, 2))) / count  # group mean - pivot
    group_var = jnp.maximum(to_group(jnp.sum(d * d, (1, 2))) / count - mu * mu, 0)
    a, b = _fold(to_channel(mu), to_channel(group_var), scale, bias, eps, sd)
    return (d * spatial(a) + spatial(b)).astype(x.dtype)


def batch_norm_momentum_from_torch(torch_momentum) -> float:
    """Converts a PyTorch BatchNorm `momentum` to the `batch_norm` convention.

    PyTorch's momentum is the weight of the *new* batch statistic,
    ``new = (1 - m_torch) * old + m_torch * batch`` (default 0.1); ours is the
    decay of the *old* value, ``new = m * old + (1 - m) * batch``. Hence
    ``m = 1 - m_torch``: PyTorch's 0.1 is our 0.9.

    Note that PyTorch's running variance accumulates the *unbiased* batch
    variance (factor ``count / (count - 1)``), ours the biased one; the
    normalisation in training uses the biased one in both.

    Raises:
      TypeError/ValueError unless `torch_momentum` is a number in ``[0, 1]``
      (PyTorch's ``momentum=None``, a cumulative average, has no constant
      equivalent).
    """
    m = _check_real(
        torch_momentum,
        "torch_momentum",
        "batch_norm_momentum_from_torch",
        "in [0, 1]",
        lambda v: 0.0 <= v <= 1.0,
    )
    return 1.0 - m
