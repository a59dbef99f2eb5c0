"""`Conv2d`: owns an HWIO kernel and a bias, calls `jcnn.functional.conv2d`."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

import jcnn.functional as F
from jcnn import init
from jcnn.functional._checks import check_int, check_ndim, pair
from jcnn.nn._types import DType, Initializer, Padding, check_initializers, kernel_and_bias


def conv_kernel_shape(module, x, fn: str) -> tuple[int, int, int, int]:
    """The HWIO kernel shape of a conv module for input `x`, with its checks."""
    check_ndim(x, 4, "x", fn, "NHWC")
    check_initializers(module, fn, "kernel_init", "bias_init")
    kh, kw = pair(module.kernel_size, "kernel_size", fn)
    features = check_int(module.features, "features", fn)
    groups = check_int(module.groups, "groups", fn)
    c_in = x.shape[-1]
    if c_in % groups or features % groups:
        raise ValueError(
            f"{fn}: `groups`={groups} must divide the {c_in} input channels and "
            f"`features`={features}."
        )
    return kh, kw, c_in // groups, features


class Conv2d(nn.Module):
    """2-D convolution layer (NHWC input, HWIO kernel); see `jcnn.functional.conv2d`.

    Parameters: ``kernel`` of shape ``(kh, kw, C_in // groups, features)``,
    initialised by `kernel_init` (default He normal, ``var = 2 / fan_in`` with
    ``fan_in = kh kw C_in / groups``: the initialisation that keeps the
    activation variance of a ReLU network constant, He et al. 2015), and
    ``bias`` of shape ``(features,)`` (zeros) when `use_bias`.

    Attributes:
      features: number of output channels.
      kernel_size: int or ``(kh, kw)``.
      stride, padding, dilation, groups: as in `jcnn.functional.conv2d`
        (``padding="SAME"`` by default; ``"SAME_SYMMETRIC"`` is PyTorch's).
      use_bias: whether to add a bias.
      dtype: compute dtype (None: promoted from input and parameters).
      param_dtype: storage dtype of the parameters.
      kernel_init, bias_init: `jcnn.init` initialisers.
    """

    features: int
    kernel_size: int | tuple[int, int] = 3
    stride: int | tuple[int, int] = 1
    padding: Padding = "SAME"
    dilation: int | tuple[int, int] = 1
    groups: int = 1
    use_bias: bool = True
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    kernel_init: Initializer = init.he_normal()
    bias_init: Initializer = init.zeros

    @nn.compact
    def __call__(self, x):
        shape = conv_kernel_shape(self, x, "Conv2d")
        x, kernel, bias = kernel_and_bias(self, x, shape, "Conv2d")
        return F.conv2d(
            x,
            kernel,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )
