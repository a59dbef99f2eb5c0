"""Pooling layers (no parameters): one module per pooling op of `jcnn.functional`."""

from __future__ import annotations

from flax import linen as nn

import jcnn.functional as F
from jcnn.nn._types import Padding


class MaxPool2d(nn.Module):
    """`jcnn.functional.max_pool2d`: `window`, `stride` (default: `window`), `padding`."""

    window: int | tuple[int, int] = 2
    stride: int | tuple[int, int] | None = None
    padding: Padding = "VALID"

    @nn.compact
    def __call__(self, x):
        return F.max_pool2d(x, self.window, stride=self.stride, padding=self.padding)


class AvgPool2d(nn.Module):
    """`jcnn.functional.avg_pool2d` (padded zeros excluded from the mean by default)."""

    window: int | tuple[int, int] = 2
    stride: int | tuple[int, int] | None = None
    padding: Padding = "VALID"
    count_include_pad: bool = False

    @nn.compact
    def __call__(self, x):
        return F.avg_pool2d(
            x,
            self.window,
            stride=self.stride,
            padding=self.padding,
            count_include_pad=self.count_include_pad,
        )


class AdaptiveAvgPool2d(nn.Module):
    """`jcnn.functional.adaptive_avg_pool2d` to `output_size` (int or ``(oh, ow)``)."""

    output_size: int | tuple[int, int]

    @nn.compact
    def __call__(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool2d(nn.Module):
    """`jcnn.functional.adaptive_max_pool2d` to `output_size` (int or ``(oh, ow)``)."""

    output_size: int | tuple[int, int]

    @nn.compact
    def __call__(self, x):
        return F.adaptive_max_pool2d(x, self.output_size)


class GlobalAvgPool(nn.Module):
    """`jcnn.functional.global_avg_pool`: ``(N, H, W, C) -> (N, C)``."""

    @nn.compact
    def __call__(self, x):
        return F.global_avg_pool(x)
