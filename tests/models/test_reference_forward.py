"""Whole-model forward passes against float64 NumPy written from the papers'
definitions: ResNet-20 (He et al. 2016, CIFAR: 3x3 conv 16, three stages of
3 basic blocks with 16/32/64 features, option-A shortcuts that subsample and
zero-pad the channels, global average pool, dense) and the default config's
`cnn_small` (conv32-conv32-pool-conv64-conv64-pool-fc128-fc). Evaluation
mode with random batch-norm statistics, so every parameter and statistic
shapes the logits; the shortcut's subsampling and padding, the block order,
PyTorch-style symmetric padding of the stride-2 convs and the NHWC flatten
order are all in the comparison. The other zoo models are compared with
PyTorch in tests/interop/test_torch.py.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcnn import models

EPS = 1e-5  # batch norm's epsilon (jcnn.functional.batch_norm's default)


def conv(x, kernel, stride=1):
    """3x3 convolution, zero padding 1 on every side (PyTorch's), NHWC / HWIO."""
    kh, kw = kernel.shape[:2]
    x = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    ho = (x.shape[1] - kh) // stride + 1
    wo = (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], ho, wo, kernel.shape[-1]))
    for u in range(kh):
        for v in range(kw):
            window = x[
                :, u : u + stride * (ho - 1) + 1 : stride, v : v + stride * (wo - 1) + 1 : stride
            ]
            y += np.einsum("nhwc,co->nhwo", window, kernel[u, v])
    return y


def bn(x, params, stats):
    return (x - stats["mean"]) / np.sqrt(stats["var"] + EPS) * params["scale"] + params["bias"]


def relu(x):
    return np.maximum(x, 0.0)


def resnet20_reference(v, x):
    p, s = v["params"], v["batch_stats"]
    y = relu(bn(conv(x, p["conv1"]["kernel"]), p["norm1"], s["norm1"]))
    for stage in (1, 2, 3):
        for block in range(3):
            name = f"layer{stage}_{block}"
            bp, bs = p[name], s[name]
            stride = 2 if stage > 1 and block == 0 else 1
            h = relu(bn(conv(y, bp["conv1"]["kernel"], stride), bp["norm1"], bs["norm1"]))
            h = bn(conv(h, bp["conv2"]["kernel"]), bp["norm2"], bs["norm2"])
            shortcut = y[:, ::stride, ::stride]  # option A: subsample, then zero channels
            extra = h.shape[-1] - shortcut.shape[-1]
            shortcut = np.pad(shortcut, ((0, 0), (0, 0), (0, 0), (0, extra)))
            y = relu(h + shortcut)
    pooled = y.mean(axis=(1, 2))
    return pooled @ p["fc"]["kernel"] + p["fc"]["bias"]


def cnn_small_reference(v, x):
    p, s = v["params"], v["batch_stats"]
    y = x
    for layer in range(1, 5):
        y = relu(bn(conv(y, p[f"conv{layer}"]["kernel"]), p[f"norm{layer}"], s[f"norm{layer}"]))
        if layer % 2 == 0:  # 2x2/2 max pool
            n, h, w, c = y.shape
            y = y.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
    y = y.reshape(y.shape[0], -1)  # NHWC, row-major
    y = relu(y @ p["fc1"]["kernel"] + p["fc1"]["bias"])
    return y @ p["fc2"]["kernel"] + p["fc2"]["bias"]


CASES = {
    "resnet20": (resnet20_reference, (2, 12, 12, 3)),  # 12 -> 6 -> 3: odd maps after stride 2
    "cnn_small": (cnn_small_reference, (2, 28, 28, 1)),
}


def _randomized(name, shape):
    """The model's variables with kernels at He scale and random norm parameters
    and statistics (scale in [0.5, 1.5], shift and mean ~ N(0, 0.2), var in [0.5, 2])."""
    model = models.create(name, num_classes=10)
    variables = model.init(jax.random.key(0), jnp.zeros(shape), train=False)
    rng = np.random.default_rng(1)

    def fill(path, leaf):
        key = path[-1].key
        if key == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return rng.standard_normal(leaf.shape) * np.sqrt(2.0 / fan_in)
        if key in ("scale",):
            return rng.uniform(0.5, 1.5, leaf.shape)
        if key == "var":
            return rng.uniform(0.5, 2.0, leaf.shape)
        return rng.normal(0.0, 0.2, leaf.shape)  # bias, mean

    variables = jax.tree_util.tree_map_with_path(fill, jax.device_get(variables))
    return model, variables


@pytest.mark.parametrize("name", list(CASES))
def test_logits_match_a_float64_reference(name):
    reference, shape = CASES[name]
    model, variables = _randomized(name, shape)
    x = np.random.default_rng(2).standard_normal(shape)
    expected = reference(variables, x)
    as_f32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), variables)
    got = np.asarray(
        jax.jit(functools.partial(model.apply, train=False))(as_f32, jnp.asarray(x, jnp.float32))
    )
    # float32 against float64 through ~20 layers: errors of ~1e-6 relative per
    # layer; 1e-4 of the logit scale leaves ample margin and is far below the
    # change any structural mistake makes (e.g. a shortcut left out moves logits by O(1)).
    scale = float(np.abs(expected).max())
    assert scale > 1.0
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * scale)
