"""LeNet-5 (LeCun et al., 1998)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from jcnn import nn as jnn
from jcnn.models._parts import Parts, check_input, model_kwargs, scaled

LENET_INPUT = 32


class LeNet5(nn.Module):
    """LeNet-5: conv5(6) -> pool -> conv5(16) -> pool -> fc120 -> fc84 -> fc(classes).

    The layout of LeCun et al. (1998) on a 32x32 input: C1 is a 5x5 VALID conv
    to 28x28x6, S2 a 2x2/2 average pool, C3 a 5x5 VALID conv to 10x10x16, S4 a
    2x2/2 average pool to 5x5x16, then the fully connected C5 (120), F6 (84)
    and the output layer. With 10 classes it has 61,706 parameters. Departures
    from the paper, all standard: C3 connects to all six S2 maps (the paper's
    sparse table saves 1,000 weights), the subsampling layers are plain average
    pools (no trainable coefficient and bias), the output layer is a dense
    layer (not RBF units), and the activation is ``tanh`` (not the paper's
    scaled ``1.7159 tanh(2x/3)``); ``activation="relu"`` is the usual modern
    choice.

    Input: 32x32 (the paper's). Smaller inputs are zero-padded symmetrically
    to 32x32 by C1's padding, so a 28x28 MNIST/Fashion-MNIST image sits
    centred in a 32x32 field as in the paper (padding 2) and the parameter
    count does not change; larger inputs are used as they are (C5 grows).

    Default parts: no normalisation, ``tanh``; a `norm` goes after each conv,
    a `regularizer` after each pool.
    """

    num_classes: int = 10
    parts: Parts = Parts(norm=None, activation="tanh")
    width: float = 1.0
    in_channels: int | None = None

    @nn.compact
    def __call__(self, x, *, train: bool):
        check_input(self, x, "LeNet5")
        p, w = self.parts, self.width
        h, wd = x.shape[1:3]
        pad = tuple(
            (max(0, LENET_INPUT - n) // 2, max(0, LENET_INPUT - n) - max(0, LENET_INPUT - n) // 2)
            for n in (h, wd)
        )
        x = p.conv_norm_act(x, scaled(6, w), 5, padding=pad, train=train, suffix="1")
        x = jnn.AvgPool2d(2, name="pool1")(x)
        x = p.regularize(x, train=train, name="reg1")
        x = p.conv_norm_act(x, scaled(16, w), 5, padding="VALID", train=train, suffix="2")
        x = jnn.AvgPool2d(2, name="pool2")(x)
        x = p.regularize(x, train=train, name="reg2")
        x = jnn.Flatten(name="flatten")(x)
        x = p.dense(x, scaled(120, w) * p.pieces, name="fc1")
        x = p.activate(x, name="act3")
        x = p.dense(x, scaled(84, w) * p.pieces, name="fc2")
        x = p.activate(x, name="act4")
        x = p.dense(x, self.num_classes, name="fc3")
        return x.astype(jnp.float32)


def lenet5(*, num_classes: int, **overrides) -> LeNet5:
    """LeNet-5 (tanh, no norm; see `LeNet5`)."""
    return LeNet5(
        **model_kwargs("lenet5", num_classes, overrides, dict(norm=None, activation="tanh"))
    )
