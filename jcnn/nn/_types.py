"""Type aliases and the dtype rule shared by the modules of `jcnn.nn`.

Every parametric module has two dtypes: ``param_dtype`` (storage, float32 by
default, what the optimiser updates) and ``dtype`` (compute). Before its one
call into `jcnn.functional`, a module casts its input and parameters to
``dtype`` with `flax.linen.dtypes.promote_dtype`; ``dtype=None`` means the
promoted dtype of input and parameters (float32 for float32 parameters).
Normalisation statistics are float32 whatever the compute dtype.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax.linen import dtypes

DType = Any
Initializer = Callable[..., jax.Array]
Padding = str | int | tuple

__all__ = [
    "DType",
    "Initializer",
    "Padding",
    "check_initializers",
    "kernel_and_bias",
    "promote_dtype",
    "takes_train",
]


def promote_dtype(*args, dtype=None, fn: str = "jcnn.nn"):
    """`flax.linen.dtypes.promote_dtype`, after checking that `dtype` is None or floating."""
    if dtype is not None:
        try:
            ok = jnp.issubdtype(jnp.dtype(dtype), jnp.inexact)
        except TypeError:  # not a dtype at all, e.g. "float8"
            ok = False
        if not ok:
            raise TypeError(
                f"{fn}: `dtype` (the compute dtype) must be None or a floating dtype such as "
                f"jnp.bfloat16, got {dtype!r}."
            )
    return dtypes.promote_dtype(*args, dtype=dtype)


def kernel_and_bias(module, x, shape, fn: str):
    """``(x, kernel, bias)`` of a conv or dense module, in its compute dtype.

    Declares ``kernel`` of `shape` (``kernel_init``) and, with ``use_bias``,
    ``bias`` of ``shape[-1:]`` (``bias_init``), both in ``param_dtype``; bias is
    None without. Call it from the module's compact ``__call__``.
    """
    kernel = module.param("kernel", module.kernel_init, shape, module.param_dtype)
    bias = None
    if module.use_bias:
        bias = module.param("bias", module.bias_init, (shape[-1],), module.param_dtype)
    return promote_dtype(x, kernel, bias, dtype=module.dtype, fn=fn)


def check_initializers(module, fn: str, *names: str) -> None:
    """Checks that the module attributes `names` are initialisers (callables)."""
    for name in names:
        value = getattr(module, name)
        if not callable(value):
            raise TypeError(
                f"{fn}: `{name}` must be an initialiser (key, shape, dtype) -> array such as "
                f"jcnn.init.he_normal(), got {value!r}."
            )


def takes_train(layer) -> bool:
    """Whether calling `layer` accepts a ``train`` keyword argument."""
    try:
        return "train" in inspect.signature(layer).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
