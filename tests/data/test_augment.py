"""jcnn.data augmentations: each op is the geometric operation it claims on a known
image, every random outcome appears, and the ops are deterministic per key under
jit and vmap."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcnn.data as D

H, W, C = 5, 6, 2
# Pixels 1..60, all distinct and non-zero, so a zero can only be padding or cutout.
IMAGE = np.arange(1, H * W * C + 1, dtype=np.uint8).reshape(H, W, C)


N = 1024  # one batch size for the statistical tests: one key split compiled


def batch_of(n: int) -> jnp.ndarray:
    return jnp.broadcast_to(jnp.asarray(IMAGE), (n, H, W, C))


def test_random_flip_is_identity_or_mirror_each_half_the_time():
    n = N
    out = np.asarray(D.per_example(D.random_flip, jax.random.key(0), batch_of(n)))
    flipped = (out == IMAGE[:, ::-1]).all(axis=(1, 2, 3))
    kept = (out == IMAGE).all(axis=(1, 2, 3))
    assert (flipped ^ kept).all()
    # flips ~ Binomial(1024, 1/2): mean 512, sigma 16; 6 sigma gives [416, 608].
    assert 416 <= flipped.sum() <= 608


def test_random_crop_is_a_window_of_the_zero_padded_image_at_every_offset():
    n, (ph, pw) = N, (2, 1)
    crop = partial(D.random_crop, padding=(ph, pw))
    out = np.asarray(D.per_example(crop, jax.random.key(1), batch_of(n)))
    padded = np.zeros((H + 2 * ph, W + 2 * pw, C), np.uint8)
    padded[ph : ph + H, pw : pw + W] = IMAGE
    offsets = [(oy, ox) for oy in range(2 * ph + 1) for ox in range(2 * pw + 1)]
    windows = np.stack([padded[oy : oy + H, ox : ox + W] for oy, ox in offsets])
    match = (out[:, None] == windows[None]).all(axis=(2, 3, 4))  # (n, 15)
    # Windows are distinct, so each crop is exactly one of the 15 offsets.
    np.testing.assert_array_equal(match.sum(axis=1), 1)
    # count per offset ~ Binomial(1024, 1/15): mean 68.3, sigma 8.0; 6 sigma gives [20, 117].
    counts = match.sum(axis=0)
    assert counts.min() >= 20 and counts.max() <= 117, counts


def test_random_crop_without_padding_is_identity():
    out = D.random_crop(jax.random.key(0), jnp.asarray(IMAGE), padding=0)
    np.testing.assert_array_equal(out, IMAGE)


@pytest.mark.parametrize("size", [3, 2])
def test_cutout_zeros_exactly_one_clipped_square(size):
    n = N
    out = np.asarray(D.per_example(partial(D.cutout, size=size), jax.random.key(2), batch_of(n)))
    assert out.dtype == np.uint8
    zero = out == 0
    # All channels of a pixel together; every other pixel untouched.
    np.testing.assert_array_equal(zero, np.repeat(zero[..., :1], C, axis=-1))
    np.testing.assert_array_equal(np.where(zero, IMAGE, out), np.broadcast_to(IMAGE, out.shape))
    # The square for centre (cy, cx): rows cy - size//2 .. cy - size//2 + size - 1, clipped.
    squares = np.zeros((H, W, H, W), bool)
    for cy in range(H):
        for cx in range(W):
            y0, x0 = cy - size // 2, cx - size // 2
            squares[cy, cx, max(y0, 0) : y0 + size, max(x0, 0) : x0 + size] = True
    squares = squares.reshape(H * W, H, W)
    match = (zero[:, None, :, :, 0] == squares[None]).all(axis=(2, 3))  # (n, 30)
    assert match.any(axis=1).all()
    # Every centre appears: P(one missing) <= 30 * (29/30)^1024 < 1e-13.
    assert match.any(axis=0).all()


def test_normalize_matches_float64_definition():
    x = np.arange(0, 256, 8, dtype=np.uint8).reshape(1, 4, 4, 2)
    mean, std = np.array([0.2, 0.4]), np.array([0.3, 0.5])
    expected = (x.astype(np.float64) / 255.0 - mean) / std
    out = jax.jit(D.normalize)(x, mean, std)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(D.normalize(x, 0.5, 0.25), (x / 255.0 - 0.5) / 0.25, atol=1e-6)


def test_augment_batch_is_its_ops_in_order_and_deterministic_per_key_under_jit():
    images, key = batch_of(16), jax.random.key(7)
    jitted = jax.jit(
        partial(D.augment_batch, ops=("crop", "flip", "cutout"), crop_padding=2, cutout_size=2)
    )
    out = jitted(key, images)
    assert out.shape == images.shape and out.dtype == jnp.uint8
    # Op j is applied with fold_in(key, j), one key per example: the eager chain agrees.
    x = D.per_example(partial(D.random_crop, padding=2), jax.random.fold_in(key, 0), images)
    x = D.per_example(D.random_flip, jax.random.fold_in(key, 1), x)
    x = D.per_example(partial(D.cutout, size=2), jax.random.fold_in(key, 2), x)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_array_equal(out, jitted(key, images))
    assert not np.array_equal(out, jitted(jax.random.key(8), images))
    # 16 copies of one image do not all come out alike: each example has its own key.
    assert len({np.asarray(e).tobytes() for e in out}) > 1
    np.testing.assert_array_equal(D.augment_batch(key, images, ()), images)


def test_ops_accept_legacy_uint32_keys():
    out = D.random_flip(jax.random.PRNGKey(0), jnp.asarray(IMAGE))
    assert out.shape == IMAGE.shape


def test_bad_arguments_raise_before_tracing():
    image, key = jnp.asarray(IMAGE), jax.random.key(0)
    with pytest.raises(ValueError, match=r"random_crop: `image` must be HWC \(3-D\), got shape"):
        D.random_crop(key, batch_of(2), padding=1)
    with pytest.raises(
        ValueError, match=r"random_crop: `padding` must be ints >= 0, got \(1, -1\)"
    ):
        D.random_crop(key, image, padding=(1, -1))
    with pytest.raises(ValueError, match=r"cutout: `size` must be an int >= 1, got 0"):
        D.cutout(key, image, size=0)
    with pytest.raises(ValueError, match=r"random_flip: `image` must be HWC"):
        D.random_flip(key, image[0])
    with pytest.raises(ValueError, match=r"augment_batch: unknown ops \['rotate'\]"):
        D.augment_batch(key, batch_of(2), ("crop", "rotate"))
    with pytest.raises(TypeError, match=r"augment_batch: `ops` must be a tuple"):
        D.augment_batch(key, batch_of(2), "crop")
    with pytest.raises(ValueError, match=r"augment_batch: .*'cutout' but `cutout_size` is None"):
        D.augment_batch(key, batch_of(2), ("cutout",))
    with pytest.raises(ValueError, match=r"augment_batch: `images` must be NHWC \(4-D\)"):
        D.augment_batch(key, image)
    with pytest.raises(TypeError, match=r"normalize: `images` must be uint8 .* got dtype float32"):
        D.normalize(jnp.zeros((2, 2), jnp.float32), 0.5, 0.5)
    with pytest.raises(ValueError, match=r"normalize: `std` must be > 0, got 0.0"):
        D.normalize(image, 0.5, 0.0)
