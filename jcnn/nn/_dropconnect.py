"""DropConnect layers: `Dense` and `Conv2d` whose weights are dropped while training.

While training (``train=True``, ``rate > 0``) the kernel goes through
`jcnn.functional.dropconnect` with a key from the ``"dropout"`` collection
before the layer's op; in evaluation the plain kernel is used (the mean
kernel, as the dropped kernel is rescaled by ``1 / (1 - rate)``). The bias is
not dropped.

References:
  Wan, Zeiler, Zhang, LeCun & Fergus, *Regularization of Neural Networks
  using DropConnect*, ICML 2013.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

import jcnn.functional as F
from jcnn import init
from jcnn.nn._conv import conv_kernel_shape
from jcnn.nn._dropout import active, dropout_key
from jcnn.nn._linear import dense_kernel_shape
from jcnn.nn._types import DType, Initializer, Padding, kernel_and_bias


class DropConnectDense(nn.Module):
    """`Dense` with DropConnect on its kernel (same parameters and defaults)."""

    features: int
    rate: float = 0.5
    use_bias: bool = True
    dtype: DType | None = None
    param_dtype: DType = jnp.float32
    kernel_init: Initializer = init.he_normal()
    bias_init: Initializer = init.zeros

    @nn.compact
    def __call__(self, x, *, train: bool):
        shape = dense_kernel_shape(self, x, "DropConnectDense")
        x, kernel, bias = kernel_and_bias(self, x, shape, "DropConnectDense")
        if active(self, train, "DropConnectDense"):
            kernel = F.dropconnect(dropout_key(self, "DropConnectDense"), kernel, self.rate)
        return F.dense(x, kernel, bias)


class DropConnectConv2d(nn.Module):
    """`Conv2d` with DropConnect on its kernel (same parameters and defaults)."""

    features: int
    kernel_size: int | tuple[int, int] = 3
    rate: float = 0.5
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
    def __call__(self, x, *, train: bool):
        shape = conv_kernel_shape(self, x, "DropConnectConv2d")
        x, kernel, bias = kernel_and_bias(self, x, shape, "DropConnectConv2d")
        if active(self, train, "DropConnectConv2d"):
            kernel = F.dropconnect(dropout_key(self, "DropConnectConv2d"), kernel, self.rate)
        return F.conv2d(
            x,
            kernel,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
        )
