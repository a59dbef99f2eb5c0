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
from flax.linen.dtypes import promote_dtype

DType = Any
Initializer = Callable[..., jax.Array]
Padding = str | int | tuple

__all__ = ["DType", "Initializer", "Padding", "promote_dtype", "takes_train"]


def takes_train(layer) -> bool:
    """Whether calling `layer` accepts a ``train`` keyword argument."""
    try:
        return "train" in inspect.signature(layer).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False
