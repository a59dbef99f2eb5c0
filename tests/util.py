"""Helpers shared by the tests: deterministic inputs and the tolerance table."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# Tolerances (rtol, atol) for comparing a jcnn result against a float64 NumPy
# reference. float32 accumulations over a few hundred terms stay within 1e-5
# relative; bf16 keeps 8 mantissa bits, so ~2^-8 relative error per rounding.
TOL = {
    jnp.float32: dict(rtol=1e-5, atol=1e-5),
    jnp.bfloat16: dict(rtol=2e-2, atol=2e-2),
}


def tol(dtype) -> dict:
    """The (rtol, atol) pair for comparing results of `dtype` with a float64 reference."""
    return TOL[jnp.dtype(dtype).type]


def normal(shape, seed: int = 0, dtype=jnp.float32) -> jnp.ndarray:
    """A standard-normal array from NumPy's generator (independent of jax.random)."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype=dtype)
