"""dense and flatten against float64 loops written from their definitions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jcnn.functional as F
from tests.util import normal, tol


def _dense_loops(x, kernel, bias):
    n_in, n_out = kernel.shape
    out = np.zeros((*x.shape[:-1], n_out))
    for idx in np.ndindex(x.shape[:-1]):
        for o in range(n_out):
            out[(*idx, o)] = sum(x[(*idx, i)] * kernel[i, o] for i in range(n_in))
            out[(*idx, o)] += 0.0 if bias is None else bias[o]
    return out


@pytest.mark.parametrize(
    ("x_shape", "use_bias"), [((4, 5), True), ((2, 3, 5), False), ((5,), True)]
)
def test_dense_matches_loops(x_shape, use_bias):
    x, kernel = normal(x_shape), normal((5, 3), seed=1)
    bias = normal((3,), seed=2) if use_bias else None
    y = F.dense(x, kernel, bias)
    args64 = [None if a is None else np.asarray(a, np.float64) for a in (x, kernel, bias)]
    expected = _dense_loops(*args64)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, **tol(jnp.float32))


def test_dense_gradients_and_transforms():
    x, kernel, bias = normal((4, 5)), normal((5, 3), seed=1), normal((3,), seed=2)
    with jax.enable_x64(True):
        args64 = tuple(jnp.asarray(a, jnp.float64) for a in (x, kernel, bias))
        check_grads(F.dense, args64, order=1)
    plain = F.dense(x, kernel, bias)
    np.testing.assert_allclose(jax.jit(F.dense)(x, kernel, bias), plain, rtol=1e-6, atol=1e-6)
    per_row = jax.vmap(F.dense, in_axes=(0, None, None))(x, kernel, bias)
    np.testing.assert_allclose(per_row, plain, rtol=1e-6, atol=1e-6)


def test_flatten_keeps_batch_axis_in_row_major_order():
    x = normal((2, 3, 4, 5))
    y = F.flatten(x)
    assert y.shape == (2, 60)
    xs, ys = np.asarray(x), np.asarray(y)
    for n, h, w, c in np.ndindex(xs.shape):
        assert ys[n, (h * 4 + w) * 5 + c] == xs[n, h, w, c]
    assert F.flatten(jnp.ones((0, 3, 4))).shape == (0, 12)
    assert F.flatten(jnp.arange(6).reshape(3, 2)).dtype == jnp.int32
    np.testing.assert_array_equal(jax.jit(F.flatten)(x), y)


BAD_ARGUMENTS = [
    (
        lambda: F.dense(jnp.ones((2, 4)), jnp.ones((5, 3))),
        ValueError,
        r"dense: `x` of shape \(2, 4\) has 4 features but `kernel` of shape \(5, 3\) expects 5",
    ),
    (
        lambda: F.dense(jnp.ones((2, 4)), jnp.ones((3, 3, 4))),
        ValueError,
        r"dense: `kernel` must be \(in, out\) \(2-D\), got shape \(3, 3, 4\)",
    ),
    (
        lambda: F.dense(jnp.float32(1.0), jnp.ones((1, 3))),
        ValueError,
        r"dense: `x` must have a feature axis \(ndim >= 1\), got shape \(\)",
    ),
    (
        lambda: F.dense(jnp.ones((2, 4)), jnp.ones((4, 3)), jnp.ones((4,))),
        ValueError,
        r"dense: `bias` must have shape \(3,\), got \(4,\)",
    ),
    (
        lambda: F.dense(jnp.ones((2, 4)), jnp.ones((4, 3)), jnp.ones((1, 3))),
        ValueError,
        r"dense: `bias` must have shape \(3,\), got \(1, 3\)",
    ),
    (
        lambda: F.dense(jnp.ones((2, 4), jnp.int32), jnp.ones((4, 3))),
        TypeError,
        r"dense: `x` must have a floating-point dtype, got int32",
    ),
    (
        lambda: F.flatten(jnp.ones(3)),
        ValueError,
        r"flatten: `x` must have a batch axis and at least one feature axis \(ndim >= 2\), "
        r"got shape \(3,\)",
    ),
    (lambda: F.flatten(jnp.float32(1.0)), ValueError, r"flatten: .* got shape \(\)"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_ARGUMENTS)
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()
