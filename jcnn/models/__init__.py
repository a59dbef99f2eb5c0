"""The model zoo: a name -> factory registry.

``create(name, num_classes=..., **overrides)`` returns a `flax.linen.Module`
called as ``model.apply(variables, x, train=...)`` on an NHWC batch; logits
are float32 whatever the compute dtype. Every model accepts the overrides
`OVERRIDES` (see `Parts` for their meaning and `jcnn.models._parts` for how
maxout is fitted in).
"""

from __future__ import annotations

import difflib

import jax.numpy as jnp
from flax import linen as nn

from jcnn.models import lenet, resnet, simple, vgg
from jcnn.models._parts import ACTIVATIONS as ACTIVATIONS
from jcnn.models._parts import NORMS as NORMS
from jcnn.models._parts import OVERRIDES as OVERRIDES
from jcnn.models._parts import REGULARIZERS as REGULARIZERS
from jcnn.models._parts import Parts as Parts
from jcnn.models.lenet import LeNet5 as LeNet5
from jcnn.models.resnet import CifarResNet as CifarResNet
from jcnn.models.resnet import ResNet as ResNet
from jcnn.models.simple import SmallCNN as SmallCNN
from jcnn.models.vgg import VGG as VGG

REGISTRY = {
    "cnn_small": simple.cnn_small,
    "lenet5": lenet.lenet5,
    "resnet18": resnet.resnet18,
    "resnet20": resnet.resnet20,
    "resnet32": resnet.resnet32,
    "resnet34": resnet.resnet34,
    "resnet50": resnet.resnet50,
    "resnet56": resnet.resnet56,
    "vgg11": vgg.vgg11,
    "vgg11_bn": vgg.vgg11_bn,
    "vgg16": vgg.vgg16,
    "vgg16_bn": vgg.vgg16_bn,
}


def available() -> list[str]:
    """The names `create` accepts, sorted."""
    return sorted(REGISTRY)


def create(name: str, *, num_classes: int, **overrides) -> nn.Module:
    """The model `name` with `num_classes` outputs and the given `overrides`.

    Raises ValueError for an unknown name (listing close matches), an unknown
    override (naming the accepted ones) or a bad override value.
    """
    if name not in REGISTRY:
        close = difflib.get_close_matches(str(name), REGISTRY, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"create: unknown model {name!r}.{hint} Available: {', '.join(available())}."
        )
    if overrides.get("dtype") is not None:
        _check_dtype(overrides["dtype"])
    return REGISTRY[name](num_classes=num_classes, **overrides)


def _check_dtype(dtype) -> None:
    try:
        ok = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:  # not a dtype at all, e.g. "float8"
        ok = False
    if not ok:
        raise TypeError(
            f"create: `dtype` (the compute dtype) must be None or a floating dtype such as "
            f"jnp.bfloat16 or 'float32', got {dtype!r}."
        )
