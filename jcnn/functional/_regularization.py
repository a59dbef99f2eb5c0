r"""Random regularisers: dropout, DropConnect, DropBlock and Disout.

Every function takes an explicit PRNG key and is deterministic given it.
`rate` is always the probability to *drop* (or, for Disout, to distort). It is
either a Python number in ``[0, 1)``, checked at trace time, or a scalar
floating JAX array, which may be traced: a jitted train step can then ramp the
rate with `linear_rate_schedule` without recompiling. A traced rate cannot be
checked (its value is unknown while tracing); outside ``[0, 1)`` the output is
meaningless. A Python ``rate == 0`` returns `x` itself and draws nothing; a
rate of 0 given as an array also returns `x`'s values exactly.

The block regularisers index a block by its top-left pixel: a block sampled
at ``(i, j)`` covers rows ``i .. i + b_h - 1`` and columns ``j .. j + b_w - 1``
and is only sampled where it fits, ``0 <= i <= H - b_h``, ``0 <= j <= W - b_w``,
so every block is exactly ``b_h x b_w`` and lies inside the map, for odd and
even sizes alike. With the centre pixel ``c = i + b // 2`` used by the papers'
code this is the span ``c - b // 2 .. c + (b - 1) // 2`` over the centres
``b // 2 <= c < H - (b - 1) // 2``. The block size is clamped to the map,
``b_h = min(block_size, H)``, ``b_w = min(block_size, W)``: a block at least as
large as the map has a single valid position along that axis, and one as large
as the whole map drops each (sample, channel) map whole with probability
`rate`.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jcnn.functional._checks import (
    check_floating,
    check_int,
    check_key,
    check_ndim,
    check_rate,
)

# ---------------------------------------------------------------- helpers ---


def _drop_rate(rate, fn: str):
    """A checked Python float, or a scalar floating array (possibly traced)."""
    if isinstance(rate, jax.Array | np.ndarray):
        dtype = jnp.result_type(rate)
        if jnp.ndim(rate) != 0 or not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{fn}: `rate` must be a Python float in [0, 1) or a scalar floating array "
                f"(the drop probability), got an array of shape {tuple(jnp.shape(rate))} "
                f"and dtype {dtype}."
            )
        if not isinstance(rate, jax.core.Tracer):
            check_rate(float(rate), fn)
        return rate
    return check_rate(rate, fn)


def _is_static_zero(rate) -> bool:
    return isinstance(rate, float) and rate == 0.0


def _block_size(block_size, x, fn: str) -> tuple[int, int]:
    size = check_int(block_size, "block_size", fn)
    return min(size, x.shape[1]), min(size, x.shape[2])


def _keep_mask(key, shape, rate, bh: int, bw: int):
    """Float32 keep-mask (1 keep, 0 drop) of `shape` ``(N, H, W, C')`` made of blocks.

    Block corners are Bernoulli(gamma) over the ``(H-bh+1) x (W-bw+1)`` valid
    positions; a pixel is dropped when any corner within ``bh - 1`` rows above
    and ``bw - 1`` columns left of it (itself included) was drawn: a stride-1
    max-pool of the corner map zero-padded by ``(bh-1, bw-1)`` on both sides,
    done separably (rows, then columns).
    """
    n, h, w, c = shape
    vh, vw = h - bh + 1, w - bw + 1
    gamma = jnp.asarray(rate, jnp.float32) * ((h * w) / (bh * bw * vh * vw))
    corners = jax.random.bernoulli(key, gamma, (n, vh, vw, c)).astype(jnp.float32)
    ones = (1, 1, 1, 1)
    zero = np.float32(0.0)  # a bare 0.0 is float64 under jax_enable_x64
    dropped = lax.reduce_window(
        corners, zero, lax.max, (1, bh, 1, 1), ones, ((0, 0), (bh - 1, bh - 1), (0, 0), (0, 0))
    )
    dropped = lax.reduce_window(
        dropped, zero, lax.max, (1, 1, bw, 1), ones, ((0, 0), (0, 0), (bw - 1, bw - 1), (0, 0))
    )
    return 1.0 - dropped


def _rescale(keep):
    """Per-sample ``units / kept`` for a keep-mask; ``units`` when all were dropped."""
    kept_fraction = jnp.mean(keep, axis=(1, 2, 3), keepdims=True)
    units = keep.shape[1] * keep.shape[2] * keep.shape[3]
    return 1.0 / jnp.maximum(kept_fraction, 1.0 / units)


def _inverted_dropout(key, x, rate):
    keep_prob = 1.0 - jnp.asarray(rate, jnp.float32)
    keep = jax.random.bernoulli(key, keep_prob, x.shape)
    # Divide in at least float32 (float64 for float64 `x`), then round once: a
    # bfloat16 1 - p (0.9 -> 0.8984) would bias E[y] by 0.17%.
    wide = jnp.promote_types(x.dtype, jnp.float32)
    if wide != jnp.float32:
        keep_prob = 1.0 - jnp.asarray(rate, wide)
    y = (x.astype(wide) / keep_prob).astype(x.dtype)
    return jnp.where(keep, y, jnp.zeros((), x.dtype))


# ----------------------------------------------------------------- public ---


def dropout(key, x, rate):
    r"""Inverted dropout: zero each element with probability `rate`, rescale the rest.

    .. math::
        y = \frac{m \odot x}{1 - p}, \qquad m_i \sim \mathrm{Bernoulli}(1 - p)
        \text{ independently},

    so :math:`\mathbb{E}[y] = x` and inference needs no rescaling (use `x`).
    The derivative is :math:`\partial y / \partial x = m / (1 - p)`.

    Args:
      key: PRNG key.
      x: floating array of any shape.
      rate: drop probability ``p`` in ``[0, 1)``, a Python number or a scalar
        (possibly traced) floating array.

    Returns:
      An array of `x`'s shape and dtype.

    References:
      Srivastava et al., "Dropout: A simple way to prevent neural networks from
      overfitting", JMLR 15, 2014.
    """
    fn = "dropout"
    check_floating(x, "x", fn)
    rate = _drop_rate(rate, fn)
    if _is_static_zero(rate):
        return x
    check_key(key, fn)
    return _inverted_dropout(key, x, rate)


def dropconnect(key, kernel, rate):
    r"""DropConnect: zero each *weight* with probability `rate`, rescale the rest.

    Returns the kernel to use in place of `kernel` for one training step,
    :math:`\tilde W = M \odot W / (1 - p)` with
    :math:`M_{ij} \sim \mathrm{Bernoulli}(1 - p)`, for a dense ``(in, out)``
    or a conv HWIO kernel. Dropping weights differs from dropping outputs:
    each output unit loses a different random subset of its inputs.

    Departures from the paper. Wan et al. draw a mask per training example
    and, at inference, approximate the network's expected output by moment
    matching a Gaussian over each unit's pre-activation and sampling it. We
    draw one mask per call (one per step, shared by the batch; `jax.vmap`
    over keys and examples gives per-example masks) and use inverted scaling
    so that :math:`\mathbb{E}[\tilde W] = W`: at inference the module uses
    the plain kernel, the common mean-kernel approximation. A bias is not
    dropped here; pass it through this function separately to drop it too.
    The derivative is :math:`\partial \tilde W / \partial W = M / (1 - p)`.

    Args:
      key: PRNG key.
      kernel: floating ``(in, out)`` or ``(kh, kw, in, out)`` weights.
      rate: drop probability ``p`` in ``[0, 1)``, a Python number or a scalar
        (possibly traced) floating array.

    References:
      Wan, Zeiler, Zhang, LeCun, Fergus, "Regularization of neural networks
      using DropConnect", ICML 2013.
    """
    fn = "dropconnect"
    if np.ndim(kernel) not in (2, 4):
        raise ValueError(
            f"{fn}: `kernel` must be a dense (in, out) or conv HWIO (kh, kw, in, out) kernel "
            f"(2-D or 4-D), got shape {tuple(np.shape(kernel))}."
        )
    check_floating(kernel, "kernel", fn)
    rate = _drop_rate(rate, fn)
    if _is_static_zero(rate):
        return kernel
    check_key(key, fn)
    return _inverted_dropout(key, kernel, rate)


def dropblock(key, x, rate, *, block_size, per_channel=False):
    r"""DropBlock: drop contiguous ``block_size x block_size`` squares of NHWC maps.

    Block corners are drawn Bernoulli(:math:`\gamma`) over the positions
    where a block fits (module docstring: top-left indexing, even sizes,
    clamping to the map), each expanded to a square of zeros, with

    .. math::
        \gamma = \frac{p}{b_h b_w} \cdot \frac{H W}{(H - b_h + 1)(W - b_w + 1)},
        \qquad y = x \odot M \cdot \frac{|M|}{\sum M},

    where ``M`` is the keep-mask and ``|M| / sum(M)`` is taken **per
    sample** (over ``H, W`` and the mask's channels), so a sample's output
    does not depend on the rest of the batch and data-parallel training needs
    no cross-device reduction; a sample whose map is dropped whole is all
    zeros. The authors' reference code normalises over the whole batch
    tensor instead. The rescale keeps each sample's mean of a constant input
    exactly; per pixel :math:`\mathbb{E}[y] \approx x` only, as border
    pixels are covered by fewer valid blocks.

    Expected dropped fraction: a pixel covered by ``k`` valid block
    positions is dropped with probability :math:`1 - (1 - \gamma)^k`; as
    blocks overlap, the mean over the map is somewhat below `rate` (the
    :math:`\gamma` formula counts block area without overlap).

    The paper ramps the rate linearly from 0 over training; see
    `linear_rate_schedule`, whose traced output can be passed as `rate`. The
    derivative is :math:`\partial y / \partial x = M \cdot |M| / \sum M`.

    Args:
      key: PRNG key.
      x: floating ``(N, H, W, C)``.
      rate: drop probability ``p`` in ``[0, 1)``, a Python number or a scalar
        (possibly traced) floating array.
      block_size: int >= 1, the side of the square block, clamped to the map.
      per_channel: draw an independent mask per channel (as the authors'
        reference code does) instead of one mask per sample shared by all
        channels.

    References:
      Ghiasi, Lin, Le, "DropBlock: A regularization method for convolutional
      networks", NeurIPS 2018.
    """
    fn = "dropblock"
    check_ndim(x, 4, "x", fn, "NHWC")
    check_floating(x, "x", fn)
    rate = _drop_rate(rate, fn)
    bh, bw = _block_size(block_size, x, fn)
    if _is_static_zero(rate):
        return x
    check_key(key, fn)
    n, h, w, c = x.shape
    keep = _keep_mask(key, (n, h, w, c if per_channel else 1), rate, bh, bw)
    return x * (keep * _rescale(keep)).astype(x.dtype)


def check_alpha(alpha, fn: str) -> float:
    """Disout's `alpha`: a Python number >= 0."""
    if not isinstance(alpha, numbers.Real) or isinstance(alpha, bool):
        raise TypeError(
            f"{fn}: `alpha` must be a Python number >= 0 (the distortion intensity), "
            f"got {alpha!r} ({type(alpha).__name__})."
        )
    if not alpha >= 0:
        raise ValueError(f"{fn}: `alpha` must be >= 0 (the distortion intensity), got {alpha!r}.")
    return float(alpha)


def disout(key, x, rate, *, block_size, alpha):
    r"""Disout: replace random blocks of NHWC maps with noise instead of zeros.

    Blocks are selected as in `dropblock` with an independent mask per
    channel (``M``, 1 = kept); the selected units take a random distortion
    value instead of 0, and everything is rescaled as in `dropblock`:

    .. math::
        y = \big(M \odot x + (1 - M) \odot \varepsilon\big) \cdot \frac{|M|}{\sum M},
        \qquad \varepsilon = \alpha\, \sigma\, z,\quad z \sim \mathcal{N}(0, I),

    where ``sigma`` is the standard deviation of the sample's ``x`` over
    ``(H, W, C)`` (population, ``ddof=0``), computed without gradient, and
    the rescale is per sample. So ``alpha = 0`` gives per-channel DropBlock,
    ``y`` is positively homogeneous in ``x`` (``disout(c x) = c disout(x)``
    for ``c > 0``), and :math:`\partial y / \partial x = M \cdot |M| / \sum M`.

    What the sources say, and where we depart. The paper replaces the
    selected elements with values derived from a generalisation bound on the
    empirical Rademacher complexity of the intermediate layers, which
    involves the next layer's weights. The authors' code (huawei-noah/Disout,
    built on the DropBlock reference code) draws per-channel block masks as
    here and sets the selected units to ``alpha * c * std(x) * N(0, 1)``,
    with ``std`` the unbiased standard deviation of the whole batch tensor
    (no gradient) and ``c`` either, from the next conv's kernel, the mean
    over its window of the largest weight over output channels, each given a
    random sign (one ``c`` per input channel; a further factor 0.1 when the
    next conv is 1x1) or, without that kernel, the constant 0.01; it then
    divides by the kept fraction of the whole batch tensor.
    Here:

    * ``c = 1``: a pure function does not see the next layer, and `alpha` is
      then plainly the noise scale in units of ``sigma``. The code's
      weight-free path with ``alpha = a`` is our ``alpha = 0.01 a``. Its
      published setting, ``alpha = 30`` times that ``c``, which for a
      He-initialised 3x3, 64-to-64-channel conv has an RMS of about 0.047,
      corresponds to our ``alpha`` of about 1.4 at initialisation.
    * ``sigma`` and the rescale are per sample (no coupling across the batch),
      and the rescale is guarded: a sample distorted whole is
      ``units * epsilon`` rather than a division by zero.
    * Even block sizes: the code's padded max-pool shifts even blocks one
      pixel down/right, so they never cover the first row/column and are cut
      at the last; ours lie fully inside the map (module docstring).
    * A block larger than the map: the code's ``gamma`` has a zero or negative
      count of valid positions; we clamp the block to the map.

    Args:
      key: PRNG key.
      x: floating ``(N, H, W, C)``.
      rate: distortion probability in ``[0, 1)``, a Python number or a scalar
        (possibly traced) floating array.
      block_size: int >= 1, the side of the square block, clamped to the map.
      alpha: Python number >= 0, the distortion intensity.

    References:
      Tang, Wang, Xu, Shi, Xu, Xu, Xu, "Beyond Dropout: Feature Map Distortion
      to Regularize Deep Neural Networks", AAAI 2020 (arXiv:2002.11022).
    """
    fn = "disout"
    check_ndim(x, 4, "x", fn, "NHWC")
    check_floating(x, "x", fn)
    rate = _drop_rate(rate, fn)
    bh, bw = _block_size(block_size, x, fn)
    check_alpha(alpha, fn)
    if _is_static_zero(rate):
        return x
    check_key(key, fn)
    mask_key, noise_key = jax.random.split(key)
    keep = _keep_mask(mask_key, x.shape, rate, bh, bw)
    # Statistics and noise in float32 (or wider), returned in x's dtype.
    compute = jnp.promote_types(x.dtype, jnp.float32)
    xc = x.astype(compute)
    sigma = lax.stop_gradient(jnp.std(xc, axis=(1, 2, 3), keepdims=True))
    noise = float(alpha) * sigma * jax.random.normal(noise_key, x.shape, compute)
    y = jnp.where(keep > 0, xc, noise) * _rescale(keep).astype(compute)
    return y.astype(x.dtype)


def linear_rate_schedule(final_rate, total_steps, *, start_rate=0.0):
    """A function ``step -> rate`` ramping linearly from `start_rate` to `final_rate`.

    ``rate(step) = start + (final - start) * clip(step / total_steps, 0, 1)``;
    DropBlock (and Disout's code) ramp from 0 to the final rate over training.
    A Python int step gives a Python float (a static rate: every distinct
    value compiles anew). In a jitted train step pass the traced step
    counter: the result is a float32 scalar that `dropout`, `dropconnect`,
    `dropblock` and `disout` accept as a traced `rate`, so one compilation
    serves the whole ramp.
    """
    fn = "linear_rate_schedule"
    final_rate = check_rate(final_rate, fn, "final_rate")
    start_rate = check_rate(start_rate, fn, "start_rate")
    total_steps = check_int(total_steps, "total_steps", fn)

    def schedule(step):
        if isinstance(step, numbers.Integral):
            fraction = min(max(int(step) / total_steps, 0.0), 1.0)
            return start_rate + (final_rate - start_rate) * fraction
        fraction = jnp.clip(jnp.asarray(step, jnp.float32) / total_steps, 0.0, 1.0)
        return start_rate + (final_rate - start_rate) * fraction

    return schedule
