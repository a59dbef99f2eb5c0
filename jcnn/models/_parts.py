"""The interchangeable parts of every model of the zoo, and the override rules.

A model is built from `Parts`: which normalisation follows each conv, which
activation, which regulariser (and its rate), which kernel initialiser, and
the compute dtype. `jcnn.models.create(name, num_classes=..., **overrides)`
fills it from the model's defaults and the overrides.

Maxout. An activation that keeps the channel count can replace another
anywhere; maxout divides it by its number of pieces (here 2). So with
``activation="maxout"`` every conv or dense layer that feeds an activation
produces twice its channels (its norm normalises all of them) and the maxout
brings them back: a maxout conv layer in the sense of Goodfellow et al.
(2013), at twice the parameters and FLOPs of those layers. In a residual
block the activation after the addition has no layer of its own to widen: the
branch's last conv is widened, the maxout is applied to the branch, and the
shortcut is added after it (``out = shortcut + maxout(branch)``).
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from typing import Any

from flax import linen as nn

from jcnn import init
from jcnn import nn as jnn
from jcnn.functional._checks import _is_int, check_int, check_ndim, check_rate

NORMS = ("batch", "group", "layer", "instance")
ACTIVATIONS = (
    "sigmoid",
    "tanh",
    "relu",
    "relu6",
    "leaky_relu",
    "prelu",
    "elu",
    "selu",
    "swish",
    "maxout",
)
REGULARIZERS = ("dropout", "dropconnect", "dropblock", "dropblock_channel", "disout")
KERNEL_INITS = (
    "he_normal",
    "he_uniform",
    "xavier_normal",
    "xavier_uniform",
    "lecun_normal",
    "lecun_uniform",
    "orthogonal",
)
MAXOUT_PIECES = 2

# Every model accepts exactly these overrides (`create`).
OVERRIDES = (
    "norm",
    "activation",
    "regularizer",
    "rate",
    "block_size",
    "disout_alpha",
    "num_groups",
    "kernel_init",
    "dtype",
    "in_channels",
    "width",
    "bn_axis_name",
)


def _choice(value, name: str, choices, *, optional: bool) -> None:
    if value is None and optional:
        return
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        allowed = (*choices, None) if optional else choices
        raise ValueError(f"models: `{name}` must be one of {allowed}, got {value!r}.{hint}")


@dataclasses.dataclass(frozen=True)
class Parts:
    """What a model is made of (hashable, so it can be a Flax module attribute).

    Attributes:
      norm: ``"batch"``, ``"group"``, ``"layer"``, ``"instance"`` or None
        (no normalisation; convs then get a bias).
      activation: one of `ACTIVATIONS`.
      regularizer: None or one of `REGULARIZERS`: ``"dropout"``,
        ``"dropblock"`` (one block mask shared by the channels),
        ``"dropblock_channel"`` (one mask per channel), ``"disout"`` (on
        feature maps, where each model states) or ``"dropconnect"`` (on the
        kernels of the convs that get ``train``: every conv followed by a
        norm and an activation, stems included, and the last conv of each
        residual branch; projection shortcuts stay plain). In eval mode each
        is the identity.
      rate: drop (distortion) probability of the regulariser.
      block_size: block side of DropBlock and Disout (clamped to the map);
        3 suits the 7x7-32x32 maps of 28-32 px inputs, the DropBlock paper
        uses 7 on ImageNet's 224 px.
      disout_alpha: Disout's distortion intensity.
      num_groups: GroupNorm groups: the largest divisor of the channel count
        that is <= `num_groups` (32, the paper's default).
      kernel_init: name of a `jcnn.init` factory, called with its defaults
        (He normal by default; ``"lecun_normal"`` is the one SELU assumes), or
        an initializer itself, ``(key, shape, dtype) -> array`` such as
        ``jcnn.init.normal(0.01)``.
      dtype: compute dtype of every layer (parameters stay float32).
      bn_axis_name: the ``shard_map``/``pmap`` axis over which every BatchNorm
        reduces its batch statistics (None: the local batch);
        `jcnn.train.parallel` sets it.
    """

    norm: str | None = "batch"
    activation: str = "relu"
    regularizer: str | None = None
    rate: float = 0.1
    block_size: int = 3
    disout_alpha: float = 1.0
    num_groups: int = 32
    kernel_init: Any = "he_normal"
    dtype: Any = None
    bn_axis_name: str | None = None

    def __post_init__(self):
        _choice(self.norm, "norm", NORMS, optional=True)
        _choice(self.activation, "activation", ACTIVATIONS, optional=False)
        _choice(self.regularizer, "regularizer", REGULARIZERS, optional=True)
        if not callable(self.kernel_init):
            _choice(self.kernel_init, "kernel_init", KERNEL_INITS, optional=False)
        check_rate(self.rate, "models")
        check_int(self.block_size, "block_size", "models")
        check_int(self.num_groups, "num_groups", "models")
        if self.bn_axis_name is not None and not isinstance(self.bn_axis_name, str):
            raise TypeError(
                f"models: `bn_axis_name` must be None or an axis name (str), "
                f"got {self.bn_axis_name!r}."
            )
        alpha = self.disout_alpha
        if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool) or not alpha >= 0:
            raise ValueError(f"models: `disout_alpha` must be a number >= 0, got {alpha!r}.")

    @property
    def pieces(self) -> int:
        """How many times wider a layer feeding the activation must be."""
        return MAXOUT_PIECES if self.activation == "maxout" else 1

    def initializer(self):
        """The kernel initializer `kernel_init` names (or is)."""
        if callable(self.kernel_init):
            return self.kernel_init
        return getattr(init, self.kernel_init)()

    # Each method below builds one layer in the calling module's compact
    # context and applies it.

    def conv(
        self,
        x,
        features,
        kernel_size,
        *,
        name,
        stride=1,
        padding="SAME_SYMMETRIC",
        bias=None,
        train=None,
    ):
        """A conv; with a bias only when there is no norm after it (unless `bias` says).

        Given `train`, the ``"dropconnect"`` regulariser drops this conv's kernel
        weights in training (the parameters are the same either way).
        """
        kwargs = dict(
            stride=stride,
            padding=padding,
            use_bias=self.norm is None if bias is None else bias,
            dtype=self.dtype,
            kernel_init=self.initializer(),
            name=name,
        )
        if self.regularizer == "dropconnect" and train is not None:
            return jnn.DropConnectConv2d(features, kernel_size, rate=self.rate, **kwargs)(
                x, train=train
            )
        return jnn.Conv2d(features, kernel_size, **kwargs)(x)

    def dense(self, x, features, *, name):
        return jnn.Dense(features, dtype=self.dtype, kernel_init=self.initializer(), name=name)(x)

    def normalize(self, x, *, train, name):
        if self.norm is None:
            return x
        if self.norm == "batch":
            return jnn.BatchNorm(axis_name=self.bn_axis_name, dtype=self.dtype, name=name)(
                x, train=train
            )
        if self.norm == "group":
            c = x.shape[-1]
            groups = max(g for g in range(1, min(self.num_groups, c) + 1) if c % g == 0)
            return jnn.GroupNorm(num_groups=groups, dtype=self.dtype, name=name)(x)
        if self.norm == "layer":
            return jnn.LayerNorm(dtype=self.dtype, name=name)(x)
        return jnn.InstanceNorm(dtype=self.dtype, name=name)(x)

    def activate(self, x, *, name):
        layer = {
            "sigmoid": jnn.Sigmoid,
            "tanh": jnn.Tanh,
            "relu": jnn.ReLU,
            "relu6": jnn.ReLU6,
            "leaky_relu": jnn.LeakyReLU,
            "elu": jnn.ELU,
            "selu": jnn.SELU,
        }.get(self.activation)
        if layer is not None:
            return layer(name=name)(x)
        if self.activation == "prelu":
            return jnn.PReLU(dtype=self.dtype, name=name)(x)
        if self.activation == "swish":
            return jnn.Swish(dtype=self.dtype, name=name)(x)
        return jnn.Maxout(MAXOUT_PIECES, name=name)(x)

    def regularize(self, x, *, train, name):
        """The feature-map regulariser (DropConnect acts in `conv` instead)."""
        if self.regularizer in (None, "dropconnect"):
            return x
        if self.regularizer == "dropout":
            return jnn.Dropout(self.rate, name=name)(x, train=train)
        if self.regularizer in ("dropblock", "dropblock_channel"):
            per_channel = self.regularizer == "dropblock_channel"
            layer = jnn.DropBlock(self.rate, self.block_size, per_channel=per_channel, name=name)
        else:
            layer = jnn.Disout(self.rate, self.block_size, self.disout_alpha, name=name)
        return layer(x, train=train)

    def conv_norm_act(self, x, features, kernel_size, *, train, suffix, stride=1, **conv_kw):
        """conv (widened for maxout) -> norm -> activation, named ``conv|norm|act{suffix}``."""
        x = self.conv(
            x,
            features * self.pieces,
            kernel_size,
            stride=stride,
            name=f"conv{suffix}",
            train=train,
            **conv_kw,
        )
        x = self.normalize(x, train=train, name=f"norm{suffix}")
        return self.activate(x, name=f"act{suffix}")


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1."""
    return max(1, round(channels * width))


def check_input(model: nn.Module, x, fn: str) -> None:
    """Checks an NHWC image batch against the model's `in_channels` (when set)."""
    check_ndim(x, 4, "x", fn, "NHWC")
    if model.in_channels is not None and x.shape[-1] != model.in_channels:
        raise ValueError(
            f"{fn}: the model was created with in_channels={model.in_channels} but `x` of "
            f"shape {tuple(x.shape)} has {x.shape[-1]} channels."
        )


def model_kwargs(name: str, num_classes, overrides: dict, defaults: dict) -> dict:
    """The attributes of a model from its `defaults` and the user's `overrides`.

    Raises ValueError naming any unknown override and the accepted ones.
    """
    unknown = sorted(set(overrides) - set(OVERRIDES))
    if unknown:
        raise ValueError(
            f"create: unknown override(s) {', '.join(map(repr, unknown))} for model {name!r}; "
            f"accepted: {', '.join(OVERRIDES)}."
        )
    check_int(num_classes, "num_classes", "create")
    merged = {**defaults, **overrides}
    width = merged.pop("width", 1.0)
    if not isinstance(width, numbers.Real) or isinstance(width, bool) or not width > 0:
        raise ValueError(f"create: `width` must be a number > 0 (a multiplier), got {width!r}.")
    in_channels = merged.pop("in_channels", None)
    if in_channels is not None and not (_is_int(in_channels) and in_channels >= 1):
        raise ValueError(f"create: `in_channels` must be an int >= 1, got {in_channels!r}.")
    return dict(
        num_classes=num_classes,
        parts=Parts(**merged),
        width=float(width),
        in_channels=in_channels,
    )
