"""Residual networks (He et al., 2016): ImageNet ResNet-18/34/50 in torchvision's
layout, and the CIFAR ResNet-20/32/56."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from jcnn import nn as jnn
from jcnn.models._parts import Parts, check_input, model_kwargs, scaled


def _merge(p: Parts, x, shortcut, *, name: str):
    """``act(branch + shortcut)``; with maxout ``shortcut + maxout(branch)`` (see `_parts`)."""
    if p.pieces > 1:
        return shortcut + p.activate(x, name=name)
    return p.activate(x + shortcut, name=name)


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first strided) with an identity or projection shortcut.

    `shortcut`: ``"B"`` projects with a strided 1x1 conv + norm when the shape
    changes (torchvision's ``downsample``); ``"A"`` subsamples and zero-pads
    the channels (no parameters; He et al. 2016, CIFAR experiments).
    """

    features: int
    stride: int = 1
    shortcut: str = "B"
    parts: Parts = Parts()

    @nn.compact
    def __call__(self, x, *, train: bool):
        p = self.parts
        y = p.conv_norm_act(x, self.features, 3, stride=self.stride, train=train, suffix="1")
        y = p.conv(y, self.features * p.pieces, 3, name="conv2", train=train)
        y = p.normalize(y, train=train, name="norm2")
        shortcut = _shortcut(self, x, self.features, train=train)
        return _merge(p, y, shortcut, name="act2")


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided: ResNet v1.5, as torchvision) -> 1x1 expand to
    ``4 * features``, with a projection shortcut when the shape changes."""

    features: int
    stride: int = 1
    shortcut: str = "B"
    parts: Parts = Parts()

    expansion = 4

    @nn.compact
    def __call__(self, x, *, train: bool):
        p = self.parts
        out = self.features * self.expansion
        y = p.conv_norm_act(x, self.features, 1, train=train, suffix="1")
        y = p.conv_norm_act(y, self.features, 3, stride=self.stride, train=train, suffix="2")
        y = p.conv(y, out * p.pieces, 1, name="conv3", train=train)
        y = p.normalize(y, train=train, name="norm3")
        shortcut = _shortcut(self, x, out, train=train)
        return _merge(p, y, shortcut, name="act3")


def _shortcut(block, x, features: int, *, train: bool):
    if block.stride == 1 and x.shape[-1] == features:
        return x
    p = block.parts
    if block.shortcut == "A":
        if features < x.shape[-1]:
            raise ValueError(
                f"ResNet: an option-A shortcut cannot reduce {x.shape[-1]} channels to {features}."
            )
        x = x[:, :: block.stride, :: block.stride]
        return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, features - x.shape[-1])))
    x = p.conv(x, features, 1, stride=block.stride, name="downsample_conv")
    return p.normalize(x, train=train, name="downsample_norm")


class ResNet(nn.Module):
    """ImageNet ResNet (torchvision layout).

    Stem: 7x7/2 conv (64, padding 3), norm, activation, 3x3/2 max pool
    (padding 1); four stages of `stage_sizes` blocks with 64, 128, 256, 512
    features, the first block of stages 2-4 strided (the stride is on the 3x3
    conv, ResNet v1.5) with a 1x1 conv + norm projection shortcut (option B);
    global average pool; dense to `num_classes`. Paddings are PyTorch's
    symmetric ones, so stride-2 layers see the same pixels. Convs have no
    bias (a norm follows) unless ``norm=None``. 1000 classes: ResNet-18 has
    11,689,512 parameters, ResNet-34 21,797,672, ResNet-50 25,557,032.

    A `regularizer` goes after each stage (DropBlock's placement, Ghiasi et
    al. 2018, applies it to the last two). Any input of at least 32x32 works
    (the global pool takes whatever remains).

    References:
      He, Zhang, Ren & Sun, *Deep Residual Learning for Image Recognition*,
      CVPR 2016.
    """

    stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
    bottleneck: bool = False
    num_classes: int = 1000
    parts: Parts = Parts()
    width: float = 1.0
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_input(self, x, "ResNet")
        p, w = self.parts, self.width
        x = p.conv_norm_act(x, scaled(64, w), 7, stride=2, train=train, suffix="1")
        x = jnn.MaxPool2d(3, stride=2, padding="SAME_SYMMETRIC", name="maxpool")(x)
        block = Bottleneck if self.bottleneck else BasicBlock
        for stage, blocks in enumerate(self.stage_sizes):
            for i in range(blocks):
                x = block(
                    scaled(64 * 2**stage, w),
                    stride=2 if stage > 0 and i == 0 else 1,
                    parts=p,
                    name=f"layer{stage + 1}_{i}",
                )(x, train=train)
            x = p.regularize(x, train=train, name=f"reg{stage + 1}")
        x = jnn.GlobalAvgPool(name="avgpool")(x)
        x = p.dense(x, self.num_classes, name="fc")
        return x.astype(jnp.float32)


class CifarResNet(nn.Module):
    """CIFAR ResNet-(6n+2) of He et al. (2016), section 4.2.

    3x3 conv (16), norm, activation; three stages of `n` basic blocks with
    16, 32, 64 features, the first block of stages 2 and 3 strided; global
    average pool; dense. The shortcuts are identities, with option A
    (subsample + zero-padded channels, no parameters) where the shape changes,
    as in the paper's CIFAR experiments: ResNet-20 has 0.27 M parameters,
    ResNet-32 0.46 M, ResNet-56 0.85 M (Table 6). Any input size works (32x32
    CIFAR, 28x28 Fashion-MNIST); a `regularizer` goes after each stage.
    """

    n: int = 3
    num_classes: int = 10
    parts: Parts = Parts()
    width: float = 1.0
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_input(self, x, "CifarResNet")
        p, w = self.parts, self.width
        x = p.conv_norm_act(x, scaled(16, w), 3, train=train, suffix="1")
        for stage in range(3):
            for i in range(self.n):
                x = BasicBlock(
                    scaled(16 * 2**stage, w),
                    stride=2 if stage > 0 and i == 0 else 1,
                    shortcut="A",
                    parts=p,
                    name=f"layer{stage + 1}_{i}",
                )(x, train=train)
            x = p.regularize(x, train=train, name=f"reg{stage + 1}")
        x = jnn.GlobalAvgPool(name="avgpool")(x)
        x = p.dense(x, self.num_classes, name="fc")
        return x.astype(jnp.float32)


def _imagenet(name: str, stage_sizes: tuple[int, ...], bottleneck: bool):
    def create(*, num_classes: int, **overrides) -> ResNet:
        kwargs = model_kwargs(name, num_classes, overrides, {})
        return ResNet(stage_sizes=stage_sizes, bottleneck=bottleneck, **kwargs)

    create.__name__ = name
    create.__doc__ = f"{name}: `ResNet` with stages {stage_sizes}."
    return create


def _cifar(name: str, n: int):
    def create(*, num_classes: int, **overrides) -> CifarResNet:
        return CifarResNet(n=n, **model_kwargs(name, num_classes, overrides, {}))

    create.__name__ = name
    create.__doc__ = f"{name}: `CifarResNet` with n={n} blocks per stage."
    return create


resnet18 = _imagenet("resnet18", (2, 2, 2, 2), False)
resnet34 = _imagenet("resnet34", (3, 4, 6, 3), False)
resnet50 = _imagenet("resnet50", (3, 4, 6, 3), True)
resnet20 = _cifar("resnet20", 3)
resnet32 = _cifar("resnet32", 5)
resnet56 = _cifar("resnet56", 9)
