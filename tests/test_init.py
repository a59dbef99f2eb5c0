"""Initialisers: sample moments against the variance formulas, and exact properties.

Statistical bounds. Every sample has n = 1e6 values. The sample variance of
n iid draws has relative standard deviation sqrt((kurtosis - 1) / n): at most
sqrt(2 / 1e6) = 1.4e-3 for the normal (kurtosis 3; the truncated normal and the
uniform have less), so a 1% relative bound on the variance is > 7 sigma. The
sample mean has standard deviation std / sqrt(n) = 1e-3 std, so |mean| <
6e-3 std is 6 sigma. Neither can flake.
"""

from __future__ import annotations

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcnn import init

N = 10**6
HWIO = (5, 5, 160, 250)  # fan_in = 5*5*160 = 4000, fan_out = 5*5*250 = 6250
DENSE = (800, 1250)  # fan_in = 800, fan_out = 1250


def _truncated_unit_std(b: float = 2.0) -> float:
    """Std of N(0, 1) truncated to [-b, b], by float64 quadrature."""
    z = np.linspace(-b, b, 400_001)
    density = np.exp(-0.5 * z**2)
    return math.sqrt(np.trapezoid(z**2 * density, z) / np.trapezoid(density, z))


# (name, initialiser, shape, variance from the scheme's formula, distribution)
CASES = [
    ("xavier_normal", init.xavier_normal(), HWIO, 2 / (4000 + 6250), "truncated"),
    ("xavier_uniform", init.xavier_uniform(), HWIO, 2 / (4000 + 6250), "uniform"),
    ("xavier_normal_dense", init.xavier_normal(), DENSE, 2 / (800 + 1250), "truncated"),
    ("xavier_uniform_gain", init.xavier_uniform(gain=2.0), DENSE, 4 * 2 / 2050, "uniform"),
    ("he_normal", init.he_normal(), HWIO, 2 / 4000, "truncated"),
    ("he_uniform", init.he_uniform(), HWIO, 2 / 4000, "uniform"),
    ("he_normal_fan_out", init.he_normal(mode="fan_out"), HWIO, 2 / 6250, "truncated"),
    ("he_uniform_dense", init.he_uniform(), DENSE, 2 / 800, "uniform"),
    ("lecun_normal", init.lecun_normal(), HWIO, 1 / 4000, "truncated"),
    ("lecun_uniform", init.lecun_uniform(), HWIO, 1 / 4000, "uniform"),
    ("lecun_normal_gain", init.lecun_normal(gain=0.5), DENSE, 0.25 / 800, "truncated"),
    ("normal", init.normal(0.05), DENSE, 0.05**2, "normal"),
    ("uniform", init.uniform(0.1), DENSE, 0.1**2 / 3, "uniform"),
    ("truncated_normal", init.truncated_normal(0.05), DENSE, 0.05**2, "truncated"),
    (
        "variance_scaling_normal",
        init.variance_scaling(3.0, "fan_avg", "normal"),
        HWIO,
        3 / ((4000 + 6250) / 2),
        "normal",
    ),
]


@pytest.mark.parametrize(
    ("name", "init_fn", "shape", "var", "dist"), CASES, ids=[c[0] for c in CASES]
)
def test_sample_moments_match_formula(name, init_fn, shape, var, dist):
    w = init_fn(jax.random.key(0), shape)
    chex.assert_shape(w, shape)
    assert w.dtype == jnp.float32 and w.size == N
    w = np.asarray(w, np.float64)
    std = math.sqrt(var)
    assert abs(w.mean()) < 6e-3 * std
    np.testing.assert_allclose(w.var(), var, rtol=1e-2)
    peak = np.abs(w).max()
    if dist == "uniform":
        bound = math.sqrt(3 * var)
    elif dist == "truncated":
        # Truncated at 2 std of the underlying normal, whose std is
        # std / std(truncated unit normal).
        bound = 2 * std / _truncated_unit_std()
    else:
        # A plain normal: P(max of 1e6 draws < 4 std) = (1 - 6.3e-5)^1e6 ~ e^-63.
        assert peak > 4 * std
        return
    assert peak <= bound * (1 + 1e-6)
    # The bound is reached: >= ~1000 of the 1e6 draws lie within 0.5% of it.
    assert peak > 0.995 * bound


def test_aliases_are_the_same_factories():
    assert init.glorot_normal is init.xavier_normal
    assert init.glorot_uniform is init.xavier_uniform
    assert init.kaiming_normal is init.he_normal
    assert init.kaiming_uniform is init.he_uniform


@pytest.mark.parametrize(
    ("shape", "fans"),
    [((3, 3, 16, 32), (144, 288)), ((10, 20), (10, 20)), ((3, 4, 8), (12, 24))],
)
def test_compute_fans(shape, fans):
    assert init.compute_fans(shape) == fans


# The samplers use the moment tests' shape, so their compiles are reused; a
# QR of that size would cost seconds, so orthogonal gets a small one.
@pytest.mark.parametrize(
    ("init_fn", "shape"),
    [
        (init.he_normal(), DENSE),
        (init.xavier_uniform(), DENSE),
        (init.normal(), DENSE),
        (init.orthogonal(), (3, 3, 4, 8)),
    ],
)
def test_same_key_same_array(init_fn, shape):
    a = init_fn(jax.random.key(7), shape)
    np.testing.assert_array_equal(a, init_fn(jax.random.key(7), shape))
    assert not np.array_equal(a, init_fn(jax.random.key(8), shape))


def test_orthogonal_under_jit_equals_eager():
    shape = (3, 3, 4, 8)
    eager = init.orthogonal()(jax.random.key(7), shape)
    jitted = jax.jit(init.orthogonal(), static_argnums=1)(jax.random.key(7), shape)
    # XLA may fuse and reorder the QR's float32 arithmetic: a few ulp.
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-6)


# Tall, square and wide; shapes shared with the other tests to reuse compiles.
@pytest.mark.parametrize(("shape", "scale"), [((3, 3, 4, 8), 1.0), ((6, 6), 1.0), ((4, 10), 2.0)])
def test_orthogonal(shape, scale):
    w = init.orthogonal(scale)(jax.random.key(0), shape)
    chex.assert_shape(w, shape)
    m = np.asarray(w, np.float64).reshape(-1, shape[-1])
    # Tall (or square): orthonormal columns; wide: orthonormal rows.
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, scale**2 * np.eye(len(gram)), atol=1e-5)


def test_dtype_is_respected():
    key = jax.random.key(0)
    for init_fn in (init.he_normal(), init.lecun_uniform(), init.orthogonal()):
        assert init_fn(key, (6, 6), jnp.bfloat16).dtype == jnp.bfloat16
    assert init.zeros(key, (2, 3)).dtype == jnp.float32
    np.testing.assert_array_equal(init.zeros(key, (2, 3), jnp.bfloat16), np.zeros((2, 3)))
    np.testing.assert_array_equal(init.ones(key, (4,)), np.ones(4))


def test_zero_size_shape():
    assert init.he_normal()(jax.random.key(0), (0, 5)).shape == (0, 5)
    assert init.orthogonal()(jax.random.key(0), (3, 0)).shape == (3, 0)


def test_works_as_flax_param_initialiser_under_jit():
    # Flax calls `init_fn(key, shape, dtype)`; `Module.init` is usually jitted.
    class Layer(nn.Module):
        @nn.compact
        def __call__(self, x):
            kernel = self.param("kernel", init.he_normal(), (x.shape[-1], 3), jnp.float32)
            bias = self.param("bias", init.zeros, (3,), jnp.float32)
            return x @ kernel + bias

    x = jnp.ones((1, 4))
    params = Layer().init(jax.random.key(0), x)["params"]
    chex.assert_shape(params["kernel"], (4, 3))
    np.testing.assert_array_equal(params["bias"], np.zeros(3))
    jitted = jax.jit(Layer().init)(jax.random.key(0), x)["params"]
    # XLA may fuse the rescaling into the sampler: ~1 ulp.
    chex.assert_trees_all_close(jitted, params, rtol=1e-6, atol=1e-9)


KEY = jax.random.key(0)
BAD_ARGUMENTS = [
    (
        lambda: init.he_normal()(KEY, (10,)),
        ValueError,
        r"he_normal: `shape` must have at least 2 axes \(\.\.\., in, out\) to define fan-in "
        r"and fan-out, got shape \(10,\)",
    ),
    (
        lambda: init.orthogonal()(KEY, ()),
        ValueError,
        r"orthogonal: `shape` must have at least 2 axes .* got shape \(\)",
    ),
    (
        lambda: init.compute_fans((7,)),
        ValueError,
        r"compute_fans: `shape` must have at least 2 axes .* got shape \(7,\)",
    ),
    (
        lambda: init.xavier_uniform()(KEY, (3, 4), jnp.int32),
        TypeError,
        r"xavier_uniform: `dtype` must have a floating-point dtype, got int32",
    ),
    (
        lambda: init.zeros(KEY, (3,), jnp.int32),
        TypeError,
        r"zeros: `dtype` must have a floating-point dtype, got int32",
    ),
    (
        lambda: init.ones(),
        TypeError,
        r"ones: missing `shape`\. `init\.ones` is an initialiser .* pass `init\.ones`, not "
        r"`init\.ones\(\)`",
    ),
    (
        lambda: init.normal()(KEY, (3.0, 4)),
        TypeError,
        r"normal: `shape` must be a tuple of ints >= 0, got \(3\.0, 4\)",
    ),
    (
        lambda: init.normal(-0.1),
        ValueError,
        r"normal: `stddev` must be a finite number >= 0, got -0\.1",
    ),
    (
        lambda: init.truncated_normal(-1.0),
        ValueError,
        r"truncated_normal: `stddev` must be a finite number >= 0, got -1\.0",
    ),
    (
        lambda: init.uniform(-1),
        ValueError,
        r"uniform: `scale` must be a finite number >= 0, got -1",
    ),
    (
        lambda: init.orthogonal(scale=-2.0),
        ValueError,
        r"orthogonal: `scale` must be a finite number >= 0, got -2\.0",
    ),
    (
        lambda: init.he_uniform(gain=-1.0),
        ValueError,
        r"he_uniform: `gain` must be a finite number >= 0, got -1\.0",
    ),
    (
        lambda: init.normal("0.1"),
        TypeError,
        r"normal: `stddev` must be a Python float, got '0\.1' \(str\)",
    ),
    (
        lambda: init.lecun_normal(mode="fan"),
        ValueError,
        r"lecun_normal: `mode` must be one of \('fan_in', 'fan_out', 'fan_avg'\), got 'fan'",
    ),
    (
        lambda: init.variance_scaling(1.0, "fan_in", "gaussian"),
        ValueError,
        r"variance_scaling: `distribution` must be one of \('truncated_normal', 'normal', "
        r"'uniform'\), got 'gaussian'",
    ),
    (
        lambda: init.variance_scaling(-1.0, "fan_in", "normal"),
        ValueError,
        r"variance_scaling: `scale` must be a finite number >= 0, got -1\.0",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_ARGUMENTS)
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
