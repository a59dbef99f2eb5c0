"""Activation layers: one module per activation of `jcnn.functional`.

The parameter-free ones exist so that a model is a tree of layers a summary
can list; `PReLU` and `Swish` own their learnt slope and beta.
"""

from __future__ import annotations

import numbers

import jax.numpy as jnp
from flax import linen as nn

import jcnn.functional as F
from jcnn.functional._checks import check_int
from jcnn.nn._types import DType, promote_dtype


def _constant(value: float, fn: str, name: str):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(
            f"{fn}: the initial value must be a Python float (`{name}`), got {value!r} "
            f"({type(value).__name__})."
        )

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    return init


class Sigmoid(nn.Module):
    """`jcnn.functional.sigmoid`."""

    @nn.compact
    def __call__(self, x):
        return F.sigmoid(x)


class Tanh(nn.Module):
    """`jcnn.functional.tanh`."""

    @nn.compact
    def __call__(self, x):
        return F.tanh(x)


class ReLU(nn.Module):
    """`jcnn.functional.relu`."""

    @nn.compact
    def __call__(self, x):
        return F.relu(x)


class ReLU6(nn.Module):
    """`jcnn.functional.relu6`."""

    @nn.compact
    def __call__(self, x):
        return F.relu6(x)


class ELU(nn.Module):
    """`jcnn.functional.elu` with a fixed `alpha`."""

    alpha: float = 1.0

    @nn.compact
    def __call__(self, x):
        return F.elu(x, self.alpha)


class SELU(nn.Module):
    """`jcnn.functional.selu` (pair it with LeCun-normal initialisation)."""

    @nn.compact
    def __call__(self, x):
        return F.selu(x)


class LeakyReLU(nn.Module):
    """`jcnn.functional.leaky_relu` with a fixed `negative_slope`."""

    negative_slope: float = 0.01

    @nn.compact
    def __call__(self, x):
        return F.leaky_relu(x, self.negative_slope)


class PReLU(nn.Module):
    """Parametric ReLU with one learnt slope per channel (last axis).

    Parameter ``slope`` of shape ``(C,)``, every entry initialised to
    `slope_init` = 0.25, the value of He et al. (2015); see
    `jcnn.functional.prelu`.

    References:
      He, Zhang, Ren & Sun, *Delving Deep into Rectifiers*, ICCV 2015.
    """

    slope_init: float = 0.25
    dtype: DType | None = None
    param_dtype: DType = jnp.float32

    @nn.compact
    def __call__(self, x):
        if jnp.ndim(x) < 1:
            raise ValueError(f"PReLU: `x` must have a channel axis, got shape {jnp.shape(x)}.")
        init = _constant(self.slope_init, "PReLU", "slope_init")
        slope = self.param("slope", init, (x.shape[-1],), self.param_dtype)
        x, slope = promote_dtype(x, slope, dtype=self.dtype, fn="PReLU")
        return F.prelu(x, slope)


class Swish(nn.Module):
    """Swish ``x * sigmoid(beta x)`` with a learnt scalar ``beta`` (init `beta_init` = 1,
    where it is SiLU); see `jcnn.functional.swish`.

    References:
      Ramachandran, Zoph & Le, *Searching for Activation Functions*, 2017.
    """

    beta_init: float = 1.0
    dtype: DType | None = None
    param_dtype: DType = jnp.float32

    @nn.compact
    def __call__(self, x):
        beta = self.param(
            "beta", _constant(self.beta_init, "Swish", "beta_init"), (), self.param_dtype
        )
        x, beta = promote_dtype(x, beta, dtype=self.dtype, fn="Swish")
        return F.swish(x, beta)


class Maxout(nn.Module):
    """Max over groups of `num_pieces` contiguous channels: ``(..., C) -> (..., C / k)``.

    See `jcnn.functional.maxout`. The layer before it must produce
    ``num_pieces`` times the channels wanted after it.
    """

    num_pieces: int = 2

    @nn.compact
    def __call__(self, x):
        return F.maxout(x, check_int(self.num_pieces, "num_pieces", "Maxout"))
