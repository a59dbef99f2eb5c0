"""Fully connected layer and the flatten that feeds it."""

from __future__ import annotations

import math

import jax.numpy as jnp

from jcnn.functional._checks import check_floating, check_ndim


def dense(x, kernel, bias=None):
    r"""Affine map of the last axis: :math:`y_{\dots o} = b_o + \sum_i x_{\dots i} k_{io}`.

    Args:
      x: input of shape ``(..., in)``, ndim >= 1, floating point; leading
        axes are batch axes.
      kernel: weights of shape ``(in, out)``, floating point.
      bias: optional ``(out,)``, added to every output row.

    Returns:
      ``(..., out)`` in the promoted dtype of `x`, `kernel` (and `bias`).
    """
    fn = "dense"
    x, kernel = jnp.asarray(x), jnp.asarray(kernel)
    check_ndim(kernel, 2, "kernel", fn, "(in, out)")
    if x.ndim < 1:
        raise ValueError(f"{fn}: `x` must have a feature axis (ndim >= 1), got shape {x.shape}.")
    check_floating(x, "x", fn)
    check_floating(kernel, "kernel", fn)
    n_in, n_out = kernel.shape
    if x.shape[-1] != n_in:
        raise ValueError(
            f"{fn}: `x` of shape {tuple(x.shape)} has {x.shape[-1]} features but `kernel` "
            f"of shape {tuple(kernel.shape)} expects {n_in} (the kernel is (in, out))."
        )
    y = jnp.matmul(x, kernel)
    if bias is None:
        return y
    bias = jnp.asarray(bias)
    if tuple(bias.shape) != (n_out,):
        raise ValueError(f"{fn}: `bias` must have shape ({n_out},), got {tuple(bias.shape)}.")
    check_floating(bias, "bias", fn)
    return y + bias


def flatten(x):
    """Flattens all but the batch axis: ``(N, d1, ..., dk) -> (N, d1 * ... * dk)``.

    Row-major (C) order, so for NHWC input the channel index varies fastest,
    as in Keras/Flax (PyTorch's NCHW flatten orders features differently).

    Args:
      x: array of ndim >= 2 (a 1-D array has no feature axes to flatten).
    """
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(
            f"flatten: `x` must have a batch axis and at least one feature axis (ndim >= 2), "
            f"got shape {tuple(x.shape)}."
        )
    # An explicit size, not -1: reshape cannot infer -1 when N == 0.
    return x.reshape(x.shape[0], math.prod(x.shape[1:]))
