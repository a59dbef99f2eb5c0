"""Activations against float64 NumPy formulas written from their definitions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jcnn.functional as F
from tests.util import normal, tol

# Klambauer et al. (2017), eq. (14), typed from the paper.
PAPER_SELU_ALPHA = 1.6732632423543772848170429916717
PAPER_SELU_LAMBDA = 1.0507009873554804934193349852946


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# name -> (call, float64 value, float64 derivative). Derivatives at the kinks
# are the subgradients the docstrings promise.
REFERENCES = {
    "sigmoid": (
        F.sigmoid,
        _sigmoid,
        lambda x: _sigmoid(x) * (1 - _sigmoid(x)),
    ),
    "tanh": (
        F.tanh,
        lambda x: (np.exp(x) - np.exp(-x)) / (np.exp(x) + np.exp(-x)),
        lambda x: 4.0 / (np.exp(x) + np.exp(-x)) ** 2,
    ),
    "relu": (F.relu, lambda x: np.where(x > 0, x, 0.0), lambda x: (x > 0) * 1.0),
    "relu6": (
        F.relu6,
        lambda x: np.minimum(np.maximum(x, 0.0), 6.0),
        lambda x: ((x > 0) & (x < 6)) * 1.0,
    ),
    "elu": (
        F.elu,
        lambda x: np.where(x > 0, x, np.exp(x) - 1),
        lambda x: np.where(x > 0, 1.0, np.exp(x)),
    ),
    "elu_alpha": (
        lambda x: F.elu(x, alpha=0.5),
        lambda x: np.where(x > 0, x, 0.5 * (np.exp(x) - 1)),
        lambda x: np.where(x > 0, 1.0, 0.5 * np.exp(x)),
    ),
    "selu": (
        F.selu,
        lambda x: PAPER_SELU_LAMBDA * np.where(x > 0, x, PAPER_SELU_ALPHA * (np.exp(x) - 1)),
        lambda x: PAPER_SELU_LAMBDA * np.where(x > 0, 1.0, PAPER_SELU_ALPHA * np.exp(x)),
    ),
    "leaky_relu": (
        F.leaky_relu,
        lambda x: np.where(x > 0, x, 0.01 * x),
        lambda x: np.where(x > 0, 1.0, 0.01),
    ),
    "leaky_relu_0.2": (
        lambda x: F.leaky_relu(x, negative_slope=0.2),
        lambda x: np.where(x > 0, x, 0.2 * x),
        lambda x: np.where(x > 0, 1.0, 0.2),
    ),
    "prelu_scalar": (
        lambda x: F.prelu(x, jnp.float32(0.25)),
        lambda x: np.where(x > 0, x, 0.25 * x),
        lambda x: np.where(x > 0, 1.0, 0.25),
    ),
    "swish": (
        F.swish,
        lambda x: x * _sigmoid(x),
        lambda x: _sigmoid(x) + x * _sigmoid(x) * (1 - _sigmoid(x)),
    ),
    "swish_beta": (
        lambda x: F.swish(x, beta=1.7),
        lambda x: x * _sigmoid(1.7 * x),
        lambda x: _sigmoid(1.7 * x) + 1.7 * x * _sigmoid(1.7 * x) * (1 - _sigmoid(1.7 * x)),
    ),
}

# The kinks (0, 6) and saturated regions, plus random points; |x| <= 30 keeps
# the float64 formulas free of overflow.
POINTS = np.concatenate(
    [
        [-30.0, -20.0, -6.5, -3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0, 5.75, 6.0, 6.5, 20.0, 30.0],
        np.random.default_rng(0).standard_normal(17) * 4,
    ]
).astype(np.float32)


@pytest.mark.parametrize("name", REFERENCES)
def test_value_and_derivative_match_float64_formula(name):
    fn, value, derivative = REFERENCES[name]
    x = jnp.asarray(POINTS)
    x64 = POINTS.astype(np.float64)
    np.testing.assert_allclose(fn(x), value(x64), **tol(jnp.float32))
    grad = jax.vmap(jax.grad(fn))(x)
    np.testing.assert_allclose(grad, derivative(x64), **tol(jnp.float32))


@pytest.mark.parametrize("name", ["sigmoid", "selu", "leaky_relu", "swish_beta", "relu6"])
def test_bfloat16_in_bfloat16_out(name):
    fn, value, _ = REFERENCES[name]
    x = jnp.asarray(POINTS, jnp.bfloat16)
    y = fn(x)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(y, np.float64), value(np.asarray(x, np.float64)), **tol(jnp.bfloat16)
    )


# Points at least 0.3 away from every kink (0 and 6), so finite differences
# never straddle one.
SMOOTH_POINTS = np.array([-2.3, -0.7, 0.4, 1.9, 4.1, 7.3])
CHECK_GRADS = [
    (F.sigmoid, 2),
    (F.tanh, 2),
    (F.relu, 1),
    (F.relu6, 1),
    (lambda x: F.elu(x, alpha=0.5), 1),
    (F.selu, 1),
    (lambda x: F.leaky_relu(x, negative_slope=0.2), 1),
    (lambda x: F.swish(x, beta=1.7), 2),
]


@pytest.mark.parametrize(("fn", "order"), CHECK_GRADS)
def test_check_grads_away_from_kinks(fn, order):
    # float64 so that finite differences are accurate enough for order 2.
    with jax.enable_x64(True):
        check_grads(fn, (jnp.asarray(SMOOTH_POINTS),), order=order, modes=("fwd", "rev"))


def test_prelu_and_swish_check_grads_in_the_parameter():
    x = np.array([[-2.3, 0.4, -0.7], [1.9, -4.1, 7.3]])
    with jax.enable_x64(True):
        check_grads(F.prelu, (jnp.asarray(x), jnp.array([0.1, 0.25, -0.3])), order=1)
        check_grads(F.swish, (jnp.asarray(x), jnp.array([0.5, 1.0, 2.0])), order=1)


def test_saturation():
    x = jnp.array([-20.0, 20.0])
    assert np.all(jax.vmap(jax.grad(F.sigmoid))(x) < 1e-8)
    assert np.all(jax.vmap(jax.grad(F.tanh))(x) < 1e-8)
    assert float(jax.grad(F.sigmoid)(0.0)) == 0.25  # the maximum of sigmoid'
    big = normal((1000,), seed=3) * 20
    y = F.relu6(big)
    assert float(y.min()) == 0.0 and float(y.max()) == 6.0
    np.testing.assert_array_equal(jax.vmap(jax.grad(F.relu6))(big), (big > 0) & (big < 6))
    # ELU and SELU saturate to -alpha and -lambda*alpha.
    np.testing.assert_allclose(F.elu(jnp.float32(-50.0), alpha=2.0), -2.0)
    np.testing.assert_allclose(F.selu(jnp.float32(-50.0)), -LAMBDA_ALPHA)


LAMBDA_ALPHA = PAPER_SELU_LAMBDA * PAPER_SELU_ALPHA
# f(-1e4), f(1e4), f'(-1e4), f'(1e4): the limits of each function, exact in
# float32 (e^-1e4 underflows to 0); e^1e4 would overflow a naive formula.
LARGE_INPUT_LIMITS = {
    "sigmoid": (F.sigmoid, [0.0, 1.0], [0.0, 0.0]),
    "tanh": (F.tanh, [-1.0, 1.0], [0.0, 0.0]),
    "swish": (F.swish, [0.0, 1e4], [0.0, 1.0]),
    "elu": (F.elu, [-1.0, 1e4], [0.0, 1.0]),
    "selu": (F.selu, [-LAMBDA_ALPHA, PAPER_SELU_LAMBDA * 1e4], [0.0, PAPER_SELU_LAMBDA]),
}


@pytest.mark.parametrize("name", LARGE_INPUT_LIMITS)
def test_no_overflow_or_nan_at_large_inputs(name):
    fn, value, derivative = LARGE_INPUT_LIMITS[name]
    x = jnp.array([-1e4, 1e4], jnp.float32)
    np.testing.assert_allclose(fn(x), value, rtol=1e-6, atol=0)
    np.testing.assert_allclose(jax.vmap(jax.grad(fn))(x), derivative, rtol=1e-6, atol=0)


def test_swish_beta_gradient_is_finite_at_large_inputs():
    x = jnp.array([-1e4, 1e4], jnp.float32)
    g = jax.grad(lambda b: F.swish(x, b).sum())(jnp.float32(1.0))
    # d/dbeta = x^2 sigma'(beta x), which is 0 in float32 at |x| = 1e4.
    assert float(g) == 0.0


def test_selu_constants_are_the_published_ones():
    assert F.SELU_ALPHA == PAPER_SELU_ALPHA
    assert F.SELU_SCALE == PAPER_SELU_LAMBDA


def test_selu_fixed_point_by_quadrature():
    # E[selu(x)] and Var[selu(x)] for x ~ N(0, 1) by the trapezoid rule in
    # float64 on a grid of step 2^-13 over [-12, 12], with 0 a node so the
    # kink falls on a grid point: the rule's error is O(h^2) ~ 1e-9 and the
    # tails beyond 12 weigh < 1e-30. The published constants put the fixed
    # point at (0, 1) to ~1e-10; rounding them to 5 significant digits
    # (1.0507, 1.6733) already moves it by ~1e-6, so the bound 1e-8 tests
    # the constants, not just the formula.
    x = np.arange(-12 * 2**13, 12 * 2**13 + 1) / 2**13
    density = np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi)
    with jax.enable_x64(True):
        y = np.asarray(F.selu(jnp.asarray(x, jnp.float64)))
    mean = np.trapezoid(y * density, x)
    var = np.trapezoid((y - mean) ** 2 * density, x)
    assert abs(mean) < 1e-8
    assert abs(var - 1.0) < 1e-8


def test_relu_accepts_integers_exactly():
    x = jnp.array([-3, 0, 2, 9], jnp.int32)
    np.testing.assert_array_equal(F.relu(x), [0, 0, 2, 9])
    np.testing.assert_array_equal(F.relu6(x), [0, 0, 2, 6])
    assert F.relu(x).dtype == jnp.int32


def test_nan_propagates():
    x = jnp.array([jnp.nan], jnp.float32)
    for fn in (F.relu, F.relu6, F.elu, F.selu, F.leaky_relu, F.swish, F.sigmoid):
        assert np.isnan(fn(x)[0]), fn


def test_leaky_relu_with_zero_slope_is_relu_gradient_included():
    x = jnp.asarray(POINTS)
    relu0 = jax.vmap(jax.value_and_grad(lambda v: F.leaky_relu(v, negative_slope=0.0)))(x)
    relu = jax.vmap(jax.value_and_grad(F.relu))(x)
    np.testing.assert_array_equal(relu0[0], relu[0])
    np.testing.assert_array_equal(relu0[1], relu[1])


def test_prelu_per_channel_matches_loop_and_slope_gradient():
    x = normal((2, 3, 3, 4), seed=1)
    slope = jnp.array([0.0, 0.1, -0.5, 2.0])
    xs, a = np.asarray(x, np.float64), np.asarray(slope, np.float64)
    expected = np.empty_like(xs)
    for idx in np.ndindex(xs.shape):
        v = xs[idx]
        expected[idx] = v if v > 0 else a[idx[-1]] * v
    np.testing.assert_allclose(F.prelu(x, slope), expected, **tol(jnp.float32))
    # d sum(y) / d a_c = sum over positions of channel c of min(x, 0).
    g = jax.grad(lambda s: F.prelu(x, s).sum())(slope)
    np.testing.assert_allclose(g, np.minimum(xs, 0).sum(axis=(0, 1, 2)), **tol(jnp.float32))
    # (1,) and () broadcast like the scalar and keep x's shape.
    for s in (jnp.array([0.1]), jnp.array(0.1)):
        y = F.prelu(x, s)
        assert y.shape == x.shape
        np.testing.assert_allclose(y, np.where(xs > 0, xs, 0.1 * xs), **tol(jnp.float32))


def test_swish_per_channel_beta():
    x = normal((5, 3), seed=2)
    beta = jnp.array([0.5, 1.0, 3.0])
    xs, b = np.asarray(x, np.float64), np.asarray(beta, np.float64)
    np.testing.assert_allclose(F.swish(x, beta), xs * _sigmoid(b * xs), **tol(jnp.float32))


def _maxout_loops(x, k):
    out = np.empty((*x.shape[:-1], x.shape[-1] // k))
    for idx in np.ndindex(out.shape):
        *lead, j = idx
        out[idx] = max(x[(*lead, j * k + i)] for i in range(k))
    return out


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_maxout_matches_loops(k):
    x = normal((2, 3, 3, 12), seed=4)
    y = F.maxout(x, k)
    np.testing.assert_array_equal(y, _maxout_loops(np.asarray(x, np.float64), k))


@pytest.mark.parametrize("k", [2, 3])  # k = 2 has its own formulation (strided slices)
def test_maxout_gradient_is_one_hot_on_each_groups_arg_max(k):
    x = normal((2, 3, 3, 12), seed=5)
    w = normal((2, 3, 3, 12 // k), seed=6)
    g = jax.grad(lambda v: jnp.sum(F.maxout(v, k) * w))(x)
    xs, ws = np.asarray(x, np.float64), np.asarray(w, np.float64)
    expected = np.zeros_like(xs)
    for idx in np.ndindex(ws.shape):
        *lead, j = idx
        best = max(range(k), key=lambda i: xs[(*lead, j * k + i)])  # no ties in normal data
        expected[(*lead, j * k + best)] = ws[idx]
    np.testing.assert_array_equal(g, expected)


def test_maxout_groups_contiguous_channels_and_routes_gradient():
    x = jnp.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    # Contiguous pairs {0,1},{2,3},{4,5}; strided groups {0,3},{1,4},{2,5} would give [3,4,5].
    np.testing.assert_array_equal(F.maxout(x, 2), [1.0, 3.0, 5.0])
    x = jnp.array([3.0, -1.0, 2.0, 2.0])
    g = jax.grad(lambda v: (F.maxout(v, 2) * jnp.array([10.0, 1.0])).sum())(x)
    # One-hot on the arg-max; the tie (2, 2) shares its gradient equally.
    np.testing.assert_array_equal(g, [10.0, 0.0, 0.5, 0.5])


@settings(deadline=None, max_examples=20)
@given(
    lead=st.lists(st.integers(0, 4), max_size=3),
    k=st.integers(1, 5),
    groups=st.integers(1, 4),
)
def test_maxout_shape(lead, k, groups):
    x = jax.ShapeDtypeStruct((*lead, k * groups), jnp.float32)
    assert jax.eval_shape(lambda v: F.maxout(v, k), x).shape == (*lead, groups)


TRANSFORM_CASES = [
    F.sigmoid,
    F.tanh,
    F.relu,
    F.relu6,
    F.elu,
    F.selu,
    F.leaky_relu,
    F.swish,
    lambda x: F.prelu(x, jnp.array([0.1, 0.2, 0.3, 0.4])),
    lambda x: F.swish(x, jnp.array([0.5, 1.0, 1.5, 2.0])),
    lambda x: F.maxout(x, 2),
]


@pytest.mark.parametrize("fn", TRANSFORM_CASES)
def test_jit_and_vmap_equal_plain_call(fn):
    x = normal((3, 5, 4), seed=5) * 4
    plain = fn(x)
    np.testing.assert_allclose(jax.jit(fn)(x), plain, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(jax.vmap(fn)(x), plain, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: F.sigmoid(x),
        lambda x: F.tanh(x),
        lambda x: F.elu(x),
        lambda x: F.selu(x),
        lambda x: F.leaky_relu(x),
        lambda x: F.prelu(x, jnp.float32(0.1)),
        lambda x: F.swish(x),
    ],
)
def test_rejects_integer_input(call):
    with pytest.raises(TypeError, match=r": `x` must have a floating-point dtype, got int32"):
        call(jnp.arange(4))


BAD_ARGUMENTS = [
    (lambda: F.elu(jnp.ones(3), alpha=0.0), ValueError, r"elu: `alpha` must be > 0, got 0\.0"),
    (lambda: F.elu(jnp.ones(3), alpha=-1.0), ValueError, r"elu: `alpha` must be > 0, got -1\.0"),
    (
        lambda: F.elu(jnp.ones(3), alpha=jnp.ones(())),
        TypeError,
        r"elu: `alpha` must be a Python float, got .*ArrayImpl",
    ),
    (lambda: F.elu(jnp.ones(3), alpha=float("inf")), ValueError, r"`alpha` must be finite"),
    (
        lambda: F.leaky_relu(jnp.ones(3), negative_slope="0.1"),
        TypeError,
        r"leaky_relu: `negative_slope` must be a Python float, got '0\.1' \(str\)",
    ),
    (
        lambda: F.maxout(jnp.ones((2, 6)), 4),
        ValueError,
        r"maxout: `num_pieces`=4 must divide the 6 channels of `x` \(shape \(2, 6\)\)",
    ),
    (
        lambda: F.maxout(jnp.ones((2, 6)), 0),
        ValueError,
        r"maxout: `num_pieces` must be an int >= 1, got 0",
    ),
    (
        lambda: F.maxout(jnp.ones((2, 6)), 2.0),
        TypeError,
        r"maxout: `num_pieces` must be an int, got 2\.0",
    ),
    (
        lambda: F.maxout(jnp.float32(1.0), 1),
        ValueError,
        r"maxout: `x` must have a channel axis \(ndim >= 1\), got shape \(\)",
    ),
    (
        lambda: F.prelu(jnp.ones((2, 4)), jnp.ones(3)),
        ValueError,
        r"prelu: `slope` must have shape \(\), \(1,\) or \(4,\) .* got shape \(3,\)",
    ),
    (
        lambda: F.prelu(jnp.ones((2, 4)), jnp.ones((2, 4))),
        ValueError,
        r"prelu: `slope` must have shape \(\), \(1,\) or \(4,\) .* got shape \(2, 4\)",
    ),
    (
        lambda: F.prelu(jnp.float32(1.0), jnp.ones(3)),
        ValueError,
        r"prelu: `slope` must have shape \(\) or \(1,\) .* got shape \(3,\)",
    ),
    (
        lambda: F.prelu(jnp.ones(3), jnp.arange(3)),
        TypeError,
        r"prelu: `slope` must have a floating-point dtype, got int32",
    ),
    (
        lambda: F.swish(jnp.ones((2, 4)), jnp.ones(2)),
        ValueError,
        r"swish: `beta` must have shape \(\), \(1,\) or \(4,\) .* got shape \(2,\)",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_ARGUMENTS)
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
