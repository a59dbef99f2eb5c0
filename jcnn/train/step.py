"""One jitted train step and one eval step.

Images arrive as ``uint8`` batches gathered on the device; augmentation and
normalisation run inside the step, so the host only sends indices.
"""

from __future__ import annotations

import functools
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


def augment_shard(
    key, images, ops, *, crop_padding: int, cutout_size: int | None, axis_name: str | None
):
    """`jcnn.data.augment_batch` of the global batch, computed on this device's shard.

    Without `axis_name` this is `augment_batch` itself. Inside ``shard_map`` or
    ``pmap`` over `axis_name`, `images` is device ``i``'s shard of a global
    batch of ``n * axis_size`` examples; example ``j`` of the shard gets the key
    that global example ``i * n + j`` gets from `augment_batch` (op ``k`` uses
    ``split(fold_in(key, k), n * axis_size)``), so the augmented global batch
    is the one a single device would make.
    """
    if axis_name is None:
        return augment.augment_batch(
            key, images, ops, crop_padding=crop_padding, cutout_size=cutout_size
        )
    # Same checks and op table as augment_batch, on a dummy batch of this shape.
    jax.eval_shape(
        lambda x: augment.augment_batch(
            key, x, ops, crop_padding=crop_padding, cutout_size=cutout_size
        ),
        images,
    )
    n = images.shape[0]
    first = jax.lax.axis_index(axis_name) * n
    transforms = {
        "crop": functools.partial(augment.random_crop, padding=crop_padding),
        "flip": augment.random_flip,
        "cutout": functools.partial(augment.cutout, size=cutout_size),
    }
    for k, op in enumerate(ops):
        keys = jax.random.split(jax.random.fold_in(key, k), n * jax.lax.axis_size(axis_name))
        keys = jax.lax.dynamic_slice_in_dim(keys, first, n)
        images = jax.vmap(transforms[op])(keys, images)
    return images


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
    skip_nonfinite: bool = False,
):
    """Returns ``step(state, images_u8, labels) -> (state, metrics)`` (not jitted).

    Besides ``loss``, ``accuracy`` and ``grad_norm`` the metrics carry
    `nonfinite_check`'s ``nonfinite`` code and ``nonfinite_leaf``, so the
    caller can name the first non-finite quantity of a step. With
    `skip_nonfinite` a step whose code is not 0 changes nothing but the step
    counter (the rule of ``optax.apply_if_finite``, extended to the BatchNorm
    statistics, which a non-finite batch would poison too) and reports
    ``skipped`` = 1.

    The step key ``fold_in(state.rng, state.step)`` is split into the
    augmentation key and the `dropout` rng collection. With `axis_name` the
    step is one device's program inside ``pmap`` or ``shard_map`` (the latter
    with ``check_vma=False``, see `jcnn.train.parallel`): the gradients and
    metrics are averaged over that axis, each example is augmented with its
    key in the global batch (`augment_shard`), the dropout key is folded with
    the device index, and the model's BatchNorm must reduce over the same
    axis (`jcnn.train.parallel.with_bn_axis`).
    """
    ops = tuple(augment_ops)

    def step(state: TrainState, images, labels):
        aug_key, dropout_key = jax.random.split(state.step_key())
        if ops:
            images = augment_shard(
                aug_key,
                images,
                ops,
                crop_padding=crop_padding,
                cutout_size=cutout_size,
                axis_name=axis_name,
            )
        if axis_name is not None:
            # Each device draws its own dropout masks (one device would draw
            # one mask for the global batch: same distribution, other bits).
            dropout_key = jax.random.fold_in(dropout_key, jax.lax.axis_index(axis_name))
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
        # From values every device shares (the averaged loss and gradients), so
        # the code is the same on all of them.
        check = nonfinite_check(metrics["loss"], grads, params, batch_stats, opt_state)
        if skip_nonfinite:
            ok = check["nonfinite"] == 0
            keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(ok, new, old))
            params = keep(params, state.params)
            opt_state = keep(opt_state, state.opt_state)
            batch_stats = keep(batch_stats, state.batch_stats)
            metrics["skipped"] = 1.0 - ok.astype(jnp.float32)
        metrics.update(check)
        new_state = state.replace(
            step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
        )
        return new_state, metrics

    return step


# What each `nonfinite` code names, in the order a step computes them.
NONFINITE = (
    "",
    "the loss",
    "the gradient of",
    "the updated parameter",
    "the BatchNorm statistic",
    "the optimiser state",
)


def float_leaves(tree) -> list:
    """The floating-point leaves of `tree` (an optimiser state's step counts are ints)."""
    return [leaf for leaf in jax.tree.leaves(tree) if jnp.issubdtype(leaf.dtype, jnp.inexact)]


def _first_bad_leaf(tree):
    """(any leaf has a NaN/Inf, index of the first such leaf in tree order or -1)."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.bool_(False), jnp.int32(-1)
    bad = jnp.stack([~jnp.all(jnp.isfinite(leaf)) for leaf in leaves])
    return jnp.any(bad), jnp.where(jnp.any(bad), jnp.argmax(bad), -1).astype(jnp.int32)


def nonfinite_check(loss, grads, params, batch_stats, opt_state=()) -> dict:
    """Which quantity of a step first went non-finite (NaN or Inf).

    Returns ``nonfinite``, an int32 index into `NONFINITE` (0: all finite;
    1 the loss, 2 a gradient, 3 an updated parameter, 4 a BatchNorm
    statistic, 5 a floating-point leaf of the optimiser state, e.g. Adam's
    second moment overflowing while gradient and parameters stay finite; the
    first that applies in this order), and ``nonfinite_leaf``, the index of
    the offending leaf in the tree order of `grads`/`params` (codes 2 and 3),
    `batch_stats` (code 4) or the floating-point leaves of `opt_state` (code
    5), else -1.
    """
    loss_bad = ~jnp.isfinite(loss)
    checks = [(loss_bad, jnp.int32(-1))] + [
        _first_bad_leaf(tree) for tree in (grads, params, batch_stats, float_leaves(opt_state))
    ]
    code, leaf = jnp.int32(0), jnp.int32(-1)
    for index, (bad, where) in reversed(list(enumerate(checks, start=1))):
        code = jnp.where(bad, index, code)
        leaf = jnp.where(bad, where, leaf)
    return {"nonfinite": code, "nonfinite_leaf": leaf}


def eval_logits(model, variables, x, *, flip_tta: bool = False):
    """Eval-mode float32 logits of a normalised batch; with `flip_tta` the mean
    over the batch and its mirror image (what ``jcnn eval`` reports)."""
    logits = model.apply(variables, x, train=False).astype(jnp.float32)
    if flip_tta:
        flipped = model.apply(variables, x[:, :, ::-1], train=False).astype(jnp.float32)
        logits = 0.5 * (logits + flipped)
    return logits


def make_eval_step(model, *, num_classes: int, mean: float, std: float, flip_tta: bool = False):
    """Returns ``eval_step(state, images_u8, labels, mask) -> sums`` (not jitted).

    The sums (``correct``, ``loss``, ``count``) cover the examples where
    `mask` is True, so padded eval batches count exactly once. With
    `flip_tta` the logits are the mean over the image and its mirror.
    """

    def eval_step(state: TrainState, images, labels, mask):
        x = augment.normalize(images, mean, std)
        logits = eval_logits(model, state.variables, x, flip_tta=flip_tta)
        targets = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
        losses = optax.softmax_cross_entropy(logits, targets)
        weight = mask.astype(jnp.float32)
        return {
            "correct": jnp.sum(weight * (jnp.argmax(logits, -1) == labels)),
            "loss": jnp.sum(weight * losses),
            "count": jnp.sum(weight),
        }

    return eval_step
