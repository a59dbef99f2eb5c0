"""The training state: everything a step reads and writes, as one pytree."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
    """Parameters, BatchNorm statistics, optimiser state, step and PRNG key.

    `rng` is the run's base key as raw ``uint32`` key data (threefry), so a
    checkpoint stores it as a plain array; the key of step ``t`` is
    ``fold_in(rng, t)``, which makes a resumed run draw exactly the
    augmentations and dropout masks it would have drawn.
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array

    def step_key(self) -> jax.Array:
        """The typed PRNG key of the current step."""
        return jax.random.fold_in(jax.random.wrap_key_data(self.rng), self.step)

    @property
    def variables(self) -> dict:
        """The Flax variables for `model.apply`."""
        if self.batch_stats:
            return {"params": self.params, "batch_stats": self.batch_stats}
        return {"params": self.params}


def create_state(model, tx, key, input_shape) -> TrainState:
    """Initialises `model` on a zero batch of `input_shape` (H, W, C) and `tx` on its params."""
    init_key, run_key = jax.random.split(key)
    variables = model.init(
        {"params": init_key}, jnp.zeros((1, *input_shape), jnp.float32), train=False
    )
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
        rng=jax.random.key_data(run_key),
    )
