"""VGG-11 and VGG-16 (Simonyan & Zisserman, 2015), torchvision layout."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from jcnn import nn as jnn
from jcnn.models._parts import Parts, check_input, model_kwargs, scaled

# Conv widths per stage; each stage ends with a 2x2/2 max pool.
CONFIGS = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
}


class VGG(nn.Module):
    """VGG: five stages of 3x3 convs (padding 1) each closed by a 2x2/2 max pool,
    an adaptive average pool to 7x7, and the classifier 4096 -> 4096 ->
    classes with dropout 0.5 before the second and third dense layers.

    As torchvision's ``vgg11``/``vgg16`` (and ``*_bn`` with a BatchNorm after
    each conv): every conv has a bias, also when a norm follows it, so
    VGG-16 has 138,357,544 parameters with 1000 classes (138,365,992 with BN).
    The adaptive pool makes the classifier's input 7x7x512 for any input
    size: 224x224 gives 7x7 already; a 32x32 input gives 1x1, repeated to 7x7.
    Flattening is NHWC (channel fastest), unlike PyTorch's NCHW.

    A `regularizer` goes after each max pool; the classifier's two dropouts
    (rate 0.5) are part of the architecture and always there. `width` scales
    the conv widths and the two 4096 layers.
    """

    depth: int = 16
    num_classes: int = 1000
    parts: Parts = Parts(norm=None)
    width: float = 1.0
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_input(self, x, "VGG")
        if self.depth not in CONFIGS:
            raise ValueError(f"VGG: `depth` must be one of {tuple(CONFIGS)}, got {self.depth!r}.")
        p, w = self.parts, self.width
        layer = 0
        for stage, widths in enumerate(CONFIGS[self.depth], start=1):
            for features in widths:
                layer += 1
                x = p.conv_norm_act(
                    x, scaled(features, w), 3, train=train, suffix=str(layer), bias=True
                )
            x = jnn.MaxPool2d(2, name=f"pool{stage}")(x)
            x = p.regularize(x, train=train, name=f"reg{stage}")
        x = jnn.AdaptiveAvgPool2d(7, name="avgpool")(x)
        x = jnn.Flatten(name="flatten")(x)
        for i in (1, 2):
            x = p.dense(x, scaled(4096, w) * p.pieces, name=f"fc{i}")
            x = p.activate(x, name=f"fc_act{i}")
            x = jnn.Dropout(0.5, name=f"fc_dropout{i}")(x, train=train)
        x = p.dense(x, self.num_classes, name="fc3")
        return x.astype(jnp.float32)


def _factory(depth: int, norm: str | None):
    name = f"vgg{depth}" + ("_bn" if norm else "")

    def create(*, num_classes: int, **overrides) -> VGG:
        return VGG(depth=depth, **model_kwargs(name, num_classes, overrides, dict(norm=norm)))

    create.__name__ = name
    create.__doc__ = f"VGG-{depth}" + (" with BatchNorm" if norm else "") + " (see `VGG`)."
    return create


vgg11 = _factory(11, None)
vgg11_bn = _factory(11, "batch")
vgg16 = _factory(16, None)
vgg16_bn = _factory(16, "batch")
