"""Batch, group, layer and instance norm against float64 NumPy references."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jcnn.functional as F
from tests.util import normal, tol

EPS = 1e-5


# ----------------------------------------------------------------------------
# float64 references, written from the definitions
# ----------------------------------------------------------------------------


def ref_batch_norm_train(x, scale, bias, eps=EPS, mask=None):
    """Returns (y, batch_mean, biased batch_var); statistics over valid rows only."""
    x = np.asarray(x, np.float64)
    rows = x if mask is None else x[np.asarray(mask, bool)]
    axes = tuple(range(x.ndim - 1))
    count = rows.size // x.shape[-1]
    mean = rows.sum(axes) / count
    var = ((rows - mean) ** 2).sum(axes) / count
    y = np.asarray(scale, np.float64) * (x - mean) / np.sqrt(var + eps) + np.asarray(bias)
    return y, mean, var


def ref_batch_norm_eval(x, scale, bias, mean, var, eps=EPS):
    x, mean, var = (np.asarray(a, np.float64) for a in (x, mean, var))
    return np.asarray(scale, np.float64) * (x - mean) / np.sqrt(var + eps) + np.asarray(bias)


def ref_group_norm(x, scale, bias, num_groups, eps=EPS):
    """Loops over samples and groups; each slice is normalised by its own moments."""
    x = np.asarray(x, np.float64)
    n, _, _, c = x.shape
    size = c // num_groups
    y = np.empty_like(x)
    for i in range(n):
        for g in range(num_groups):
            block = x[i, :, :, g * size : (g + 1) * size]
            y[i, :, :, g * size : (g + 1) * size] = (block - block.mean()) / np.sqrt(
                block.var() + eps
            )
    return y * np.asarray(scale, np.float64) + np.asarray(bias, np.float64)


def ref_layer_norm(x, scale, bias, eps=EPS):
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(scale) + np.asarray(bias)


def ref_instance_norm(x, scale, bias, eps=EPS):
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(scale) + np.asarray(bias)


def affine_params(c, seed=10):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(0.5, 1.5, c), jnp.float32), jnp.asarray(
        rng.standard_normal(c), jnp.float32
    )


def running_stats(c, seed=11):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal(c), jnp.float32), jnp.asarray(
        rng.uniform(0.5, 2.0, c), jnp.float32
    )


def assert_close(actual, expected, dtype):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, **tol(dtype))


# ----------------------------------------------------------------------------
# batch_norm
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,dtype",
    [((4, 5, 5, 3), jnp.float32), ((4, 5, 5, 3), jnp.bfloat16), ((16, 6), jnp.float32)],
)
def test_batch_norm_train_matches_reference(shape, dtype):
    c = shape[-1]
    x = normal(shape, seed=0, dtype=dtype) * 2 + 0.5
    scale, bias = affine_params(c)
    mean, var = running_stats(c)
    fn = jax.jit(partial(F.batch_norm, train=True, momentum=0.8))
    y, (new_mean, new_var) = fn(x, scale, bias, mean, var)
    y_ref, batch_mean, batch_var = ref_batch_norm_train(x, scale, bias)
    assert y.dtype == dtype and y.shape == shape
    assert new_mean.dtype == jnp.float32 and new_var.dtype == jnp.float32
    assert_close(y, y_ref, dtype)
    # The statistics are float32 even for bf16 input, so they meet float32 tolerances.
    assert_close(new_mean, 0.8 * np.asarray(mean, np.float64) + 0.2 * batch_mean, jnp.float32)
    assert_close(new_var, 0.8 * np.asarray(var, np.float64) + 0.2 * batch_var, jnp.float32)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_batch_norm_eval_uses_running_statistics(dtype):
    x = normal((3, 4, 4, 5), seed=1, dtype=dtype)
    scale, bias = affine_params(5)
    mean, var = running_stats(5)
    y, (same_mean, same_var) = jax.jit(partial(F.batch_norm, train=False))(
        x, scale, bias, mean, var
    )
    assert y.dtype == dtype
    assert_close(y, ref_batch_norm_eval(x, scale, bias, mean, var), dtype)
    np.testing.assert_array_equal(same_mean, mean)
    np.testing.assert_array_equal(same_var, var)


def test_running_statistics_after_three_updates():
    momentum, c = 0.7, 3
    mean, var = running_stats(c)
    expected_mean, expected_var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    step = jax.jit(partial(F.batch_norm, train=True, momentum=momentum))
    for seed in range(3):
        x = normal((5, 3, 3, c), seed=seed) * (seed + 1) + seed
        _, (mean, var) = step(x, None, None, mean, var)
        x64 = np.asarray(x, np.float64)
        batch_mean = x64.mean((0, 1, 2))
        batch_var = ((x64 - batch_mean) ** 2).mean((0, 1, 2))  # biased: divide by count
        expected_mean = momentum * expected_mean + (1 - momentum) * batch_mean
        expected_var = momentum * expected_var + (1 - momentum) * batch_var
    assert_close(mean, expected_mean, jnp.float32)
    assert_close(var, expected_var, jnp.float32)


def test_batch_norm_keeps_running_statistics_dtype():
    x = normal((4, 2, 2, 3), dtype=jnp.bfloat16)
    mean, var = jnp.zeros(3, jnp.bfloat16), jnp.ones(3, jnp.bfloat16)
    y, (new_mean, new_var) = jax.jit(partial(F.batch_norm, train=True))(x, None, None, mean, var)
    assert (y.dtype, new_mean.dtype, new_var.dtype) == (jnp.bfloat16,) * 3


def test_batch_norm_accurate_when_mean_dwarfs_std():
    # mean 1e3, std 1: float32 E[x^2] - E[x]^2 loses ~all digits of the variance
    # (ulp(1e6) = 0.06 per term), while shifted sums keep it. 1e-3 allows a few
    # ulp(1e3) = 6e-5 of rounding in x - mean itself.
    x = normal((16, 4, 4, 3), seed=2) + 1e3
    scale, bias = jnp.ones(3), jnp.zeros(3)
    zeros, ones = jnp.zeros(3), jnp.ones(3)  # running mean far from the data
    y, (new_mean, new_var) = jax.jit(partial(F.batch_norm, train=True, momentum=0.0))(
        x, scale, bias, zeros, ones
    )
    y_ref, batch_mean, batch_var = ref_batch_norm_train(x, scale, bias)
    x32 = np.asarray(x, np.float32)
    naive_var = (x32 * x32).mean((0, 1, 2)) - x32.mean((0, 1, 2)) ** 2
    assert np.max(np.abs(naive_var - batch_var)) > 1e-2  # the case is hard in float32
    np.testing.assert_allclose(new_var, batch_var, rtol=1e-4)
    np.testing.assert_allclose(new_mean, batch_mean, rtol=1e-6)
    np.testing.assert_allclose(y, y_ref, atol=1e-3)
    y_eval, _ = jax.jit(partial(F.batch_norm, train=False))(x, scale, bias, new_mean, new_var)
    np.testing.assert_allclose(y_eval, y_ref, atol=1e-3)


def test_batch_norm_mask_counts_only_valid_examples():
    x = np.array(normal((6, 3, 3, 2), seed=3))
    mask = np.array([False, True, True, False, True, True])  # first row invalid: not a pivot
    x[~mask] = 1e4  # would dominate the statistics if counted
    scale, bias = affine_params(2)
    mean, var = running_stats(2)
    y, (new_mean, new_var) = jax.jit(partial(F.batch_norm, train=True))(
        jnp.asarray(x), scale, bias, mean, var, mask=jnp.asarray(mask)
    )
    y_ref, batch_mean, batch_var = ref_batch_norm_train(x, scale, bias, mask=mask)
    assert_close(y[mask], y_ref[mask], jnp.float32)
    assert_close(new_mean, 0.9 * np.asarray(mean) + 0.1 * batch_mean, jnp.float32)
    assert_close(new_var, 0.9 * np.asarray(var) + 0.1 * batch_var, jnp.float32)


def test_batch_norm_all_masked_keeps_running_statistics():
    x = normal((3, 2, 2, 2))
    mean, var = running_stats(2)
    _, (new_mean, new_var) = jax.jit(partial(F.batch_norm, train=True))(
        x, None, None, mean, var, mask=jnp.zeros(3, jnp.int32)
    )
    np.testing.assert_array_equal(new_mean, mean)
    np.testing.assert_array_equal(new_var, var)


def test_batch_norm_axis_name_under_vmap_equals_global_batch():
    # vmap with an axis name is a single-device stand-in for devices: statistics
    # must be those of the whole batch, including uneven masks (3, 1, 0 valid).
    x = normal((9, 2, 2, 3), seed=4) + jnp.arange(9.0)[:, None, None, None]
    mask = jnp.array([1, 1, 1, 0, 1, 0, 0, 0, 0])
    scale, bias = affine_params(3)
    mean, var = running_stats(3)
    per_device = jax.jit(
        jax.vmap(
            lambda *a: F.batch_norm(*a[:5], train=True, axis_name="d", mask=a[5]),
            in_axes=(0, None, None, None, None, 0),
            out_axes=(0, None),
            axis_name="d",
        )
    )
    y, (new_mean, new_var) = per_device(
        x.reshape(3, 3, 2, 2, 3), scale, bias, mean, var, mask.reshape(3, 3)
    )
    y_ref, batch_mean, batch_var = ref_batch_norm_train(x, scale, bias, mask=np.asarray(mask, bool))
    assert_close(y.reshape(x.shape), y_ref, jnp.float32)
    assert_close(new_mean, 0.9 * np.asarray(mean) + 0.1 * batch_mean, jnp.float32)
    assert_close(new_var, 0.9 * np.asarray(var) + 0.1 * batch_var, jnp.float32)


@pytest.mark.parametrize("mask", [None, (1, 0, 1, 1)])
def test_batch_norm_gradients(mask):
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(5).standard_normal((4, 2, 2, 2)))
        scale, bias = jnp.array([1.5, 0.5]), jnp.array([0.1, -0.2])
        mean, var = jnp.zeros(2), jnp.ones(2)
        mask = None if mask is None else jnp.asarray(mask)

        def f(x, scale, bias):
            y, (m, v) = F.batch_norm(x, scale, bias, mean, var, train=True, mask=mask)
            return jnp.sin(y), m, v  # sin: a non-trivial cotangent

        check_grads(jax.jit(f), (x, scale, bias), order=1, modes=["rev"])


# ----------------------------------------------------------------------------
# group_norm, layer_norm, instance_norm
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "num_groups,dtype", [(2, jnp.float32), (2, jnp.bfloat16), (1, jnp.float32), (6, jnp.float32)]
)
def test_group_norm_matches_reference(num_groups, dtype):
    x = normal((3, 4, 5, 6), seed=6, dtype=dtype) * 3 - 1
    scale, bias = affine_params(6)
    y = jax.jit(partial(F.group_norm, num_groups=num_groups))(x, scale, bias)
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, ref_group_norm(x, scale, bias, num_groups), dtype)


@settings(deadline=None, max_examples=15)
@given(
    n=st.integers(1, 3),
    h=st.integers(1, 4),
    w=st.integers(1, 4),
    num_groups=st.integers(1, 4),
    per_group=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_group_norm_matches_reference_on_random_shapes(n, h, w, num_groups, per_group, seed):
    c = num_groups * per_group
    x = normal((n, h, w, c), seed=seed) * 2 + 1
    scale, bias = affine_params(c, seed=seed + 1)
    y = jax.jit(partial(F.group_norm, num_groups=num_groups))(x, scale, bias)
    assert_close(y, ref_group_norm(x, scale, bias, num_groups), jnp.float32)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_layer_and_instance_norm_match_references(dtype):
    x = normal((2, 3, 4, 4), seed=7, dtype=dtype) + 2
    scale, bias = affine_params(4)
    assert_close(jax.jit(F.layer_norm)(x, scale, bias), ref_layer_norm(x, scale, bias), dtype)
    assert_close(jax.jit(F.instance_norm)(x, scale, bias), ref_instance_norm(x, scale, bias), dtype)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_layer_and_instance_norm_are_group_norm_exactly(dtype):
    x = normal((2, 3, 3, 4), seed=8, dtype=dtype)
    scale, bias = affine_params(4)
    np.testing.assert_array_equal(
        jax.jit(partial(F.layer_norm, eps=1e-3))(x, scale, bias),
        jax.jit(partial(F.group_norm, num_groups=1, eps=1e-3))(x, scale, bias),
    )
    np.testing.assert_array_equal(
        jax.jit(F.instance_norm)(x, scale, bias),
        jax.jit(partial(F.group_norm, num_groups=4))(x, scale, bias),
    )


def test_group_norm_accurate_when_mean_dwarfs_std():
    x = normal((2, 4, 4, 4), seed=9) * 0.5 + 1e3
    scale, bias = affine_params(4)
    y = jax.jit(partial(F.group_norm, num_groups=2))(x, scale, bias)
    np.testing.assert_allclose(y, ref_group_norm(x, scale, bias, 2), atol=2e-3)  # ulp(1e3) / 0.5


def test_group_norm_without_affine_and_under_vmap():
    x = normal((2, 3, 3, 3, 4), seed=12)
    y = jax.jit(jax.vmap(partial(F.group_norm, scale=None, bias=None, num_groups=2)))(x)
    ones, zeros = np.ones(4), np.zeros(4)
    for i in range(2):
        assert_close(y[i], ref_group_norm(x[i], ones, zeros, 2), jnp.float32)


def test_group_norm_gradients():
    with jax.enable_x64(True):
        x = jnp.asarray(np.random.default_rng(13).standard_normal((2, 2, 2, 4)))
        scale, bias = jnp.array([1.5, 0.5, 1.0, 2.0]), jnp.array([0.1, -0.2, 0.0, 0.3])
        f = lambda x, s, b: jnp.sin(F.group_norm(x, s, b, num_groups=2))  # noqa: E731
        check_grads(jax.jit(f), (x, scale, bias), order=1, modes=["rev"])


# ----------------------------------------------------------------------------
# momentum conversion and argument checks
# ----------------------------------------------------------------------------


def test_batch_norm_momentum_from_torch():
    assert F.batch_norm_momentum_from_torch(0.1) == pytest.approx(0.9)
    assert F.batch_norm_momentum_from_torch(0) == 1.0
    assert F.batch_norm_momentum_from_torch(1.0) == 0.0
    with pytest.raises(ValueError, match=r"`torch_momentum` must be in \[0, 1\], got 1.5"):
        F.batch_norm_momentum_from_torch(1.5)
    with pytest.raises(TypeError, match=r"`torch_momentum` must be a Python float .* got None"):
        F.batch_norm_momentum_from_torch(None)


X4, C3 = jnp.ones((2, 3, 3, 3)), jnp.ones(3)


def bn(x=X4, scale=C3, bias=C3, mean=C3, var=C3, **kw):
    return F.batch_norm(x, scale, bias, mean, var, **({"train": True} | kw))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: bn(x=jnp.ones((2, 3, 3))),
            ValueError,
            r"batch_norm: `x` must be NHWC \(4-D\) or \(N, C\) \(2-D\), "
            r"got shape \(2, 3, 3\)",
        ),
        (
            lambda: bn(x=jnp.ones((2, 3), jnp.int32)),
            TypeError,
            r"batch_norm: `x` must have a floating-point dtype, got int32",
        ),
        (
            lambda: bn(scale=jnp.ones(4)),
            ValueError,
            r"batch_norm: `scale` must have shape \(3,\) .* got shape \(4,\)",
        ),
        (
            lambda: bn(bias=jnp.ones((1, 3))),
            ValueError,
            r"batch_norm: `bias` must have shape \(3,\) .* got shape \(1, 3\)",
        ),
        (
            lambda: bn(mean=jnp.ones(2)),
            ValueError,
            r"batch_norm: `mean` must have shape \(3,\) .* got shape \(2,\)",
        ),
        (
            lambda: bn(var=None),
            TypeError,
            r"batch_norm: `var` must be an array of shape \(3,\), got None",
        ),
        (
            lambda: bn(var=jnp.ones(5)),
            ValueError,
            r"batch_norm: `var` must have shape \(3,\) .* got shape \(5,\)",
        ),
        (lambda: bn(eps=0.0), ValueError, r"batch_norm: `eps` must be > 0, got 0.0"),
        (
            lambda: bn(momentum=1.1),
            ValueError,
            r"batch_norm: `momentum` must be in \[0, 1\], got 1.1",
        ),
        (
            lambda: bn(momentum=-0.1),
            ValueError,
            r"batch_norm: `momentum` must be in \[0, 1\], got -0.1",
        ),
        (
            lambda: bn(train=None),
            TypeError,
            r"batch_norm: `train` must be a Python bool .* got None",
        ),
        (lambda: bn(axis_name=3), TypeError, r"batch_norm: `axis_name` must be None, .* got 3"),
        (
            lambda: bn(mask=jnp.ones(3)),
            ValueError,
            r"batch_norm: `mask` must have shape \(2,\) .* got shape \(3,\)",
        ),
        (
            lambda: F.group_norm(X4, C3, C3, num_groups=2),
            ValueError,
            r"group_norm: `num_groups`=2 must divide .* C=3",
        ),
        (
            lambda: F.group_norm(X4, C3, C3, num_groups=0),
            ValueError,
            r"group_norm: `num_groups` must be an int >= 1, got 0",
        ),
        (
            lambda: F.group_norm(jnp.ones((2, 3)), None, None, num_groups=1),
            ValueError,
            r"group_norm: `x` must be NHWC \(4-D\), got shape \(2, 3\)",
        ),
        (
            lambda: F.group_norm(X4, jnp.ones(4), C3, num_groups=1),
            ValueError,
            r"group_norm: `scale` must have shape \(3,\)",
        ),
        (
            lambda: F.group_norm(X4, C3, C3, num_groups=1, eps=-1.0),
            ValueError,
            r"group_norm: `eps` must be > 0, got -1.0",
        ),
        (
            lambda: F.layer_norm(X4, C3, jnp.ones(2)),
            ValueError,
            r"layer_norm: `bias` must have shape \(3,\) .* got shape \(2,\)",
        ),
        (
            lambda: F.layer_norm(X4.astype(jnp.int32), C3, C3),
            TypeError,
            r"layer_norm: `x` must have a floating-point dtype",
        ),
        (
            lambda: F.instance_norm(jnp.ones((2, 3, 3)), C3, C3),
            ValueError,
            r"instance_norm: `x` must be NHWC \(4-D\), got shape \(2, 3, 3\)",
        ),
        (
            lambda: F.instance_norm(X4, C3, C3, eps=0),
            ValueError,
            r"instance_norm: `eps` must be > 0, got 0",
        ),
    ],
)
def test_bad_arguments_are_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()
