"""`jcnn.summary.summarize`: shapes, parameters, FLOPs and receptive fields.

Oracles: receptive fields and FLOPs computed by hand in the comments;
published figures (torchvision's model cards: ResNet-18 1.81, ResNet-50 4.09,
VGG-16 15.47 G multiply-adds at 224x224; Araujo, Norris & Sim, "Computing
Receptive Fields of Convolutional Neural Networks", Distill 2019: VGG-16's
receptive field 212); and the parameter count of the initialised variables.
Everything here is traced with `jax.eval_shape`: nothing compiles.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import pytest
from flax import linen as nn

from jcnn import models
from jcnn import nn as jnn
from jcnn.summary import summarize


def by_name(summary):
    return {row.name: row for row in summary.rows}


def test_three_3x3_convs_see_7_pixels():
    model = jnn.Sequential([jnn.Conv2d(4, 3), jnn.Conv2d(4, 3), jnn.Conv2d(4, 3)])
    rows = summarize(model, (9, 9, 2)).rows
    assert [r.receptive_field for r in rows] == [(3, 3), (5, 5), (7, 7)]
    assert [r.jump for r in rows] == [(1, 1)] * 3


def test_conv_pool_conv_sees_8_pixels():
    model = jnn.Sequential([jnn.Conv2d(4, 3), jnn.MaxPool2d(2), jnn.Conv2d(4, 3)])
    rows = summarize(model, (12, 12, 1)).rows
    # 3; 3 + 1 * 1 = 4 (jump 2); 4 + 2 * 2 = 8
    assert [r.receptive_field for r in rows] == [(3, 3), (4, 4), (8, 8)]
    assert [r.jump for r in rows] == [(1, 1), (2, 2), (2, 2)]


def test_stride_dilation_and_rectangular_kernels():
    model = jnn.Sequential(
        [jnn.Conv2d(4, (3, 1), stride=2), jnn.ReLU(), jnn.Conv2d(4, 3, dilation=2)]
    )
    rows = summarize(model, (16, 16, 1)).rows
    # (3, 1) stride 2: (3, 1), jump 2; ReLU keeps it; dilated 3x3 adds 2 * 2 * 2 = 8.
    assert [r.receptive_field for r in rows] == [(3, 1), (3, 1), (11, 9)]
    assert rows[-1].jump == (2, 2)


def test_lenet5_table_by_hand():
    s = summarize(models.create("lenet5", num_classes=10), (32, 32, 1))
    rows = by_name(s)
    # conv1: 5*5*1*6 MACs at 28x28; conv2: 5*5*6*16 at 10x10; fc: in*out.
    expected_flops = {
        "conv1": 2 * 25 * 6 * 28 * 28,
        "conv2": 2 * 25 * 6 * 16 * 10 * 10,
        "fc1": 2 * 400 * 120,
        "fc2": 2 * 120 * 84,
        "fc3": 2 * 84 * 10,
    }
    assert {n: r.flops for n, r in rows.items() if r.flops} == expected_flops
    assert s.total_flops == 833_040
    assert rows["conv1"].params == 156 and rows["fc1"].params == 48_120
    assert s.total_params == sum(r.params for r in s.rows) == 61_706
    assert rows["pool2"].output_shape == (1, 5, 5, 16)
    # 5; pool 2/2: 6 (jump 2); conv 5: 6 + 4 * 2 = 14; pool: 14 + 1 * 2 = 16 (jump 4)
    fields = [rows[n].receptive_field[0] for n in ("conv1", "pool1", "conv2", "pool2")]
    assert fields == [5, 6, 14, 16]
    assert rows["pool2"].jump == (4, 4)
    assert rows["fc1"].receptive_field is None and rows["flatten"].jump is None


def test_grouped_conv_and_dense_flops():
    model = jnn.Sequential([jnn.Conv2d(8, 3, groups=2, stride=2), jnn.Flatten(), jnn.Dense(5)])
    rows = summarize(model, (8, 8, 4)).rows
    assert rows[0].flops == 2 * 3 * 3 * (4 // 2) * 8 * 4 * 4
    assert rows[2].flops == 2 * (4 * 4 * 8) * 5


@pytest.mark.parametrize("name", models.available())
def test_rows_add_up_to_the_initialised_parameters(name):
    model = models.create(name, num_classes=10)
    shape = (32, 32, 1) if name in ("lenet5", "cnn_small") else (32, 32, 3)
    s = summarize(model, shape)
    x = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    n = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(variables["params"]))
    assert s.total_params == sum(r.params for r in s.rows) == n
    assert s.rows[-1].output_shape == (1, 10)


@pytest.mark.parametrize(
    "name,gmacs,rtol", [("resnet50", 4.09, 0.01), ("resnet18", 1.81, 0.01), ("vgg16", 15.47, 0.01)]
)
def test_flops_match_published_multiply_adds(name, gmacs, rtol):
    s = summarize(models.create(name, num_classes=1000), (224, 224, 3))
    assert s.total_flops == pytest.approx(2 * gmacs * 1e9, rel=rtol)


def test_vgg16_receptive_field_is_212():
    rows = by_name(summarize(models.create("vgg16", num_classes=1000), (224, 224, 3)))
    assert rows["pool5"].receptive_field == (212, 212) and rows["pool5"].jump == (32, 32)


def test_resnet_follows_the_main_path():
    rows = by_name(summarize(models.create("resnet18", num_classes=1000), (224, 224, 3)))
    # Stem: 7 (jump 2); max pool 3/2: 7 + 2 * 2 = 11 (jump 4). Then every 3x3
    # conv adds 2 * jump, the first conv of stages 2-4 before doubling it:
    # stage 1: 11 + 4 * 8 = 43; stage 2: 43 + 8 + 3 * 16 = 99;
    # stage 3: 99 + 16 + 3 * 32 = 211; stage 4: 211 + 32 + 3 * 64 = 435.
    assert rows["layer1_1/act2"].receptive_field == (43, 43)
    assert rows["layer2_1/act2"].receptive_field == (99, 99)
    assert rows["layer4_1/act2"].receptive_field == (435, 435)
    assert rows["layer4_1/act2"].jump == (32, 32)
    # The 1x1/2 projection sees the block input's field (43) with a doubled jump;
    # the block's output takes the branch's field, not the shortcut's.
    assert rows["layer2_0/downsample_conv"].receptive_field == (43, 43)
    assert rows["layer2_0/downsample_conv"].jump == (8, 8)
    assert rows["layer2_0/act2"].receptive_field == rows["layer2_0/norm2"].receptive_field


def test_option_a_shortcut_sum_takes_the_branch_field():
    rows = by_name(summarize(models.create("resnet20", num_classes=10), (32, 32, 3)))
    # conv 3; stage 1: 6 convs of 3x3 -> 3 + 12 = 15; stage 2's first conv (stride 2) -> 17.
    assert rows["layer1_2/act2"].receptive_field == (15, 15)
    assert rows["layer2_0/conv1"].receptive_field == (17, 17)
    assert rows["layer2_0/act2"].receptive_field == (21, 21)


def _brute_force_field(model, shape) -> int:
    """Height of the input region the centre output pixel depends on: the rows where
    its gradient is nonzero (random weights; all-positive input and kernels so no
    sum cancels)."""
    x = jnp.ones((1, *shape))
    variables = model.init(jax.random.key(0), x)
    variables = jax.tree.map(jnp.abs, variables)

    def centre(x):
        y = model.apply(variables, x)
        return y[0, y.shape[1] // 2, y.shape[2] // 2, 0]

    rows = jnp.nonzero(jnp.any(jax.grad(centre)(x)[0] != 0, axis=(1, 2)))[0]
    return int(rows[-1] - rows[0] + 1)


def test_flax_convs_extend_the_field_like_jcnn_convs():
    model = nn.Sequential(
        [nn.Conv(4, (3, 3), strides=2), nn.relu, nn.Conv(4, (3, 3), kernel_dilation=2)]
    )
    rows = summarize(model, (16, 16, 1)).rows
    # nn.relu is a function, not a layer: two rows. 3, jump 2; then 3 + 2 * 2 * 2 = 11.
    assert [r.receptive_field for r in rows] == [(3, 3), (11, 11)]
    assert rows[-1].jump == (2, 2)
    assert _brute_force_field(model, (24, 24, 1)) == 11


def test_an_unrecorded_op_or_layer_gives_an_unknown_field_not_a_wrong_one():
    class FunctionalPool(nn.Module):
        @nn.compact
        def __call__(self, x):
            import jcnn.functional as F

            x = jnn.Conv2d(4, 3)(x)
            return jnn.Conv2d(4, 3)(F.avg_pool2d(x, 2))

    model = FunctionalPool()
    rows = summarize(model, (32, 32, 3)).rows
    # The true field is 3 + 1 + 2 * 2 = 8 (brute force); the pool is not a layer, so
    # the second conv's field is unknown rather than restarted at 3.
    assert _brute_force_field(model, (32, 32, 3)) == 8
    assert [r.receptive_field for r in rows] == [(3, 3), None]

    class Blur(nn.Module):  # a layer of its own with a 3x3 window jcnn does not know
        @nn.compact
        def __call__(self, x):
            k = self.param("k", nn.initializers.ones, (3, 3, 1, x.shape[-1]))
            return jax.lax.conv_general_dilated(
                x,
                k,
                (1, 1),
                "SAME",
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=x.shape[-1],
            )

    rows = summarize(nn.Sequential([jnn.Conv2d(4, 3), Blur(), jnn.ReLU()]), (8, 8, 1)).rows
    assert [r.receptive_field for r in rows] == [(3, 3), None, None]


def test_a_module_called_twice_counts_its_parameters_once():
    class Twice(nn.Module):
        @nn.compact
        def __call__(self, x):
            dense = jnn.Dense(4)
            return dense(dense(x))

    s = summarize(Twice(), (1, 1, 4))
    assert [r.params for r in s.rows] == [20, 0]
    assert [r.flops for r in s.rows] == [32, 32]
    assert s.total_params == 20


def test_str_is_a_table_with_totals():
    text = str(summarize(models.create("lenet5", num_classes=10), (32, 32, 1)))
    lines = text.splitlines()
    assert lines[0] == "input 32x32x1 (batch 1)"
    assert lines[1].split() == ["layer", "type", "output", "shape", "params", "FLOPs", "RF", "jump"]
    assert any(line.split()[:3] == ["conv2", "Conv2d", "1x10x10x16"] for line in lines)
    assert "total params: 61,706" in text and "total FLOPs: 833,040" in text


@pytest.mark.parametrize(
    "model,shape,error,match",
    [
        (jnn.ReLU(), (32, 32), ValueError, r"`input_shape` must be \(H, W, C\).*got \(32, 32\)"),
        (jnn.ReLU(), (32, 0, 1), ValueError, r"three ints >= 1, got \(32, 0, 1\)"),
        (lambda x: x, (4, 4, 1), TypeError, r"`model` must be a flax.linen.Module"),
    ],
)
def test_bad_arguments(model, shape, error, match):
    with pytest.raises(error, match=match):
        summarize(model, shape)
