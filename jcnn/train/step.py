"""One jitted train step and one eval step.

Images arrive as ``uint8`` batches gathered on the device; augmentation and
normalisation run inside the step, so the host only sends indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

from jcnn.data import augment
from jcnn.train.state import TrainState


def cross_entropy(logits, labels, *, num_classes: int, label_smoothing: float = 0.0):
    """Mean softmax cross-entropy in float32, with optional label smoothing."""
    targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    if label_smoothing:
        targets = optax.smooth_labels(targets, label_smoothing)
    return optax.softmax_cross_entropy(logits.astype(jnp.float32), targets).mean()


def make_train_step(
    model,
    tx,
    *,
    num_classes: int,
    mean: float,
    std: float,
    augment_ops: Sequence[str] = (),
    crop_padding: int = 2,
    cutout_size: int | None = None,
    label_smoothing: float = 0.0,
    axis_name: str | None = None,
):
    """Returns ``step(state, images_u8, labels) -> (state, metrics)`` (not jitted).

    The step key ``fold_in(state.rng, state.step)`` is split into the
    augmentation key and the `dropout` rng collection. With `axis_name` the
    gradients and metrics are averaged over that mapped axis (for pmap and
    shard_map); the model's BatchNorm takes the same axis name itself.
    """
    ops = tuple(augment_ops)

    def step(state: TrainState, images, labels):
        aug_key, dropout_key = jax.random.split(state.step_key())
        if ops:
            images = augment.augment_batch(
                aug_key, images, ops, crop_padding=crop_padding, cutout_size=cutout_size
            )
        x = augment.normalize(images, mean, std)

        def loss_fn(params):
            variables = dict(state.variables, params=params)
            logits, updates = model.apply(
                variables, x, train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"]
            )
            loss = cross_entropy(
                logits, labels, num_classes=num_classes, label_smoothing=label_smoothing
            )
            return loss, (logits, updates.get("batch_stats", {}))

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params
        )
        if axis_name is not None:
            grads = jax.lax.pmean(grads, axis_name)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
            "grad_norm": optax.tree.norm(grads),
        }
        if axis_name is not None:
            metrics = jax.lax.pmean(metrics, axis_name)
        new_state = state.replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        return new_state, metrics

    return step


def make_eval_step(model, *, num_classes: int, mean: float, std: float, flip_tta: bool = False):
    """Returns ``eval_step(state, images_u8, labels, mask) -> sums`` (not jitted).

    The sums (``correct``, ``loss``, ``count``) cover the examples where
    `mask` is True, so padded eval batches count exactly once. With
    `flip_tta` the logits are the mean over the image and its mirror.
    """

    def eval_step(state: TrainState, images, labels, mask):
        x = augment.normalize(images, mean, std)
        logits = model.apply(state.variables, x, train=False).astype(jnp.float32)
        if flip_tta:
            flipped = model.apply(state.variables, x[:, :, ::-1], train=False)
            logits = 0.5 * (logits + flipped.astype(jnp.float32))
        targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
        losses = optax.softmax_cross_entropy(logits, targets)
        weight = mask.astype(jnp.float32)
        return {
            "correct": jnp.sum(weight * (jnp.argmax(logits, -1) == labels)),
            "loss": jnp.sum(weight * losses),
            "count": jnp.sum(weight),
        }

    return eval_step
