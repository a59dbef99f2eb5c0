"""dropout, dropconnect, dropblock, disout and linear_rate_schedule.

Oracles: exact algebraic properties (kept values, rescale factors, gradients,
homogeneity), float64 NumPy checks written from the definitions (blocks as
unions of in-map squares, per-pixel drop probabilities counted with loops),
and statistical bounds of 6 sigma whose sample sizes are stated inline.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jcnn.functional as F
from tests.util import normal

# The functions only call `jax.random`, so the key's implementation does not
# matter to them; tests use "rbg" keys because threefry's unrolled rounds make
# every XLA:CPU compile several times slower. A few tests keep the default key.
KEY = jax.random.key(0, impl="rbg")
THREEFRY = jax.random.key(0)

# Jitted forms taking `rate` as a traced scalar: tests that share a shape and
# the static arguments share one compilation, which dominates the run time.
DROPOUT = jax.jit(F.dropout)
DROPCONNECT = jax.jit(F.dropconnect)
DROPBLOCK = jax.jit(F.dropblock, static_argnames=("block_size", "per_channel"))
DISOUT = jax.jit(F.disout, static_argnames=("block_size", "alpha"))


def positive(shape, seed=0):
    """Inputs bounded away from 0, so that a zero in the output means 'dropped'."""
    return 1.0 + jnp.abs(normal(shape, seed))


def is_union_of_blocks(region, bh, bw):
    """True if the boolean (H, W) `region` is a union of bh x bw rectangles inside the map."""
    h, w = region.shape
    covered = np.zeros_like(region)
    for i in range(h - bh + 1):
        for j in range(w - bw + 1):
            if region[i : i + bh, j : j + bw].all():
                covered[i : i + bh, j : j + bw] = True
    return np.array_equal(covered, region)


def drop_probability(h, w, bh, bw, rate):
    """Per-pixel drop probability 1 - (1 - gamma)^k, k = number of in-map blocks covering it."""
    vh, vw = h - bh + 1, w - bw + 1
    gamma = rate * h * w / (bh * bw * vh * vw)
    cover = np.zeros((h, w))
    for i in range(vh):
        for j in range(vw):
            cover[i : i + bh, j : j + bw] += 1
    return 1.0 - (1.0 - gamma) ** cover


# ----------------------------------------------------------------- dropout ---


ROWS, X_ROW = 2000, positive((256,), seed=1)
X_TILED = jnp.tile(X_ROW, (ROWS, 1))


def test_dropout_drop_fraction_and_kept_values():
    rate, x = 0.3, X_TILED
    y = np.asarray(DROPOUT(KEY, x, rate))
    dropped = y == 0
    # n = 512000 iid Bernoulli(0.3): sigma = sqrt(0.3 * 0.7 / n) = 6.4e-4; 6 sigma = 3.8e-3.
    assert abs(dropped.mean() - rate) < 6 * np.sqrt(rate * (1 - rate) / dropped.size)
    kept = np.asarray(x, np.float64)[~dropped] / (1 - rate)
    # XLA rewrites a division by a broadcast scalar as a product with the
    # scalar's reciprocal: within 2 float32 ulps (2^-22 relative) of x / (1 - rate).
    np.testing.assert_allclose(y[~dropped], kept, rtol=2**-22, atol=0)


def test_dropout_preserves_the_mean_elementwise():
    # Each of 256 values is repeated in 2000 rows; with rate 0.5 a row's value is
    # 0 or 2x, so the column mean is 2x * Binomial(2000, 0.5) / 2000 with sigma
    # |x| / sqrt(2000) = 0.022 |x|; the bound is 6 sigma per column.
    y = DROPOUT(KEY, X_TILED, 0.5)
    sigma = np.abs(np.asarray(X_ROW)) / np.sqrt(ROWS)
    assert np.all(np.abs(np.asarray(y).mean(axis=0) - np.asarray(X_ROW)) <= 6 * sigma)


def test_dropout_is_deterministic_given_the_key():
    x = X_TILED
    for key, other in [(KEY, jax.random.key(1, impl="rbg")), (THREEFRY, jax.random.key(1))]:
        np.testing.assert_array_equal(DROPOUT(key, x, 0.5), DROPOUT(key, x, 0.5))
        # Two keys agreeing on all 512000 Bernoulli(0.5) draws: probability 2^-512000.
        assert not np.array_equal(DROPOUT(key, x, 0.5), DROPOUT(other, x, 0.5))


def test_dropout_gradient_is_mask_over_keep_probability():
    rate, x = 0.25, X_TILED
    y = DROPOUT(KEY, x, rate)
    g = jax.jit(jax.grad(lambda v: F.dropout(KEY, v, rate).sum()))(x)
    np.testing.assert_allclose(g, (np.asarray(y) != 0) / (1 - rate), rtol=1e-6)


# ------------------------------------------------------------- dropconnect ---


def test_dropconnect_drops_weights_not_outputs():
    rate, v, kernel = 0.5, normal((4, 16), seed=2), normal((16, 8), seed=3)
    dropped = np.asarray(DROPCONNECT(KEY, kernel, rate))
    mask = dropped != 0
    assert 0 < mask.mean() < 1 and np.all(mask.any(axis=0)) and np.all((~mask).any(axis=0))
    np.testing.assert_allclose(dropped[mask], np.asarray(kernel)[mask] / (1 - rate), rtol=1e-6)
    y = np.asarray(F.dense(v, jnp.asarray(dropped)))
    reference = np.asarray(v, np.float64) @ (mask * np.asarray(kernel, np.float64)) / (1 - rate)
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)
    # Dropping outputs would give units that are exactly 0 or exactly 2 v W; here
    # every unit lost part of its inputs, so none is either.
    full = 2 * np.asarray(v, np.float64) @ np.asarray(kernel, np.float64)
    assert np.all(y != 0) and np.all(np.abs(y - full) > 1e-3)


def test_dropconnect_drop_fraction_at_an_asymmetric_rate():
    # At rate 0.5 a mask with keep and drop swapped looks the same; at 0.3 it does not.
    # n = 512000 iid Bernoulli(0.3): 6 sigma = 3.8e-3.
    rate, kernel = 0.3, X_TILED
    dropped = np.asarray(DROPCONNECT(KEY, kernel, rate)) == 0
    assert abs(dropped.mean() - rate) < 6 * np.sqrt(rate * (1 - rate) / dropped.size)


def test_dropconnect_conv_kernel():
    kernel = positive((3, 3, 4, 5))
    dropped = np.asarray(DROPCONNECT(KEY, kernel, 0.5))
    assert dropped.shape == kernel.shape
    # 180 weights: P(no zero) = P(all zero) = 2^-180.
    assert 0 < (dropped == 0).mean() < 1
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], 2 * np.asarray(kernel)[kept], rtol=1e-6)


# --------------------------------------------------------------- dropblock ---

SHAPE = (6, 10, 12, 3)


@pytest.mark.parametrize(
    "key,shape,block_size,per_channel,block",
    [
        (KEY, SHAPE, 3, False, (3, 3)),
        (THREEFRY, SHAPE, 2, True, (2, 2)),
        (KEY, (6, 4, 8, 2), 5, True, (4, 5)),  # clamped along H only
    ],
)
def test_dropblock_zeros_are_whole_blocks_and_rescale_per_sample(
    key, shape, block_size, per_channel, block
):
    x = np.asarray(positive(shape))
    y = np.asarray(DROPBLOCK(key, x, 0.3, block_size=block_size, per_channel=per_channel))
    zero = y == 0
    assert zero.any() and not zero.all()
    for n in range(shape[0]):
        for c in range(shape[3]):
            assert is_union_of_blocks(zero[n, :, :, c], *block), (n, c)
        mask = zero[n] if per_channel else zero[n, :, :, 0]
        scale = mask.size / (~mask).sum()
        np.testing.assert_allclose(y[n][~zero[n]], x[n][~zero[n]] * scale, rtol=1e-6)
    same = all(np.array_equal(zero[..., 0], zero[..., c]) for c in range(shape[3]))
    assert same != per_channel


@pytest.mark.parametrize("block_size", [3, 4])
def test_dropblock_drop_probability_per_pixel(block_size):
    # 4000 independent (sample, channel) maps of 8 x 9 (per-channel masks).
    # Per pixel the drop count is Binomial(4000, p) with p from the definition
    # (p in [0.045, 0.52]); the bound is 6 sigma = 6 sqrt(p (1 - p) / 4000)
    # <= 0.047 per pixel (72 pixels: P(any fails) ~ 72 * 2e-9). An even block
    # shifted by one pixel (as in the authors' code) would change p at the
    # first and last rows/columns by far more.
    rate, (n, h, w, c) = 0.3, (1000, 8, 9, 4)
    y = DROPBLOCK(KEY, jnp.ones((n, h, w, c)), rate, block_size=block_size, per_channel=True)
    frequency = (np.asarray(y) == 0).mean(axis=(0, 3))
    p = drop_probability(h, w, block_size, block_size, rate)
    assert np.all(np.abs(frequency - p) <= 6 * np.sqrt(p * (1 - p) / (n * c)))
    # Overlapping blocks: the expected dropped fraction is below the rate.
    assert p.mean() < rate


@pytest.mark.parametrize("rate", [0.3, 0.99])
def test_dropblock_block_as_large_as_the_map_drops_whole_maps(rate):
    # 4000 iid maps each dropped whole with probability `rate`: sigma =
    # sqrt(rate (1 - rate) / 4000) <= 7.3e-3, bound 6 sigma. At 0.99 most
    # samples lose every channel: they must come out as zeros, not NaN.
    n, h, w, c = 1000, 4, 5, 4
    x = np.asarray(positive((n, h, w, c)))
    y = np.asarray(DROPBLOCK(KEY, x, rate, block_size=7, per_channel=True))
    dropped = (y == 0).all(axis=(1, 2))
    assert np.array_equal(dropped, (y == 0).any(axis=(1, 2)))
    assert abs(dropped.mean() - rate) <= 6 * np.sqrt(rate * (1 - rate) / (n * c))
    kept_channels = (~dropped).sum(axis=1)
    assert np.all(np.isfinite(y))
    # P(a sample keeps a channel) = 1 - 0.99^4 = 0.039: with 1000 samples some lose all.
    assert rate < 0.5 or (kept_channels == 0).any()
    scale = c / np.maximum(kept_channels, 1)
    expected = x * ~dropped[:, None, None, :] * scale[:, None, None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-6)


@pytest.mark.parametrize("block_size,per_channel", [(3, False), (2, True)])
def test_dropblock_keeps_the_mean_of_a_constant_input(block_size, per_channel):
    x = jnp.full(SHAPE, 2.5)
    y = DROPBLOCK(KEY, x, 0.4, block_size=block_size, per_channel=per_channel)
    np.testing.assert_allclose(np.asarray(y).mean(axis=(1, 2, 3)), 2.5, rtol=1e-5)


def test_dropblock_gradient_is_the_scaled_mask():
    x = positive(SHAPE)
    y = DROPBLOCK(KEY, x, 0.3, block_size=3)
    g = jax.jit(jax.grad(lambda v: F.dropblock(KEY, v, 0.3, block_size=3).sum()))(x)
    np.testing.assert_allclose(g, np.asarray(y) / np.asarray(x), rtol=1e-6)


# ------------------------------------------------------------------ disout ---

DSHAPE = (64, 8, 8, 4)


def altered_and_scale(x, y):
    """Positions Disout altered, and each sample's common scale of the kept ones."""
    ratio = np.asarray(y, np.float64) / np.asarray(x, np.float64)
    scale = np.median(ratio.reshape(len(ratio), -1), axis=1)[:, None, None, None]
    return np.abs(ratio - scale) > 1e-5 * scale, scale


@pytest.mark.parametrize("block_size", [3, 2])
def test_disout_distorts_whole_blocks_instead_of_zeroing(block_size):
    x = np.asarray(positive(DSHAPE))
    y = np.asarray(DISOUT(KEY, x, 0.3, block_size=block_size, alpha=1.0))
    assert np.all(y != 0)
    altered, scale = altered_and_scale(x, y)
    assert altered.any() and not altered.all()
    for n in range(x.shape[0]):
        for c in range(x.shape[3]):
            assert is_union_of_blocks(altered[n, :, :, c], block_size, block_size), (n, c)
        np.testing.assert_allclose(scale[n], altered[n].size / (~altered[n]).sum(), rtol=1e-5)
    assert not all(np.array_equal(altered[..., 0], altered[..., c]) for c in range(x.shape[3]))


def test_disout_noise_is_alpha_times_the_sample_std():
    # k ~ 4000 altered units (64 samples x 256 units x ~0.25). Standardised by
    # alpha * std(x_n) * scale they should be N(0, 1): their mean has sigma
    # 1/sqrt(k) ~ 0.016 and their variance sigma sqrt(2/k) ~ 0.022; bounds 6 sigma.
    alpha, x = 1.0, np.asarray(positive(DSHAPE, seed=4))
    y = np.asarray(DISOUT(KEY, x, 0.3, block_size=3, alpha=alpha))
    altered, scale = altered_and_scale(x, y)
    std = np.asarray(x, np.float64).std(axis=(1, 2, 3), keepdims=True)
    z = (y / (scale * alpha * std))[altered]
    k = z.size
    assert k > 2000
    assert abs(z.mean()) <= 6 / np.sqrt(k)
    assert abs(z.var() - 1) <= 6 * np.sqrt(2 / k)


def test_disout_perturbation_scales_with_alpha_and_with_x():
    x = positive(DSHAPE)
    y1, y2, y0 = (np.asarray(DISOUT(KEY, x, 0.3, block_size=3, alpha=a)) for a in (1.0, 2.0, 0.0))
    altered, _ = altered_and_scale(np.asarray(x), y1)
    np.testing.assert_allclose(y2[altered], 2 * y1[altered], rtol=1e-6)
    np.testing.assert_array_equal(y2[~altered], y1[~altered])
    # alpha = 0 leaves zeros exactly where the distortion would go.
    np.testing.assert_array_equal(y0 == 0, altered)
    y3 = DISOUT(KEY, 3.0 * x, 0.3, block_size=3, alpha=1.0)
    np.testing.assert_allclose(y3, 3.0 * y1, rtol=1e-5, atol=1e-6)


def test_disout_gradient_skips_the_statistics():
    x = positive(DSHAPE)
    y = np.asarray(DISOUT(KEY, x, 0.3, block_size=3, alpha=1.0))
    altered, scale = altered_and_scale(np.asarray(x), y)
    grad = jax.grad(lambda v: F.disout(KEY, v, 0.3, block_size=3, alpha=1.0).sum())
    expected = np.where(altered, 0.0, np.broadcast_to(scale, y.shape))
    np.testing.assert_allclose(jax.jit(grad)(x), expected, rtol=1e-5)


# -------------------------------------------- transformations and schedules ---

# name -> (jitted function with its static arguments, an input shape it has
# already been compiled for above).
FUNCTIONS = {
    "dropout": (DROPOUT, X_TILED.shape),
    "dropconnect": (DROPCONNECT, (3, 3, 4, 5)),
    "dropblock": (functools.partial(DROPBLOCK, block_size=3), SHAPE),
    "disout": (functools.partial(DISOUT, block_size=3, alpha=1.0), DSHAPE),
}
STATIC = {"dropblock": dict(block_size=3), "disout": dict(block_size=3, alpha=1.0)}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_zero_rate_is_the_identity(name):
    fn, shape = FUNCTIONS[name]
    x = normal(shape)
    eager = functools.partial(getattr(F, name), **STATIC.get(name, {}))
    assert eager(KEY, x, 0.0) is x
    assert eager(KEY, x, 0) is x
    np.testing.assert_array_equal(fn(KEY, x, 0.0), x)  # a traced rate of 0


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_vmap_matches_single_calls(name):
    # vmap over the data with one key: the reductions and rescales must act
    # per item. (Batching of threefry keys is checked once, for dropout, below;
    # rbg keys are not batched exactly by design.)
    fn, shape = FUNCTIONS[name]
    xs = normal((3, *shape))
    batched = jax.jit(jax.vmap(lambda x: fn(KEY, x, 0.3)))(xs)
    for i in range(3):
        np.testing.assert_allclose(batched[i], fn(KEY, xs[i], 0.3), rtol=1e-6, atol=1e-6)


def test_vmap_over_keys_matches_single_calls():
    keys, x = jax.random.split(THREEFRY, 3), X_TILED
    batched = jax.jit(jax.vmap(lambda k: F.dropout(k, x, 0.3)))(keys)
    for i in range(3):
        np.testing.assert_array_equal(batched[i], DROPOUT(keys[i], x, 0.3))


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_dtype_and_shape_are_kept(name):
    fn, shape = FUNCTIONS[name]
    x = jax.ShapeDtypeStruct(shape, jnp.bfloat16)
    out = jax.eval_shape(lambda k, v: fn(k, v, 0.3), KEY, x)
    assert (out.shape, out.dtype) == (x.shape, x.dtype)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_64_bit_mode(name):
    # Under jax_enable_x64 a bare Python float becomes float64: no internal
    # constant may meet a float32 operand in a primitive that needs equal dtypes.
    fn, shape = FUNCTIONS[name]
    shape = (2, 6, 6, 3) if len(shape) == 4 and name != "dropconnect" else shape[-2:]
    with jax.enable_x64(True):
        for dtype in (jnp.float32, jnp.float64):
            x = positive(shape).astype(dtype)
            y = fn(KEY, x, 0.3)
            assert y.dtype == dtype
            if name in ("dropout", "dropconnect"):  # kept values: x / (1 - p) in x's precision
                kept = np.asarray(y) != 0
                want = np.asarray(x, np.float64)[kept] / 0.7
                np.testing.assert_allclose(np.asarray(y)[kept], want, rtol=np.finfo(dtype).eps)


def test_dropout_rescales_bfloat16_in_float32():
    # bfloat16(1 - 0.1) = 0.8984: dividing by it would bias every kept value by
    # +0.17%; the kept values must be x / 0.9 rounded once to bfloat16.
    x = positive((64, 64)).astype(jnp.bfloat16)
    y = np.asarray(DROPOUT(KEY, x, 0.1), np.float64)
    kept = y != 0
    want = np.asarray(
        jnp.asarray(np.asarray(x, np.float64) / 0.9, jnp.float32).astype(jnp.bfloat16),
        np.float64,
    )
    np.testing.assert_array_equal(y[kept], want[kept])


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    block_size=st.integers(1, 15),
    per_channel=st.booleans(),
)
def test_block_regularisers_accept_any_block_size_shape_only(h, w, block_size, per_channel):
    # Tracing only (no compile): blocks larger than the map are clamped, never an error.
    x = jax.ShapeDtypeStruct((2, h, w, 3), jnp.float32)
    for fn in (
        functools.partial(F.dropblock, block_size=block_size, per_channel=per_channel),
        functools.partial(F.disout, block_size=block_size, alpha=1.0),
    ):
        out = jax.eval_shape(lambda k, v, fn=fn: fn(k, v, 0.2), KEY, x)
        assert (out.shape, out.dtype) == (x.shape, x.dtype)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_traced_rate_matches_static_rate_without_retracing(name):
    _, shape = FUNCTIONS[name]
    x = positive(shape)
    chex.clear_trace_counter()  # `step` below is a new function per parameter

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, v, rate):
        return getattr(F, name)(key, v, rate, **STATIC.get(name, {}))

    static = jax.jit(functools.partial(getattr(F, name), rate=0.3, **STATIC.get(name, {})))
    traced, fixed = np.asarray(step(KEY, x, jnp.float32(0.3))), np.asarray(static(KEY, x))
    # Same draws; values within 2 ulps, as XLA may fold a constant 1 / (1 - rate).
    np.testing.assert_array_equal(traced == 0, fixed == 0)
    np.testing.assert_allclose(traced, fixed, rtol=2**-22, atol=0)
    assert not np.array_equal(step(KEY, x, jnp.float32(0.1)), static(KEY, x))


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_deterministic_given_the_key(name):
    fn, shape = FUNCTIONS[name]
    x = positive(shape)
    np.testing.assert_array_equal(fn(KEY, x, 0.3), fn(KEY, x, 0.3))
    assert not np.array_equal(fn(KEY, x, 0.3), fn(jax.random.key(1, impl="rbg"), x, 0.3))


def test_linear_rate_schedule():
    schedule = F.linear_rate_schedule(0.2, 100)
    assert [schedule(s) for s in (0, 50, 100, 250)] == [0.0, 0.1, 0.2, 0.2]
    traced = jax.jit(schedule)(jnp.arange(0, 201, 25))
    expected = 0.2 * np.minimum(np.arange(0, 201, 25) / 100, 1.0)
    np.testing.assert_allclose(traced, expected, rtol=1e-6)
    assert F.linear_rate_schedule(0.1, 10, start_rate=0.3)(5) == pytest.approx(0.2)


# --------------------------------------------------------------- bad input ---

X4 = jnp.ones((1, 4, 4, 2))
BAD_BLOCK = functools.partial(F.dropblock, block_size=2)
BAD_DISOUT = functools.partial(F.disout, block_size=2, alpha=1.0)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda: F.dropout(KEY, X4, 1.0), ValueError, r"dropout: `rate` must be in \[0, 1\).*1\.0"),
        (lambda: F.dropout(KEY, X4, -0.1), ValueError, r"`rate` must be in \[0, 1\).*-0\.1"),
        (lambda: F.dropout(KEY, X4, "0.5"), TypeError, r"`rate` must be a Python float.*str"),
        (lambda: F.dropout(KEY, X4, True), TypeError, r"`rate` must be a Python float.*bool"),
        (lambda: F.dropout(KEY, X4, jnp.ones(2)), TypeError, r"scalar floating array.*\(2,\)"),
        (lambda: F.dropout(KEY, X4, jnp.int32(0)), TypeError, r"scalar floating array.*int32"),
        (lambda: F.dropout(KEY, X4, jnp.float32(1.5)), ValueError, r"\[0, 1\).*1\.5"),
        (lambda: F.dropout(KEY, jnp.ones(3, int), 0.1), TypeError, r"dropout: `x` .*floating"),
        (lambda: F.dropconnect(KEY, jnp.ones((2, 2, 2)), 0.1), ValueError, r"dense .*\(2, 2, 2\)"),
        (lambda: F.dropconnect(KEY, jnp.ones((2, 2), int), 0.1), TypeError, r"`kernel`.*float"),
        (lambda: BAD_BLOCK(KEY, X4, 1.2), ValueError, r"dropblock: `rate` must be in \[0, 1\)"),
        (lambda: F.dropblock(KEY, X4, 0.1, block_size=0), ValueError, r"`block_size`.*>= 1.*0"),
        (lambda: F.dropblock(KEY, X4, 0.1, block_size=2.0), TypeError, r"`block_size`.*int"),
        (
            lambda: BAD_BLOCK(KEY, jnp.ones((4, 4, 2)), 0.1),
            ValueError,
            r"NHWC \(4-D\).*\(4, 4, 2\)",
        ),
        (lambda: BAD_BLOCK(KEY, jnp.ones((1, 4, 4, 2), int), 0.1), TypeError, r"`x` .*floating"),
        (lambda: BAD_DISOUT(KEY, X4, 1.0), ValueError, r"disout: `rate` must be in \[0, 1\)"),
        (lambda: BAD_DISOUT(KEY, jnp.ones((4, 4)), 0.1), ValueError, r"disout: `x` must be NHWC"),
        (lambda: F.disout(KEY, X4, 0.1, block_size=-1, alpha=1.0), ValueError, r"block_size"),
        (lambda: F.disout(KEY, X4, 0.1, block_size=2, alpha=-1.0), ValueError, r"`alpha`.*>= 0"),
        (lambda: F.disout(KEY, X4, 0.1, block_size=2, alpha="1"), TypeError, r"`alpha`.*str"),
        (lambda: F.linear_rate_schedule(1.0, 10), ValueError, r"`final_rate` must be in \[0, 1\)"),
        (lambda: F.linear_rate_schedule(0.1, 0), ValueError, r"`total_steps` must be an int >= 1"),
    ],
)
def test_bad_input_is_rejected_before_xla(call, error, match):
    with pytest.raises(error, match=match):
        call()
