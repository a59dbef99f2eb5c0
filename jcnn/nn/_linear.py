"""`Dense` (calls `jcnn.functional.dense`) and `Flatten` (`jcnn.functional.flatten`)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

import jcnn.functional as F
from jcnn import init
from jcnn.functional._checks import check_int
from jcnn.nn._types import DType, Initializer, check_initializers, kernel_and_bias


def dense_kernel_shape(module, x, fn: str) -> tuple[int, int]:
    """The ``(in, out)`` kernel shape of a dense module for input `x`."""
    if jnp.ndim(x) < 1:
        raise ValueError(f"{fn}: `x` must have a feature axis (ndim >= 1), got shape {x.shape}.")
    check_initializers(module, fn, "kernel_init", "bias_init")
    return x.shape[-1], check_int(module.features, "features", fn)


class Dense(nn.Module):
    """Fully connected layer on the last axis; see `jcnn.functional.dense`.

    Parameters: ``kernel`` of shape ``(in, features)`` (default He normal,
    ``var = 2 / in``) and ``bias`` of shape ``(features,)`` (zeros).

    Attributes:
      features: number of outputs.
      use_bias: whether to add a bias.
      dtype, param_dtype, kernel_init, bias_init: as in `Conv2d`.
    """

    features: int
    use_bias: bool = True
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    kernel_init: Initializer = init.he_normal()
    bias_init: Initializer = init.zeros

    @nn.compact
    def __call__(self, x):
        shape = dense_kernel_shape(self, x, "Dense")
        x, kernel, bias = kernel_and_bias(self, x, shape, "Dense")
        return F.dense(x, kernel, bias)


class Flatten(nn.Module):
    """``(N, d1, ..., dk) -> (N, d1 * ... * dk)``; see `jcnn.functional.flatten`."""

    @nn.compact
    def __call__(self, x):
        return F.flatten(x)
