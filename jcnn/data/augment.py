"""Data augmentation as jittable functions of a PRNG key, run on the device.

Each op transforms ONE image ``(H, W, C)`` and is deterministic given its key;
`per_example` maps an op over a batch ``(N, H, W, C)`` with one key per
example (split from one key), and `augment_batch` chains ops for training.
Ops keep the dtype, so they run on the raw ``uint8`` pixels before
`normalize`; their zero fill is then black. Output shapes are static (crops
are `lax.dynamic_slice`), so everything works under `jit` and `vmap`.

References:
  Krizhevsky, Sutskever & Hinton, *ImageNet Classification with Deep
  Convolutional Neural Networks*, NeurIPS 2012 (random crops and flips).
  DeVries & Taylor, *Improved Regularization of Convolutional Neural
  Networks with Cutout*, arXiv:1708.04552, 2017.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from jcnn.functional._checks import check_key, check_ndim, pair

OPS = ("crop", "flip", "cutout")


def random_crop(key, image, *, padding):
    """Zero-pads `image` by `padding` on each side, then crops its original size back.

    The crop's top-left corner ``(oy, ox)`` in the padded image is uniform on
    ``{0..2 ph} x {0..2 pw}``, so ``y = pad(image)[oy:oy+H, ox:ox+W]``; the
    centre offset ``(ph, pw)`` returns `image` unchanged.

    Args:
      key: a PRNG key.
      image: ``(H, W, C)``, any dtype.
      padding: int or ``(ph, pw)``, >= 0.
    """
    fn = "random_crop"
    check_key(key, fn)
    check_ndim(image, 3, "image", fn, "HWC")
    return _random_crop(key, image, pair(padding, "padding", fn, minimum=0))


# The public ops check their static arguments, then call a jitted body: one compile per
# shape instead of one per primitive when called eagerly (e.g. under an eager vmap).
@partial(jax.jit, static_argnums=2)
def _random_crop(key, image, padding: tuple[int, int]):
    (ph, pw), (h, w, c) = padding, image.shape
    padded = jnp.pad(image, ((ph, ph), (pw, pw), (0, 0)))
    oy, ox = jax.random.randint(key, (2,), 0, jnp.array([2 * ph + 1, 2 * pw + 1]))
    return lax.dynamic_slice(padded, (oy, ox, 0), (h, w, c))


def random_flip(key, image):
    """Flips `image` ``(H, W, C)`` left-right (``image[:, ::-1]``) with probability 1/2."""
    check_key(key, "random_flip")
    check_ndim(image, 3, "image", "random_flip", "HWC")
    return _random_flip(key, image)


@jax.jit
def _random_flip(key, image):
    return jnp.where(jax.random.bernoulli(key), image[:, ::-1], image)


def cutout(key, image, *, size):
    """Zeros a ``size x size`` square of `image` ``(H, W, C)`` at a uniform random centre.

    The centre ``(cy, cx)`` is uniform over the pixels; the square covers rows
    ``[cy - sh // 2, cy - sh // 2 + sh)`` and columns likewise, clipped to the
    image, so near a border less than ``sh x sw`` is zeroed (as DeVries &
    Taylor, who found the partly-outside squares important). All channels are
    zeroed.

    Args:
      key: a PRNG key.
      image: ``(H, W, C)``, any dtype.
      size: int or ``(sh, sw)``, >= 1.
    """
    fn = "cutout"
    check_key(key, fn)
    check_ndim(image, 3, "image", fn, "HWC")
    return _cutout(key, image, pair(size, "size", fn))


@partial(jax.jit, static_argnums=2)
def _cutout(key, image, size: tuple[int, int]):
    (sh, sw), (h, w, _) = size, image.shape
    cy, cx = jax.random.randint(key, (2,), 0, jnp.array([h, w]))
    rows = jnp.arange(h) - (cy - sh // 2)
    cols = jnp.arange(w) - (cx - sw // 2)
    inside = ((rows >= 0) & (rows < sh))[:, None] & ((cols >= 0) & (cols < sw))[None, :]
    return jnp.where(inside[..., None], jnp.zeros((), image.dtype), image)


def normalize(images, mean, std):
    """Maps ``uint8`` pixels to float32 ``(x / 255 - mean) / std``.

    `mean` and `std` are in [0, 1] units (as `jcnn.data.pixel_stats` returns),
    scalars or per-channel ``(C,)``. Any shape of `images` works; the last
    axis is the channel axis.
    """
    fn = "normalize"
    if jnp.result_type(images) != jnp.uint8:
        raise TypeError(
            f"{fn}: `images` must be uint8 pixels in 0..255, got dtype "
            f"{jnp.result_type(images)}; normalise raw images only once."
        )
    if isinstance(std, numbers.Real) and not std > 0:
        raise ValueError(f"{fn}: `std` must be > 0, got {std!r}.")
    x = jnp.asarray(images, jnp.float32) / 255.0
    return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def per_example(op: Callable, key, images, **kwargs):
    """Applies ``op(key_i, images[i], **kwargs)`` to every example with its own key.

    The keys are ``jax.random.split(key, N)``, so example ``i`` of a batch
    gets the same transform however the batch is later sharded.
    """
    check_ndim(images, 4, "images", "per_example", "NHWC")
    keys = jax.random.split(key, images.shape[0])
    return jax.vmap(lambda k, x: op(k, x, **kwargs))(keys, images)


def augment_batch(
    key, images, ops: Sequence[str] = ("crop", "flip"), *, crop_padding=4, cutout_size=None
):
    """Applies `ops` in order to each example of `images` ``(N, H, W, C)``.

    Op ``j`` uses ``jax.random.fold_in(key, j)``, split per example by
    `per_example`. ``"crop"`` is `random_crop` with `crop_padding`, ``"flip"``
    is `random_flip`, ``"cutout"`` is `cutout` with `cutout_size` (required
    with it). An empty `ops` returns `images`.
    """
    fn = "augment_batch"
    check_key(key, fn)
    check_ndim(images, 4, "images", fn, "NHWC")
    if isinstance(ops, str) or not isinstance(ops, Sequence):
        raise TypeError(f"{fn}: `ops` must be a tuple of names from {OPS}, got {ops!r}.")
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ValueError(f"{fn}: unknown ops {unknown} in `ops`={tuple(ops)!r}; expected {OPS}.")
    if "cutout" in ops and cutout_size is None:
        raise ValueError(f"{fn}: `ops` contains 'cutout' but `cutout_size` is None; give a size.")
    transforms = {
        "crop": lambda k, x: per_example(random_crop, k, x, padding=crop_padding),
        "flip": lambda k, x: per_example(random_flip, k, x),
        "cutout": lambda k, x: per_example(cutout, k, x, size=cutout_size),
    }
    for j, op in enumerate(ops):
        images = transforms[op](jax.random.fold_in(key, j), images)
    return images
