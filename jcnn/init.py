r"""Parameter initialisers: functions ``(key, shape, dtype=jnp.float32) -> array``.

The signature of `jax.nn.initializers`, which Flax calls as
``self.param(name, init_fn, shape, dtype)``. `zeros` and `ones` are such
functions; everything else is a factory that returns one.

**Fans.** For a kernel of shape ``(..., in, out)`` -- a dense ``(in, out)``
or an HWIO conv ``(kh, kw, C_in, C_out)`` -- the receptive field is the
product of the leading axes, and (see `compute_fans`)

* ``fan_in  = receptive * in``   (dense: ``in``;  HWIO: ``kh * kw * C_in``),
* ``fan_out = receptive * out``  (dense: ``out``; HWIO: ``kh * kw * C_out``),
* ``fan_avg = (fan_in + fan_out) / 2``.

**Variance of each scheme**, times ``gain**2`` (`gain` multiplies the
standard deviation, as in PyTorch; ``gain = sqrt(2)`` turns LeCun into He):

==================  ==========================  ==============================
scheme              variance                    reference
==================  ==========================  ==============================
xavier / glorot     2 / (fan_in + fan_out)      Glorot & Bengio, AISTATS 2010
he / kaiming        2 / fan (fan_in default)    He et al., ICCV 2015
lecun               1 / fan (fan_in default)    LeCun et al., *Efficient
                                                BackProp*, 1998
==================  ==========================  ==============================

The ``*_uniform`` variants draw from ``U[-L, L]`` with ``L = sqrt(3 var)``.
The ``*_normal`` variants draw from a normal **truncated at two standard
deviations and rescaled** so that the variance is still exactly ``var`` (the
choice of Flax and Keras: it removes the rare large weights of a plain
normal without changing the variance the scheme is built on). PyTorch's
plain normal is available as ``variance_scaling(..., distribution="normal")``.

The same key gives the same array; all factories check their arguments when
called, and the returned initialiser checks `shape` and `dtype`.

References:
  Glorot & Bengio, *Understanding the difficulty of training deep
  feedforward neural networks*, AISTATS 2010.
  He, Zhang, Ren & Sun, *Delving Deep into Rectifiers*, ICCV 2015.
  LeCun, Bottou, Orr & Müller, *Efficient BackProp*, 1998.
  Saxe, McClelland & Ganguli, *Exact solutions to the nonlinear dynamics of
  learning in deep linear neural networks*, ICLR 2014 (orthogonal).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from jcnn.functional._checks import _is_int, check_floating, check_key

Initializer = Callable[..., jax.Array]

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")

# A standard normal truncated to [-2, 2] has variance
# 1 - 2 b phi(b) / (Phi(b) - Phi(-b)) at b = 2, i.e. std ~= 0.8796; dividing
# by it restores unit variance.
_TRUNCATION = 2.0
_TRUNCATED_STD = math.sqrt(
    1.0
    - 2.0
    * _TRUNCATION
    * math.exp(-0.5 * _TRUNCATION**2)
    / math.sqrt(2.0 * math.pi)
    / math.erf(_TRUNCATION / math.sqrt(2.0))
)


def _check_shape(shape, fn: str, *, min_ndim: int = 0) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or not all(_is_int(d) and d >= 0 for d in shape):
        raise TypeError(f"{fn}: `shape` must be a tuple of ints >= 0, got {shape!r}.")
    shape = tuple(int(d) for d in shape)
    if len(shape) < min_ndim:
        raise ValueError(
            f"{fn}: `shape` must have at least {min_ndim} axes (..., in, out) to define "
            f"fan-in and fan-out, got shape {shape}."
        )
    return shape


def _check_dtype(dtype, fn: str):
    check_floating(dtype, "dtype", fn)
    return dtype


def _check_nonnegative(value, name: str, fn: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(
            f"{fn}: `{name}` must be a Python float, got {value!r} ({type(value).__name__})."
        )
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{fn}: `{name}` must be a finite number >= 0, got {value!r}.")
    return float(value)


def compute_fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a kernel of shape ``(..., in, out)``.

    The leading axes are the receptive field: an HWIO kernel ``(kh, kw, I, O)``
    has ``(kh * kw * I, kh * kw * O)``; a dense ``(in, out)`` has ``(in, out)``.
    """
    shape = _check_shape(shape, "compute_fans", min_ndim=2)
    receptive = math.prod(shape[:-2])
    return receptive * shape[-2], receptive * shape[-1]


def zeros(key=None, shape=None, dtype=jnp.float32) -> jax.Array:
    """All zeros (biases, BN shift). `key` is unused.

    An initialiser itself, like ``jax.nn.initializers.zeros``: pass ``init.zeros``,
    not ``init.zeros()``.
    """
    del key
    fn = "zeros"
    if shape is None:
        raise TypeError(
            f"{fn}: missing `shape`. `init.zeros` is an initialiser (key, shape, dtype) "
            f"itself, not a factory like `init.he_normal()`: pass `init.zeros`, not "
            f"`init.zeros()`."
        )
    return jnp.zeros(_check_shape(shape, fn), _check_dtype(dtype, fn))


def ones(key=None, shape=None, dtype=jnp.float32) -> jax.Array:
    """All ones (BN scale). `key` is unused.

    An initialiser itself, like ``jax.nn.initializers.ones``: pass ``init.ones``,
    not ``init.ones()``.
    """
    del key
    fn = "ones"
    if shape is None:
        raise TypeError(
            f"{fn}: missing `shape`. `init.ones` is an initialiser (key, shape, dtype) "
            f"itself, not a factory like `init.he_normal()`: pass `init.ones`, not "
            f"`init.ones()`."
        )
    return jnp.ones(_check_shape(shape, fn), _check_dtype(dtype, fn))


def _sample(key, shape, dtype, distribution: str, std: float) -> jax.Array:
    """Zero-mean draws of standard deviation `std`."""
    if distribution == "truncated_normal":
        unit = jax.random.truncated_normal(key, -_TRUNCATION, _TRUNCATION, shape, dtype)
        return unit * jnp.asarray(std / _TRUNCATED_STD, dtype)
    if distribution == "normal":
        return jax.random.normal(key, shape, dtype) * jnp.asarray(std, dtype)
    limit = math.sqrt(3.0) * std
    return jax.random.uniform(key, shape, dtype, -limit, limit)


def normal(stddev=0.01) -> Initializer:
    """Plain normal :math:`N(0, stddev^2)`."""
    fn = "normal"
    stddev = _check_nonnegative(stddev, "stddev", fn)

    def init(key, shape, dtype=jnp.float32):
        shape, dtype = _check_shape(shape, fn), _check_dtype(dtype, fn)
        check_key(key, fn)
        return _sample(key, shape, dtype, "normal", stddev)

    return init


def truncated_normal(stddev=0.01) -> Initializer:
    """Normal truncated at ``±2`` standard deviations, rescaled so that its
    variance is ``stddev**2`` (values lie in ``±2 stddev / 0.8796``)."""
    fn = "truncated_normal"
    stddev = _check_nonnegative(stddev, "stddev", fn)

    def init(key, shape, dtype=jnp.float32):
        shape, dtype = _check_shape(shape, fn), _check_dtype(dtype, fn)
        check_key(key, fn)
        return _sample(key, shape, dtype, "truncated_normal", stddev)

    return init


def uniform(scale=0.01) -> Initializer:
    """Uniform on ``[-scale, scale]`` (variance ``scale**2 / 3``)."""
    fn = "uniform"
    scale = _check_nonnegative(scale, "scale", fn)

    def init(key, shape, dtype=jnp.float32):
        shape, dtype = _check_shape(shape, fn), _check_dtype(dtype, fn)
        check_key(key, fn)
        return jax.random.uniform(key, shape, dtype, -scale, scale)

    return init


def variance_scaling(scale, mode, distribution) -> Initializer:
    """Zero-mean draws of variance ``scale / fan`` (Keras/Flax meaning of `scale`).

    Args:
      scale: variance multiplier, >= 0.
      mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"`` (see `compute_fans`).
      distribution: ``"truncated_normal"`` (at 2 std, rescaled), ``"normal"``
        or ``"uniform"`` (``U[-sqrt(3 var), sqrt(3 var)]``).
    """
    return _variance_scaling(scale, mode, distribution, "variance_scaling")


def _variance_scaling(scale, mode, distribution, fn: str) -> Initializer:
    scale = _check_nonnegative(scale, "scale", fn)
    if mode not in MODES:
        raise ValueError(f"{fn}: `mode` must be one of {MODES}, got {mode!r}.")
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"{fn}: `distribution` must be one of {DISTRIBUTIONS}, got {distribution!r}."
        )

    def init(key, shape, dtype=jnp.float32):
        shape, dtype = _check_shape(shape, fn, min_ndim=2), _check_dtype(dtype, fn)
        check_key(key, fn)
        if math.prod(shape) == 0:
            return jnp.zeros(shape, dtype)
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        return _sample(key, shape, dtype, distribution, math.sqrt(scale / fan))

    return init


def _gain_scaling(gain, base: float, mode, distribution, fn: str) -> Initializer:
    gain = _check_nonnegative(gain, "gain", fn)
    return _variance_scaling(gain**2 * base, mode, distribution, fn)


def xavier_normal(gain=1.0) -> Initializer:
    """Glorot/Xavier: variance ``gain**2 * 2 / (fan_in + fan_out)``, truncated normal."""
    return _gain_scaling(gain, 1.0, "fan_avg", "truncated_normal", "xavier_normal")


def xavier_uniform(gain=1.0) -> Initializer:
    """Glorot/Xavier: ``U[-L, L]``, ``L = gain * sqrt(6 / (fan_in + fan_out))``."""
    return _gain_scaling(gain, 1.0, "fan_avg", "uniform", "xavier_uniform")


def he_normal(gain=1.0, mode="fan_in") -> Initializer:
    """He/Kaiming: variance ``gain**2 * 2 / fan``, truncated normal.

    ``mode="fan_out"`` preserves the variance of the backward pass instead.
    For a leaky ReLU of slope ``a`` use ``gain = 1 / sqrt(1 + a**2)``.
    """
    return _gain_scaling(gain, 2.0, mode, "truncated_normal", "he_normal")


def he_uniform(gain=1.0, mode="fan_in") -> Initializer:
    """He/Kaiming: ``U[-L, L]``, ``L = gain * sqrt(6 / fan)``."""
    return _gain_scaling(gain, 2.0, mode, "uniform", "he_uniform")


def lecun_normal(gain=1.0, mode="fan_in") -> Initializer:
    """LeCun: variance ``gain**2 / fan``, truncated normal (SELU's initialiser)."""
    return _gain_scaling(gain, 1.0, mode, "truncated_normal", "lecun_normal")


def lecun_uniform(gain=1.0, mode="fan_in") -> Initializer:
    """LeCun: ``U[-L, L]``, ``L = gain * sqrt(3 / fan)``."""
    return _gain_scaling(gain, 1.0, mode, "uniform", "lecun_uniform")


glorot_normal = xavier_normal
glorot_uniform = xavier_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform


def orthogonal(scale=1.0) -> Initializer:
    """A (semi-)orthogonal matrix times `scale`, drawn uniformly (Haar measure).

    The kernel is viewed as a matrix ``W`` of shape ``(prod(shape[:-1]),
    shape[-1])`` (for HWIO: ``(kh * kw * C_in, C_out)``). If it has at least as
    many rows as columns its columns are orthonormal, ``W^T W = scale**2 I``;
    otherwise its rows are, ``W W^T = scale**2 I``. Drawn as the Q of the QR
    decomposition of a Gaussian matrix, with the signs of ``diag(R)`` folded
    into Q so that the distribution is uniform.
    """
    fn = "orthogonal"
    scale = _check_nonnegative(scale, "scale", fn)

    def init(key, shape, dtype=jnp.float32):
        shape, dtype = _check_shape(shape, fn, min_ndim=2), _check_dtype(dtype, fn)
        check_key(key, fn)
        if math.prod(shape) == 0:
            return jnp.zeros(shape, dtype)
        n_rows, n_cols = math.prod(shape[:-1]), shape[-1]
        # QR is not implemented for low-precision floats; compute in >= float32.
        work = jnp.promote_types(dtype, jnp.float32)
        a = jax.random.normal(key, (max(n_rows, n_cols), min(n_rows, n_cols)), work)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(work)
        if n_rows < n_cols:
            q = q.T
        return (scale * q).reshape(shape).astype(dtype)

    return init
