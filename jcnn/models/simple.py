"""A small, fast CNN for 28x28 grey images (Fashion-MNIST)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from jcnn import nn as jnn
from jcnn.models._parts import Parts, check_input, model_kwargs, scaled


class SmallCNN(nn.Module):
    """conv32-conv32-pool-conv64-conv64-pool-fc128-fc(classes), BN + ReLU.

    Four 3x3 convs ("SAME"), each followed by the norm and the activation;
    2x2/2 max pools after the second and fourth; then flatten, a dense layer
    of 128 and the output layer. On a 28x28x1 input: 28 -> 14 -> 7, 37 MFLOPs
    forward, ~0.47 M parameters. A `regularizer` goes after each pool.

    It is the model of the `default` config (`make train`), whose measured
    accuracy and time are in the README.
    """

    num_classes: int = 10
    parts: Parts = Parts()
    width: float = 1.0
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_input(self, x, "SmallCNN")
        p, w = self.parts, self.width
        layer = 0
        for stage, features in enumerate((32, 64), start=1):
            for _ in range(2):
                layer += 1
                x = p.conv_norm_act(x, scaled(features, w), 3, train=train, suffix=str(layer))
            x = jnn.MaxPool2d(2, name=f"pool{stage}")(x)
            x = p.regularize(x, train=train, name=f"reg{stage}")
        x = jnn.Flatten(name="flatten")(x)
        x = p.dense(x, scaled(128, w) * p.pieces, name="fc1")
        x = p.activate(x, name="act5")
        x = p.dense(x, self.num_classes, name="fc2")
        return x.astype(jnp.float32)


def cnn_small(*, num_classes: int, **overrides) -> SmallCNN:
    """`SmallCNN` (batch norm, ReLU)."""
    return SmallCNN(**model_kwargs("cnn_small", num_classes, overrides, {}))
