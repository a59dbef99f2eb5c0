"""Normalisation layers: `BatchNorm`, `GroupNorm`, `LayerNorm`, `InstanceNorm`.

Each owns a per-channel ``scale`` (init ones) and ``bias`` (init zeros) of
shape ``(C,)`` in `param_dtype`; `BatchNorm` also owns running statistics
``mean`` (zeros) and ``var`` (ones) in the ``batch_stats`` collection, always
float32. The statistics of the batch or group are reduced in float32 by
`jcnn.functional` and the output has the compute dtype.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

import jcnn.functional as F
from jcnn import init
from jcnn.functional._checks import check_int
from jcnn.nn._types import DType, Initializer, check_initializers, promote_dtype


def _affine(module, x, fn: str):
    if jnp.ndim(x) < 2:
        raise ValueError(
            f"{fn}: `x` must have a batch and a channel axis (ndim >= 2), got shape {jnp.shape(x)}."
        )
    check_initializers(module, fn, "scale_init", "bias_init")
    channels = (x.shape[-1],)
    scale = module.param("scale", module.scale_init, channels, module.param_dtype)
    bias = module.param("bias", module.bias_init, channels, module.param_dtype)
    return promote_dtype(x, scale, bias, dtype=module.dtype, fn=fn)


class BatchNorm(nn.Module):
    """Batch normalisation over all axes but the channel axis; see
    `jcnn.functional.batch_norm` (``momentum`` is the decay of the old running
    value: ``new = momentum * old + (1 - momentum) * batch``).

    ``train=True`` normalises with the batch statistics (all-reduced over
    `axis_name` when given, e.g. inside `shard_map`); ``train=False`` with the
    running ones. The running statistics are written only when ``train=True``
    *and* ``batch_stats`` is mutable (``mutable=["batch_stats"]`` in `apply`),
    and never during `init`, which keeps them at mean 0 and variance 1
    whatever `train` it is given (as Flax's BatchNorm does).

    References:
      Ioffe & Szegedy, *Batch Normalization*, ICML 2015.
    """

    momentum: float = 0.9
    eps: float = 1e-5
    axis_name: str | None = None
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    scale_init: Initializer = init.ones
    bias_init: Initializer = init.zeros

    @nn.compact
    def __call__(self, x, *, train: bool, mask=None):
        if not isinstance(train, bool):
            raise TypeError(
                f"BatchNorm: `train` must be a Python bool, got {train!r} ({type(train).__name__})."
            )
        x, scale, bias = _affine(self, x, "BatchNorm")
        channels = (x.shape[-1],)
        mean = self.variable("batch_stats", "mean", init.zeros, None, channels, jnp.float32)
        var = self.variable("batch_stats", "var", init.ones, None, channels, jnp.float32)
        extra = {} if mask is None else {"mask": mask}
        y, (new_mean, new_var) = F.batch_norm(
            x,
            scale,
            bias,
            mean.value,
            var.value,
            train=train,
            momentum=self.momentum,
            eps=self.eps,
            axis_name=self.axis_name,
            **extra,
        )
        if train and self.is_mutable_collection("batch_stats") and not self.is_initializing():
            mean.value, var.value = new_mean, new_var
        return y


class GroupNorm(nn.Module):
    """Group normalisation with `num_groups` groups of channels (default 32, the
    paper's); see `jcnn.functional.group_norm`.

    References:
      Wu & He, *Group Normalization*, ECCV 2018.
    """

    num_groups: int = 32
    eps: float = 1e-5
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    scale_init: Initializer = init.ones
    bias_init: Initializer = init.zeros

    @nn.compact
    def __call__(self, x):
        num_groups = check_int(self.num_groups, "num_groups", "GroupNorm")
        x, scale, bias = _affine(self, x, "GroupNorm")
        return F.group_norm(x, scale, bias, num_groups=num_groups, eps=self.eps)


class LayerNorm(nn.Module):
    """Layer normalisation over ``(H, W, C)`` of each sample; see
    `jcnn.functional.layer_norm`.

    References:
      Ba, Kiros & Hinton, *Layer Normalization*, 2016.
    """

    eps: float = 1e-5
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    scale_init: Initializer = init.ones
    bias_init: Initializer = init.zeros

    @nn.compact
    def __call__(self, x):
        x, scale, bias = _affine(self, x, "LayerNorm")
        return F.layer_norm(x, scale, bias, eps=self.eps)


class InstanceNorm(nn.Module):
    """Instance normalisation over ``(H, W)`` of each sample and channel; see
    `jcnn.functional.instance_norm`.

    References:
      Ulyanov, Vedaldi & Lempitsky, *Instance Normalization*, 2016.
    """

    eps: float = 1e-5
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    scale_init: Initializer = init.ones
    bias_init: Initializer = init.zeros

    @nn.compact
    def __call__(self, x):
        x, scale, bias = _affine(self, x, "InstanceNorm")
        return F.instance_norm(x, scale, bias, eps=self.eps)
