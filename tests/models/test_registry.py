"""The registry, the overrides and the parameter counts (no compilation: shapes
come from `jax.eval_shape`, except where a test says it runs the model).

Published numbers: torchvision's model cards (ResNet-18 11,689,512; ResNet-34
21,797,672; ResNet-50 25,557,032; VGG-11 132,863,336; VGG-11-BN 132,868,840;
VGG-16 138,357,544; VGG-16-BN 138,365,992 parameters at 1000 classes), LeNet-5
61,706 (LeCun et al. 1998 with a fully connected C3), and He et al. 2016,
Table 6 (CIFAR ResNet-20/32/56: 0.27 M, 0.46 M, 0.85 M).
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from jcnn import models
from jcnn.models import Parts
from jcnn.summary import summarize
from tests.util import normal

KEY = jax.random.key(0, impl="rbg")
REQUIRED = {
    "lenet5",
    "cnn_small",
    "vgg11",
    "vgg11_bn",
    "vgg16",
    "vgg16_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet20",
    "resnet32",
    "resnet56",
}


def shapes(model, input_shape, train=False):
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    return jax.eval_shape(lambda x: model.init(KEY, x, train=train), x)


def count(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def test_available_is_sorted_and_has_every_model():
    names = models.available()
    assert names == sorted(names)
    assert REQUIRED <= set(names)


@pytest.mark.parametrize(
    "name,classes,input_shape,expected",
    [
        ("resnet18", 1000, (224, 224, 3), 11_689_512),
        ("resnet34", 1000, (224, 224, 3), 21_797_672),
        ("resnet50", 1000, (224, 224, 3), 25_557_032),
        ("vgg11", 1000, (224, 224, 3), 132_863_336),
        ("vgg11_bn", 1000, (224, 224, 3), 132_868_840),
        ("vgg16", 1000, (224, 224, 3), 138_357_544),
        ("vgg16_bn", 1000, (224, 224, 3), 138_365_992),
        ("lenet5", 10, (32, 32, 1), 61_706),
        ("lenet5", 10, (28, 28, 1), 61_706),  # padded to 32x32 by C1
    ],
)
def test_parameter_count_matches_published(name, classes, input_shape, expected):
    model = models.create(name, num_classes=classes)
    assert count(shapes(model, input_shape)["params"]) == expected


@pytest.mark.parametrize(
    "name,millions", [("resnet20", 0.27), ("resnet32", 0.46), ("resnet56", 0.85)]
)
def test_cifar_resnets_match_the_paper_to_its_two_decimals(name, millions):
    n = count(shapes(models.create(name, num_classes=10), (32, 32, 3))["params"])
    assert round(n / 1e6, 2) == millions


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown model 'resnet5'\. Did you mean 'resnet5\d'"):
        models.create("resnet5", num_classes=10)
    with pytest.raises(ValueError, match=r"unknown model 'xyz'\. Available: cnn_small, "):
        models.create("xyz", num_classes=10)


def test_unknown_override_names_it_and_the_accepted_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown override\(s\) 'depth', 'pool' for model 'resnet18'; accepted: norm, "
        r"activation, regularizer, rate, block_size",
    ):
        models.create("resnet18", num_classes=10, depth=3, pool="max")


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(norm="batchnorm"), r"`norm` must be one of .*got 'batchnorm'\. Did you mean 'batch'"),
        (dict(activation="gelu"), r"`activation` must be one of \('sigmoid', .*got 'gelu'"),
        (dict(regularizer="cutout"), r"`regularizer` must be one of .*None\), got 'cutout'"),
        (dict(rate=1.5), r"`rate` must be in \[0, 1\).*got 1\.5"),
        (dict(block_size=0), r"`block_size` must be an int >= 1, got 0"),
        (dict(kernel_init="he"), r"`kernel_init` must be one of .*got 'he'"),
        (dict(kernel_init=3), r"`kernel_init` must be one of .*got 3\."),
        (dict(width=0), r"`width` must be a number > 0 \(a multiplier\), got 0"),
        (dict(in_channels=0), r"`in_channels` must be an int >= 1, got 0"),
        (dict(disout_alpha=-1.0), r"`disout_alpha` must be a number >= 0, got -1\.0"),
    ],
)
def test_bad_override_values_are_rejected_at_create(overrides, match):
    with pytest.raises(ValueError, match=match):
        models.create("cnn_small", num_classes=10, **overrides)


def test_num_classes_is_checked():
    with pytest.raises(ValueError, match=r"create: `num_classes` must be an int >= 1, got 0"):
        models.create("lenet5", num_classes=0)


def test_in_channels_is_checked_against_the_input():
    model = models.create("resnet20", num_classes=10, in_channels=1)
    shapes(model, (28, 28, 1))  # Fashion-MNIST
    with pytest.raises(ValueError, match=r"in_channels=1 but `x` of shape \(1, 32, 32, 3\)"):
        shapes(model, (32, 32, 3))


def test_models_reject_bad_inputs_and_configurations():
    with pytest.raises(
        ValueError, match=r"LeNet5: `x` must be NHWC \(4-D\), got shape \(1, 32, 32\)"
    ):
        models.create("lenet5", num_classes=10).init(KEY, jnp.zeros((1, 32, 32)), train=False)
    with pytest.raises(ValueError, match=r"VGG: `depth` must be one of \(11, 16\), got 13"):
        shapes(models.VGG(depth=13), (32, 32, 3))
    block = models.resnet.BasicBlock(8, stride=2, shortcut="A")
    with pytest.raises(ValueError, match=r"option-A shortcut cannot reduce 16 channels to 8"):
        jax.eval_shape(lambda x: block.init(KEY, x, train=False), jnp.zeros((1, 8, 8, 16)))


def _layers(model, input_shape):
    return {row.layer for row in summarize(model, input_shape).rows}


@pytest.mark.parametrize(
    "norm,layer",
    [
        ("batch", "BatchNorm"),
        ("group", "GroupNorm"),
        ("layer", "LayerNorm"),
        ("instance", "InstanceNorm"),
        (None, None),
    ],
)
def test_norm_override(norm, layer):
    model = models.create("resnet20", num_classes=10, norm=norm)
    variables = shapes(model, (16, 16, 3))
    norms = {"BatchNorm", "GroupNorm", "LayerNorm", "InstanceNorm"}
    assert _layers(model, (16, 16, 3)) & norms == ({layer} if layer else set())
    assert ("batch_stats" in variables) == (norm == "batch")
    # Convs carry a bias exactly when no norm follows them.
    assert ("bias" in variables["params"]["conv1"]) == (norm is None)


def test_group_norm_uses_the_largest_divisor_not_above_num_groups():
    from jcnn import nn as jnn

    model = models.create("lenet5", num_classes=10, norm="group", num_groups=4)
    seen = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, jnn.GroupNorm) and context.method_name == "__call__":
            seen.append((context.module.name, args[0].shape[-1], context.module.num_groups))
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(record):
        model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)), train=False)
    # 6 channels: 4 does not divide 6, 3 does; 16 channels: 4.
    assert [(name, c, g) for name, c, g in seen if name in ("norm1", "norm2")] == [
        ("norm1", 6, 3),
        ("norm2", 16, 4),
    ]
    assert all(g == max(d for d in range(1, 5) if c % d == 0) for _, c, g in seen)
    rows = {r.name: r for r in summarize(model, (32, 32, 1)).rows}
    assert rows["norm1"].layer == rows["norm2"].layer == "GroupNorm"


ACTIVATION_LAYERS = {
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "relu": "ReLU",
    "relu6": "ReLU6",
    "leaky_relu": "LeakyReLU",
    "prelu": "PReLU",
    "elu": "ELU",
    "selu": "SELU",
    "swish": "Swish",
    "maxout": "Maxout",
}


@pytest.mark.parametrize("activation", sorted(ACTIVATION_LAYERS))
def test_activation_override(activation):
    assert set(ACTIVATION_LAYERS) == set(models.ACTIVATIONS)
    model = models.create("cnn_small", num_classes=10, activation=activation)
    layers = _layers(model, (28, 28, 1))
    assert ACTIVATION_LAYERS[activation] in layers
    assert not (set(ACTIVATION_LAYERS.values()) - {ACTIVATION_LAYERS[activation]}) & layers


def test_maxout_doubles_the_layers_that_feed_it_and_keeps_the_outputs():
    plain = shapes(models.create("cnn_small", num_classes=10), (28, 28, 1))["params"]
    maxout = shapes(models.create("cnn_small", num_classes=10, activation="maxout"), (28, 28, 1))
    p = maxout["params"]
    assert p["conv1"]["kernel"].shape == (3, 3, 1, 64)  # 2 x 32 pieces ...
    assert p["conv2"]["kernel"].shape == (3, 3, 32, 64)  # ... maxed back to 32
    assert p["fc1"]["kernel"].shape == (7 * 7 * 64, 256)
    assert p["fc2"]["kernel"].shape == plain["fc2"]["kernel"].shape == (128, 10)
    # residual blocks: the branch is widened, the block output is not
    res = shapes(models.create("resnet20", num_classes=10, activation="maxout"), (16, 16, 3))
    block = res["params"]["layer2_0"]
    assert block["conv1"]["kernel"].shape == (3, 3, 16, 64)
    assert block["conv2"]["kernel"].shape == (3, 3, 32, 64)
    assert res["params"]["layer2_1"]["conv1"]["kernel"].shape == (3, 3, 32, 64)


@pytest.mark.parametrize(
    "regularizer,layer", [("dropout", "Dropout"), ("dropblock", "DropBlock"), ("disout", "Disout")]
)
def test_regularizer_override(regularizer, layer):
    model = models.create(
        "resnet20", num_classes=10, regularizer=regularizer, rate=0.2, block_size=5
    )
    assert (model.parts.regularizer, model.parts.rate, model.parts.block_size) == (
        regularizer,
        0.2,
        5,
    )
    rows = [r for r in summarize(model, (16, 16, 3)).rows if r.layer == layer]
    assert [r.name for r in rows] == ["reg1", "reg2", "reg3"]  # after each stage


def test_width_scales_every_hidden_layer():
    p = shapes(models.create("cnn_small", num_classes=10, width=0.5), (28, 28, 1))["params"]
    assert p["conv1"]["kernel"].shape == (3, 3, 1, 16)
    assert p["conv4"]["kernel"].shape == (3, 3, 32, 32)
    assert p["fc1"]["kernel"].shape == (7 * 7 * 32, 64)
    assert p["fc2"]["kernel"].shape == (64, 10)


def test_bf16_dtype_keeps_float32_params_and_logits():
    model = models.create("resnet20", num_classes=10, dtype=jnp.bfloat16)
    variables = shapes(model, (16, 16, 3))
    assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    x = jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)
    logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
    assert logits.shape == (2, 10) and logits.dtype == jnp.float32


def test_kernel_init_override_is_used():
    model = models.create("lenet5", num_classes=10, kernel_init="lecun_normal")
    params = jax.jit(lambda x: model.init(KEY, x, train=False))(jnp.zeros((1, 32, 32, 1)))
    params = params["params"]
    # LeCun normal: var = 1 / fan_in (He's would be 2 / fan_in). fc1 has
    # n = 48,000 weights; sd of the sample variance ratio <= sqrt(2 / n) = 0.0065.
    w = np.asarray(params["fc1"]["kernel"], np.float64)
    assert abs(w.var() * 400 - 1) < 6 * math.sqrt(2 / w.size)
    # An initializer itself: N(0, 0.05^2) whatever the fan-in.
    from jcnn import init

    model = models.create("lenet5", num_classes=10, kernel_init=init.normal(0.05))
    params = jax.jit(lambda x: model.init(KEY, x, train=False))(jnp.zeros((1, 32, 32, 1)))
    w = np.asarray(params["params"]["fc1"]["kernel"], np.float64)
    assert abs(w.var() / 0.05**2 - 1) < 6 * math.sqrt(2 / w.size)


def test_overridden_parts_run_and_differentiate():
    """Runs one model with the parts that need the most care: maxout in residual
    blocks, group norm and Disout, in training mode."""
    # ResNet-8 (one block per stage) keeps the compile short; it has the same parts.
    parts = models.Parts(
        activation="maxout", norm="group", regularizer="disout", rate=0.2, block_size=2
    )
    model = models.CifarResNet(n=1, num_classes=10, parts=parts)
    x = normal((2, 16, 16, 3))

    @jax.jit
    def run(x):
        variables = model.init(KEY, x, train=False)

        def loss(params):
            y = model.apply({"params": params}, x, train=True, rngs={"dropout": KEY})
            return jnp.mean(y**2), y

        (_, y), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
        return y, grads, model.apply(variables, x, train=False)

    y, grads, evaluated = run(x)
    assert y.shape == (2, 10) and bool(jnp.isfinite(y).all())
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    assert not np.allclose(evaluated, y)  # Disout was active in training only


class _Regularized(nn.Module):
    parts: Parts

    @nn.compact
    def __call__(self, x):
        return self.parts.regularize(x, train=True, name="reg")


@pytest.mark.parametrize("regularizer,shared", [("dropblock", True), ("dropblock_channel", False)])
def test_dropblock_masks_are_shared_by_the_channels_or_drawn_per_channel(regularizer, shared):
    parts = Parts(regularizer=regularizer, rate=0.3, block_size=3)
    x = jnp.ones((2, 12, 12, 16))
    y = np.asarray(_Regularized(parts).apply({}, x, rngs={"dropout": KEY}))
    kept = y != 0
    assert 0 < kept.mean() < 1  # some units dropped, some kept
    # Shared: a position is dropped in every channel or in none.
    assert np.all(kept == kept[..., :1]) == shared


def test_dropconnect_override_drops_conv_kernels_in_training_only():
    plain = models.create("resnet20", num_classes=10)
    model = models.create("resnet20", num_classes=10, regularizer="dropconnect", rate=0.3)
    x = jax.random.normal(KEY, (2, 16, 16, 3))
    variables = jax.jit(lambda x: plain.init(KEY, x, train=False))(x)
    # The same parameters (names, shapes, initial values): checkpoints move between the two.
    other = jax.jit(lambda x: model.init(KEY, x, train=False))(x)
    chex.assert_trees_all_equal(variables, other)
    layers = {r.name: r.layer for r in summarize(model, (16, 16, 3)).rows}
    convs = {name: layer for name, layer in layers.items() if "conv" in name}
    dropped = [n for n, layer in convs.items() if layer == "DropConnectConv2d"]
    assert len(dropped) == 19  # stem + 2 per block x 9 blocks; shortcuts stay plain
    assert all(layer == "Conv2d" for n, layer in convs.items() if n not in dropped)
    evaluate = lambda m: m.apply(variables, x, train=False)  # noqa: E731
    np.testing.assert_array_equal(evaluate(model), evaluate(plain))

    def train(m, key):
        out, _ = m.apply(variables, x, train=True, rngs={"dropout": key}, mutable="batch_stats")
        return np.asarray(out)

    a, b = train(model, KEY), train(model, jax.random.key(1))
    assert not np.allclose(a, train(plain, KEY)) and not np.allclose(a, b)
    np.testing.assert_array_equal(a, train(model, KEY))
