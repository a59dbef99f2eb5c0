"""Argument checks shared by the functional ops.

Every check runs at trace time on static Python values or array shapes, so a
bad call raises a `ValueError`/`TypeError` naming the function, the argument,
the value it got and what was expected, before XLA sees anything.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value, name: str, fn: str, *, minimum: int = 1) -> int:
    """Returns `value` as an int, checking it is an integer >= `minimum`."""
    if not _is_int(value):
        raise TypeError(f"{fn}: `{name}` must be an int, got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise ValueError(f"{fn}: `{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def pair(value, name: str, fn: str, *, minimum: int = 1) -> tuple[int, int]:
    """Normalises an int or a pair of ints to `(h, w)`, each >= `minimum`."""
    if _is_int(value):
        v = check_int(value, name, fn, minimum=minimum)
        return v, v
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        if all(_is_int(v) for v in value):
            if any(v < minimum for v in value):
                raise ValueError(f"{fn}: `{name}` must be ints >= {minimum}, got {tuple(value)!r}.")
            return int(value[0]), int(value[1])
    raise TypeError(f"{fn}: `{name}` must be an int or a pair of ints (h, w), got {value!r}.")


def check_ndim(x, ndim: int, name: str, fn: str, layout: str = "") -> None:
    """Checks that array `x` has `ndim` dimensions."""
    shape = np.shape(x)
    if len(shape) != ndim:
        what = f"{layout} ({ndim}-D)" if layout else f"{ndim}-D"
        raise ValueError(f"{fn}: `{name}` must be {what}, got shape {tuple(shape)}.")


def check_floating(x, name: str, fn: str) -> None:
    """Checks that array `x` has a floating-point dtype."""
    try:
        dtype = jnp.result_type(x)
    except TypeError:  # neither an array nor a dtype, e.g. "float8"
        raise TypeError(
            f"{fn}: `{name}` must be a floating-point array or dtype, got {x!r:.80}."
        ) from None
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{fn}: `{name}` must have a floating-point dtype, got {dtype}.")


def check_rate(rate, fn: str, name: str = "rate") -> float:
    """Checks a drop probability: a Python number in [0, 1)."""
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool):
        raise TypeError(
            f"{fn}: `{name}` must be a Python float in [0, 1) (the drop probability), "
            f"got {rate!r} ({type(rate).__name__})."
        )
    if not 0.0 <= float(rate) < 1.0:
        raise ValueError(f"{fn}: `{name}` must be in [0, 1) (the drop probability), got {rate!r}.")
    return float(rate)


def check_key(key, fn: str, name: str = "key") -> None:
    """Checks that `key` is one PRNG key: typed (``jax.random.key``) or raw uint32 (``PRNGKey``)."""
    dtype = getattr(key, "dtype", None)
    shape = tuple(np.shape(key)) if dtype is not None else None
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
        raise ValueError(
            f"{fn}: `{name}` must be a single PRNG key, got a key array of shape {shape}; "
            "index it or vmap over it."
        )
    if dtype == np.uint32 and len(shape) == 1:  # legacy raw key; jax checks its length
        return
    what = f"an array of shape {shape} and dtype {dtype}" if dtype is not None else repr(key)
    raise TypeError(f"{fn}: `{name}` must be a PRNG key such as jax.random.key(0), got {what}.")
