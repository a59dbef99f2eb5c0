"""Pooling against float64 loop references written from the definitions, the
reshape/reduce_window formulations against each other, the tie rule of the max
gradient, shapes against conv_output_size, and the bad-input messages."""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import jcnn.functional as F
from jcnn.functional import _pooling
from tests.util import normal, tol

# ----------------------------------------------------------- references ---


def reference_pads(padding, n, k, s):
    """Per-axis (lo, hi) from the definitions in DESIGN §2, independent of jcnn."""
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":  # TF/XLA: out = ceil(n / s), odd pixel at the end
        total = max((-(-n // s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    if padding == "SAME_SYMMETRIC":  # PyTorch k // 2 on both sides (odd k)
        return (k - 1) // 2, (k - 1) // 2
    if isinstance(padding, int):
        return padding, padding
    return tuple(padding)


def reference_pads_2d(padding, spatial, window, stride):
    if isinstance(padding, str) or isinstance(padding, int):
        per_axis = (padding, padding)
    elif all(isinstance(p, int) for p in padding):  # (ph, pw)
        per_axis = tuple(padding)
    else:  # ((top, bottom), (left, right))
        per_axis = padding
    return tuple(map(reference_pads, per_axis, spatial, window, stride))


def pool_windows(h, w, window, stride, pads):
    """{(i, j): [(row, col), ...]}: each output's real input positions, row-major.
    Padded positions are left out: they never win a max and never count in a
    count_include_pad=False mean."""
    (kh, kw), (sh, sw), ((top, bottom), (left, right)) = window, stride, pads
    oh, ow = (h + top + bottom - kh) // sh + 1, (w + left + right - kw) // sw + 1
    return {
        (i, j): [
            (i * sh + u - top, j * sw + v - left)
            for u in range(kh)
            for v in range(kw)
            if 0 <= i * sh + u - top < h and 0 <= j * sw + v - left < w
        ]
        for i in range(oh)
        for j in range(ow)
    }


def adaptive_windows(h, w, oh, ow):
    """PyTorch's rule: bin i of an axis of length n is [floor(i n/out), ceil((i+1) n/out))."""

    def bins(n, out):
        return [
            range(math.floor(Fraction(i * n, out)), math.ceil(Fraction((i + 1) * n, out)))
            for i in range(out)
        ]

    return {
        (i, j): [(r, c) for r in rows for c in cols]
        for i, rows in enumerate(bins(h, oh))
        for j, cols in enumerate(bins(w, ow))
    }


def reference_pool(x, windows, reduce, divisor=None):
    """Float64 pool: `reduce` ("max" or "mean") over each window's positions;
    `divisor` overrides the mean's count (count_include_pad=True)."""
    x = np.asarray(x, np.float64)
    oh, ow = (max(k) + 1 for k in zip(*windows, strict=True))
    y = np.empty((x.shape[0], oh, ow, x.shape[-1]))
    for (i, j), positions in windows.items():
        vals = np.stack([x[:, r, c] for r, c in positions])
        if reduce == "max":
            y[:, i, j] = vals.max(0)
        else:
            y[:, i, j] = vals.sum(0) / (divisor or len(positions))
    return y


def reference_max_grad(x, g, windows):
    """Cotangent of each output sent whole to the first maximum of its window
    in row-major order (PyTorch/TensorFlow's MaxPoolGrad)."""
    x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
    dx = np.zeros_like(x)
    for (i, j), positions in windows.items():
        for n in range(x.shape[0]):
            for c in range(x.shape[-1]):
                vals = [x[n, r, col, c] for r, col in positions]
                r, col = positions[int(np.argmax(vals))]  # argmax: first maximum
                dx[n, r, col, c] += g[n, i, j, c]
    return dx


def tie_free(shape, seed=0):
    """Distinct values 0.1 apart (a permutation): no ties, and a finite-difference
    step of 1e-3 cannot swap the order of two elements."""
    perm = np.random.default_rng(seed).permutation(math.prod(shape))
    return jnp.asarray(0.1 * (perm - perm.size / 2).reshape(shape), jnp.float32)


def with_ties(shape, seed=0):
    """Values in {0, 1, 2}: most windows hold tied maxima."""
    return jnp.asarray(np.random.default_rng(seed).integers(0, 3, shape), jnp.float32)


def vjp(f, x, g):
    y, pullback = jax.vjp(f, x)
    return y, pullback(g)[0]


# ------------------------------------------------------------ fixed window ---

# (shape, window, stride, padding): overlapping 3/2, stride > window, every
# padding form, odd and even windows, sizes the stride does not divide; the
# non-overlapping ones take the reshape path, with and without padding.
POOL_CASES = [
    ((2, 6, 7, 3), 2, None, "VALID"),  # reshape; VALID crops the last column
    ((2, 7, 7, 2), 3, 2, "VALID"),  # overlapping
    ((1, 8, 7, 2), 2, 3, "VALID"),  # stride > window: rows/cols skipped
    ((1, 7, 6, 2), 3, 2, "SAME"),  # asymmetric SAME padding
    ((1, 5, 7, 2), 2, None, "SAME"),  # reshape after padding the odd row/col
    ((1, 6, 5, 2), 3, 1, "SAME_SYMMETRIC"),
    ((1, 7, 8, 2), (3, 2), (2, 1), ((1, 0), (1, 1))),
    ((1, 5, 6, 2), (3, 2), None, 1),  # reshape with int padding, then a crop
    ((1, 6, 6, 2), 4, 2, (1, 2)),
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


@pytest.mark.parametrize("shape,window,stride,padding", POOL_CASES)
def test_fixed_window_pools_match_loop_reference(shape, window, stride, padding):
    x = normal(shape)
    window_hw = _pair(window)
    stride_hw = window_hw if stride is None else _pair(stride)
    pads = reference_pads_2d(padding, shape[1:3], window_hw, stride_hw)
    windows = pool_windows(*shape[1:3], window_hw, stride_hw, pads)

    @jax.jit
    def pools(x):
        kw = dict(stride=stride, padding=padding)
        return (
            F.max_pool2d(x, window, **kw),
            F.avg_pool2d(x, window, **kw),
            F.avg_pool2d(x, window, count_include_pad=True, **kw),
        )

    y_max, y_avg, y_avg_pad = pools(x)
    np.testing.assert_allclose(y_max, reference_pool(x, windows, "max"), **tol(x.dtype))
    np.testing.assert_allclose(y_avg, reference_pool(x, windows, "mean"), **tol(x.dtype))
    expected = reference_pool(x, windows, "mean", divisor=math.prod(window_hw))
    np.testing.assert_allclose(y_avg_pad, expected, **tol(x.dtype))


_padding_strategy = st.one_of(
    st.sampled_from(["VALID", "SAME", "SAME_SYMMETRIC"]),
    st.tuples(st.integers(0, 4), st.integers(0, 4)),
)


@settings(deadline=None, max_examples=25)
@given(
    n=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    k=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    s=st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4))),
    padding=st.tuples(_padding_strategy, _padding_strategy),
)
def test_output_shape_equals_conv_output_size(n, k, s, padding):
    stride = k if s is None else s
    # Explicit pads stay below the window: a window made only of padding is
    # rejected by the pools (and tested below), not by conv_output_size.
    padding = tuple(
        p if isinstance(p, str) else (p[0] % kk, p[1] % kk)
        for p, kk in zip(padding, k, strict=True)
    )
    # Both axes must use the same string, or both be explicit.
    if isinstance(padding[0], str):
        padding_2d, per_axis = padding[0], (padding[0], padding[0])
    else:
        padding_2d = per_axis = tuple(p if not isinstance(p, str) else (0, 0) for p in padding)
    x = jax.ShapeDtypeStruct((2, *n, 3), jnp.float32)
    try:
        expected = [
            F.conv_output_size(nn, kk, stride=ss, padding=pp)
            for nn, kk, ss, pp in zip(n, k, stride, per_axis, strict=True)
        ]
    except ValueError:  # window larger than the padded input: pools reject it too
        with pytest.raises(ValueError, match="larger than the padded input"):
            F.max_pool2d(x, k, stride=s, padding=padding_2d)
        return
    for pool in (F.max_pool2d, F.avg_pool2d):
        out = jax.eval_shape(functools.partial(pool, window=k, stride=s, padding=padding_2d), x)
        assert out.shape == (2, *expected, 3)  # channels unchanged
        assert out.dtype == jnp.float32


# Non-overlapping cases, the reshape path: plain, cropping, padded (-inf / 0).
RESHAPE_CASES = [
    ((2, 8, 8, 3), (2, 2), ((0, 0), (0, 0))),
    ((1, 7, 9, 2), (3, 2), ((0, 0), (0, 0))),
    ((1, 5, 7, 2), (2, 3), ((1, 0), (0, 2))),
]


@pytest.mark.parametrize("shape,window,pads", RESHAPE_CASES)
def test_reshape_and_reduce_window_compute_the_same_function(shape, window, pads):
    x = tie_free(shape)
    g = jax.eval_shape(
        functools.partial(_pooling._max_pool_reshape, window_hw=window, pads=pads), x
    )
    g = normal(g.shape, seed=1)
    for reshape, window_form in [
        (
            functools.partial(_pooling._max_pool_reshape, window_hw=window, pads=pads),
            functools.partial(
                _pooling._max_pool_reduce_window, window_hw=window, stride_hw=window, pads=pads
            ),
        ),
        (
            functools.partial(_pooling._sum_pool_reshape, window_hw=window, pads=pads),
            functools.partial(
                _pooling._sum_pool_reduce_window, window_hw=window, stride_hw=window, pads=pads
            ),
        ),
    ]:
        y1, dx1 = jax.jit(functools.partial(vjp, reshape))(x, g)
        y2, dx2 = jax.jit(functools.partial(vjp, window_form))(x, g)
        np.testing.assert_allclose(y1, y2, **tol(x.dtype))
        np.testing.assert_allclose(dx1, dx2, **tol(x.dtype))


# ----------------------------------------------------------- max gradient ---


def test_tied_max_gradient_goes_to_first_maximum_in_row_major_order():
    # Window [[0, 1], [1, 0]]: the maxima sit at (0, 1) and (1, 0). Row-major
    # picks (0, 1), which gets the whole cotangent; jnp.max's own derivative
    # would give 1/2 to each. Both formulations must agree.
    x = jnp.array([[0.0, 1.0], [1.0, 0.0]]).reshape(1, 2, 2, 1)
    expected = np.array([[0.0, 1.0], [0.0, 0.0]])
    no_pad = ((0, 0), (0, 0))
    forms = {
        "max_pool2d": lambda x: F.max_pool2d(x, 2),
        "reduce_window": lambda x: _pooling._max_pool_reduce_window(x, (2, 2), (2, 2), no_pad),
    }
    for name, pool in forms.items():
        dx = jax.grad(lambda x, pool=pool: pool(x).sum())(x)
        np.testing.assert_array_equal(dx[0, :, :, 0], expected, err_msg=name)
    # Forward mode follows the same element.
    _, tangent = jax.jvp(
        forms["max_pool2d"], (x,), (jnp.array([0.0, 5.0, 7.0, 0.0]).reshape(x.shape),)
    )
    np.testing.assert_array_equal(tangent, [[[[5.0]]]])


@pytest.mark.parametrize(
    "shape,pool,windows",
    [
        (
            (2, 6, 7, 2),
            lambda x: F.max_pool2d(x, 2),
            pool_windows(6, 7, (2, 2), (2, 2), ((0, 0),) * 2),
        ),
        (
            (1, 5, 5, 2),
            lambda x: F.max_pool2d(x, 2, padding="SAME"),
            pool_windows(5, 5, (2, 2), (2, 2), ((0, 1), (0, 1))),
        ),
        (
            (1, 7, 6, 2),
            lambda x: F.max_pool2d(x, 3, stride=2, padding=1),
            pool_windows(7, 6, (3, 3), (2, 2), ((1, 1), (1, 1))),
        ),
        ((1, 7, 5, 2), lambda x: F.adaptive_max_pool2d(x, (3, 2)), adaptive_windows(7, 5, 3, 2)),
        ((1, 3, 2, 2), lambda x: F.adaptive_max_pool2d(x, (5, 4)), adaptive_windows(3, 2, 5, 4)),
        ((1, 6, 4, 2), lambda x: F.adaptive_max_pool2d(x, (3, 2)), adaptive_windows(6, 4, 3, 2)),
    ],
    ids=[
        "reshape",
        "reshape-padded",
        "reduce-window",
        "adaptive",
        "adaptive-out>n",
        "adaptive-tiles",
    ],
)
def test_max_gradient_with_ties_matches_first_maximum_reference(shape, pool, windows):
    x = with_ties(shape)
    g = normal(jax.eval_shape(pool, x).shape, seed=1)
    y, dx = jax.jit(functools.partial(vjp, pool))(x, g)
    np.testing.assert_array_equal(y, reference_pool(x, windows, "max"))
    np.testing.assert_allclose(dx, reference_max_grad(x, g, windows), **tol(x.dtype))


@pytest.mark.parametrize(
    "f",
    [
        lambda x: F.max_pool2d(x, 2),
        lambda x: F.max_pool2d(x, 3, stride=2, padding="SAME"),
        lambda x: F.avg_pool2d(x, 3, stride=2, padding=1),
        lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=True),
        lambda x: F.adaptive_avg_pool2d(x, (3, 4)),
        lambda x: F.adaptive_max_pool2d(x, (3, 4)),
        F.global_avg_pool,
    ],
    ids=["max", "max-overlap", "avg", "avg-count-pad", "adaptive-avg", "adaptive-max", "global"],
)
def test_gradients_match_finite_differences(f):
    check_grads(f, (tie_free((1, 5, 6, 2)),), order=1, modes=["rev"], eps=1e-3)


# ---------------------------------------------------------------- adaptive ---

ADAPTIVE_CASES = [
    ((1, 7, 5, 2), (3, 2)),  # bins overlap on both axes
    ((2, 4, 6, 2), (2, 3)),  # bins tile: the plain-pool path
    ((1, 6, 5, 2), (3, 2)),  # H tiles, W does not
    ((1, 3, 2, 2), (5, 4)),  # out > n: bins repeat
    ((1, 5, 5, 2), 1),
]


@pytest.mark.parametrize("shape,output_size", ADAPTIVE_CASES)
def test_adaptive_pools_match_loop_reference(shape, output_size):
    x = normal(shape)
    oh, ow = _pair(output_size)
    windows = adaptive_windows(*shape[1:3], oh, ow)
    y_avg, y_max = jax.jit(
        lambda x: (F.adaptive_avg_pool2d(x, output_size), F.adaptive_max_pool2d(x, output_size))
    )(x)
    np.testing.assert_allclose(y_avg, reference_pool(x, windows, "mean"), **tol(x.dtype))
    np.testing.assert_allclose(y_max, reference_pool(x, windows, "max"), **tol(x.dtype))


def test_global_avg_pool_is_the_spatial_mean():
    x = normal((2, 3, 5, 4))
    y = F.global_avg_pool(x)
    assert y.shape == (2, 4)
    np.testing.assert_allclose(y, np.asarray(x, np.float64).mean(axis=(1, 2)), **tol(x.dtype))


@pytest.mark.parametrize(
    "pool",
    [
        lambda x: F.avg_pool2d(x, 3, stride=2, padding="SAME"),
        lambda x: F.max_pool2d(x, 2),
        lambda x: F.adaptive_avg_pool2d(x, 3),
        F.global_avg_pool,
    ],
    ids=["avg", "max", "adaptive-avg", "global"],
)
def test_bfloat16_in_bfloat16_out_close_to_float32(pool):
    x = normal((1, 7, 7, 2), dtype=jnp.bfloat16)
    y = pool(x)
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(y, np.float32), pool(x.astype(jnp.float32)), **tol(jnp.bfloat16)
    )


# ---------------------------------------------------- transformations ---


@pytest.mark.parametrize(
    "pool",
    [
        lambda x: F.max_pool2d(x, 2),
        lambda x: F.max_pool2d(x, 3, stride=2),
        lambda x: F.avg_pool2d(x, 2, padding="SAME"),
        lambda x: F.avg_pool2d(x, 3, stride=1, padding=1),
        lambda x: F.adaptive_avg_pool2d(x, (2, 3)),
        lambda x: F.adaptive_max_pool2d(x, (2, 3)),
        F.global_avg_pool,
    ],
    ids=["max", "max-overlap", "avg", "avg-overlap", "adaptive-avg", "adaptive-max", "global"],
)
def test_jit_vmap_and_jit_grad_agree_with_the_plain_call(pool):
    xs = tie_free((3, 2, 5, 7, 4))  # a leading vmap axis over (N=2, 5, 7, C=4)
    y = pool(xs[0])
    assert y.shape[-1] == 4  # pooling never changes the channel count
    np.testing.assert_allclose(jax.jit(pool)(xs[0]), y, **tol(y.dtype))
    np.testing.assert_allclose(jax.vmap(pool)(xs), np.stack([pool(x) for x in xs]), **tol(y.dtype))
    # jit(grad) catches a reduce_window whose identity became a tracer (no
    # autodiff rule) and a custom_jvp that fails to linearise under jit.
    grad = jax.grad(lambda x: jnp.sum(pool(x) ** 2))
    np.testing.assert_allclose(jax.jit(grad)(xs[0]), grad(xs[0]), **tol(y.dtype))


# ------------------------------------------------------------- bad input ---

_X = jnp.zeros((1, 4, 4, 2))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: F.max_pool2d(_X[0], 2),
            ValueError,
            r"max_pool2d: `x` must be NHWC \(4-D\), got shape \(4, 4, 2\)",
        ),
        (
            lambda: F.avg_pool2d(_X, 0),
            ValueError,
            r"avg_pool2d: `window` must be an int >= 1, got 0",
        ),
        (
            lambda: F.max_pool2d(_X, (2, -1)),
            ValueError,
            r"max_pool2d: `window` must be ints >= 1, got \(2, -1\)",
        ),
        (
            lambda: F.max_pool2d(_X, 2.0),
            TypeError,
            r"max_pool2d: `window` must be an int or a pair of ints \(h, w\), got 2.0",
        ),
        (
            lambda: F.max_pool2d(_X, True),
            TypeError,
            r"max_pool2d: `window` must be an int or a pair",
        ),
        (
            lambda: F.max_pool2d(_X, 2, stride=0),
            ValueError,
            r"max_pool2d: `stride` must be an int >= 1, got 0",
        ),
        (
            lambda: F.avg_pool2d(_X, 2, padding="FULL"),
            ValueError,
            r"avg_pool2d: unknown `padding` 'FULL'",
        ),
        (
            lambda: F.max_pool2d(_X, (2, 5)),
            ValueError,
            r"max_pool2d: `window` \(5 along W\) is larger than the padded input "
            r"\(4 \+ 0 \+ 0 = 4\)",
        ),
        (
            lambda: F.avg_pool2d(_X, 2, padding=2),
            ValueError,
            r"avg_pool2d: `padding` \(2, 2\) along H puts a whole window of size 2",
        ),
        (
            lambda: F.max_pool2d(_X, 2, padding=((0, 0), (0, 2))),
            ValueError,
            r"max_pool2d: `padding` \(0, 2\) along W puts a whole window",
        ),
        (
            lambda: F.avg_pool2d(_X, 2, count_include_pad="yes"),
            TypeError,
            r"avg_pool2d: `count_include_pad` must be a bool, got 'yes'",
        ),
        (
            lambda: F.max_pool2d(_X.astype(jnp.int32), 2),
            TypeError,
            r"max_pool2d: `x` must have a floating-point dtype, got int32",
        ),
        (
            lambda: F.adaptive_avg_pool2d(_X, 0),
            ValueError,
            r"adaptive_avg_pool2d: `output_size` must be an int >= 1, got 0",
        ),
        (
            lambda: F.adaptive_max_pool2d(_X, (2, 0)),
            ValueError,
            r"adaptive_max_pool2d: `output_size` must be ints >= 1, got \(2, 0\)",
        ),
        (
            lambda: F.adaptive_max_pool2d(_X[0], 2),
            ValueError,
            r"adaptive_max_pool2d: `x` must be NHWC \(4-D\)",
        ),
        (
            lambda: F.global_avg_pool(_X[0]),
            ValueError,
            r"global_avg_pool: `x` must be NHWC \(4-D\), got shape \(4, 4, 2\)",
        ),
    ],
)
def test_bad_input_raises_before_xla(call, error, match):
    with pytest.raises(error, match=match):
        call()
