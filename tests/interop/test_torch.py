"""PyTorch weights in: torch models written in `torch_models` (torchvision's
architecture and names, random weights) against their jcnn conversion."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from jcnn import models
from jcnn.interop import SUPPORTED, from_torch_state_dict, torch_state_dict_shapes

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[torch]')")
from tests.interop import torch_models  # noqa: E402  (needs torch)

NUM_CLASSES = 10
# Inputs (NCHW). ResNet-18: non-square, through the stride-2 stem conv, max
# pool and the three strided stages (40x32 -> 2x1). VGG-11: five 2x2 pools
# leave 2x3 before the adaptive pool to 7x7, so the flatten order matters
# (at 32x32 a 1x1 map would be repeated 49 times and hide it).
# ResNet-50: bottleneck blocks, the stride on the 3x3 conv (v1.5), projection
# shortcuts; 32x32 leaves a 1x1 map for the last stage.
INPUTS = {
    "lenet5": (2, 1, 28, 28),
    "resnet18": (2, 3, 40, 32),
    "resnet50": (2, 3, 32, 32),
    "vgg11_bn": (2, 3, 64, 96),
}


def _rng(seed):
    return np.random.default_rng(seed)


@functools.cache
def _torch_model(name):
    shape = INPUTS[name]
    model = torch_models.create(name, NUM_CLASSES)
    calibration = torch.from_numpy(_rng(1).standard_normal(shape).astype(np.float32))
    return torch_models.randomize(model, calibration)


@functools.cache
def _apply(name):
    model = models.create(name, num_classes=NUM_CLASSES)
    return jax.jit(lambda v, x: model.apply(v, x, train=False))


def _logits(name, variables, x_nchw):
    return np.asarray(_apply(name)(variables, x_nchw.transpose(0, 2, 3, 1)))


@functools.cache
def _case(name):
    """``(x, torch logits, converted variables, atol)`` of model `name`."""
    tmodel = _torch_model(name)
    x = _rng(2).standard_normal(INPUTS[name]).astype(np.float32)
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x)).numpy()
    variables = from_torch_state_dict(name, tmodel.state_dict(), num_classes=NUM_CLASSES)
    # float32 on both sides, different summation orders (torch's im2col/GEMM vs
    # XLA's convolution): measured max errors 2e-8 (LeNet), 5e-5 on logits of
    # scale 30 (ResNet-18), 1e-6 (VGG-11-BN), i.e. <= 3e-6 of the logit scale.
    atol = 2e-5 * float(np.abs(expected).max()) + 1e-6
    return x, expected, variables, atol


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "resnet50", "vgg11_bn"])
def test_converted_model_gives_torch_logits(name):
    x, expected, variables, atol = _case(name)
    got = _logits(name, variables, x)
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def test_vgg_flatten_order_is_exercised():
    """Without the NCHW -> NHWC reordering of classifier.0 the logits are far off,
    so the matching test above checks that reordering."""
    x, expected, variables, atol = _case("vgg11_bn")
    weight = _torch_model("vgg11_bn").state_dict()["classifier.0.weight"].numpy()
    params = dict(variables["params"], fc1=dict(variables["params"]["fc1"], kernel=weight.T))
    naive = dict(variables, params=params)
    assert float(np.abs(_logits("vgg11_bn", naive, x) - expected).max()) > 100 * atol


@pytest.mark.parametrize("name", ["lenet5", "resnet34", "resnet50", "vgg11", "vgg16", "vgg16_bn"])
def test_expected_keys_and_shapes_are_torchvisions(name):
    # The meta device gives names and shapes without allocating the weights.
    with torch.device("meta"):
        tmodel = torch_models.create(name, 7)
    expected = {
        k: tuple(v.shape)
        for k, v in tmodel.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    assert torch_state_dict_shapes(name, num_classes=7) == expected


def test_supported_models_are_in_the_zoo():
    assert set(SUPPORTED) <= set(models.available())


def _lenet_numpy_state_dict():
    return {k: v.numpy().copy() for k, v in _torch_model("lenet5").state_dict().items()}


def test_accepts_numpy_arrays_and_bfloat16_tensors():
    sd = _torch_model("lenet5").state_dict()
    from_numpy = from_torch_state_dict("lenet5", _lenet_numpy_state_dict(), num_classes=10)
    from_bf16 = from_torch_state_dict(
        "lenet5", {k: v.to(torch.bfloat16) for k, v in sd.items()}, num_classes=10
    )
    kernel = sd["conv2.weight"].numpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
    np.testing.assert_array_equal(from_numpy["params"]["conv2"]["kernel"], kernel)
    bf16 = sd["conv2.weight"].to(torch.bfloat16).float().numpy().transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(from_bf16["params"]["conv2"]["kernel"], bf16)
    assert "batch_stats" not in from_numpy


def test_missing_key_is_named():
    sd = dict(_torch_model("resnet18").state_dict())
    del sd["layer2.0.downsample.1.running_var"]
    with pytest.raises(ValueError, match=r"1 missing key: layer2\.0\.downsample\.1\.running_var\."):
        from_torch_state_dict("resnet18", sd, num_classes=NUM_CLASSES)


def test_wrong_shape_is_named():
    sd = _lenet_numpy_state_dict()
    sd["fc3.weight"] = np.zeros((5, 84), np.float32)
    with pytest.raises(
        ValueError, match=r"1 wrong shape: fc3\.weight \(5, 84\) \(expected \(10, 84\)\)\."
    ):
        from_torch_state_dict("lenet5", sd, num_classes=10)


def test_all_problems_in_one_error():
    sd = _lenet_numpy_state_dict()
    del sd["conv1.bias"], sd["fc1.bias"]
    sd["fc2.weight"] = np.zeros((84, 121), np.float32)
    sd["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError) as info:
        from_torch_state_dict("lenet5", sd, num_classes=10)
    message = str(info.value)
    assert message.startswith("from_torch_state_dict: the state_dict does not fit lenet5")
    assert "2 missing keys: conv1.bias, fc1.bias" in message
    assert "1 wrong shape: fc2.weight (84, 121) (expected (84, 120))" in message
    assert "1 unexpected key: extra.weight" in message


def test_rejects_unsupported_model_and_non_mapping():
    with pytest.raises(ValueError, match=r"no PyTorch layout for model 'resnet20'; supported: "):
        from_torch_state_dict("resnet20", {}, num_classes=10)
    with pytest.raises(TypeError, match=r"`state_dict` must be a mapping .* got list"):
        from_torch_state_dict("lenet5", [], num_classes=10)
    with pytest.raises(TypeError, match=r"`num_classes` must be an int"):
        from_torch_state_dict("lenet5", {}, num_classes=2.5)
