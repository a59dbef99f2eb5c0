"""Every model of the zoo: forward in evaluation and training mode, and one SGD step.

Small inputs keep it fast (XLA:CPU compilation dominates): 28x28x1 for the
Fashion-MNIST models, 32x32x3 for the others; the ImageNet models reach that
size through their global/adaptive pooling. One jitted program per model runs
the evaluation forward, the training forward and (see `GRAD_STEP`) the
backward pass and an SGD update.

Initialisation: every model is initialised for real by `test_init_draws_...`
only for the three small ones, because jitting `init` compiles one RNG call
per parameter (~15-45 s for the big models on two cores). The big models are
initialised with `jax.eval_shape(model.init)` -- the same model code, traced
-- and filled with He-scaled uniforms from NumPy; the initialisers themselves
are tested in tests/test_init.py and tests/nn.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jcnn import models
from tests.util import normal

KEY = jax.random.key(0, impl="rbg")  # rbg: cheaper XLA:CPU compiles than threefry
REAL_INIT = ("cnn_small", "lenet5", "resnet20")
# One gradient step per architecture family; the other models differ from one
# of these only in depth (VGG-11 vs -16, ResNet-18 vs -34, ResNet-20 vs -32/56)
# or in BN, and run forward in both modes: a backward pass triples the compile.
GRAD_STEP = ("cnn_small", "lenet5", "resnet18", "resnet20", "resnet50", "vgg11_bn")
NUM_CLASSES = 10


def input_shape(name):
    return (28, 28, 1) if name in ("lenet5", "cnn_small") else (32, 32, 3)


def synthesize(shapes, seed=0):
    """Variables of the given shapes: He-scaled kernels, unit scales and variances,
    zero biases and means."""
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            fan_in = math.prod(leaf.shape[:-1])
            # Uniform with He's variance 2 / fan_in: NumPy draws VGG's 138 M
            # float32 uniforms several times faster than normals.
            limit = np.float32(math.sqrt(3 * 2 / fan_in))
            w = (2 * rng.random(leaf.shape, dtype=np.float32) - 1) * limit
            return jnp.asarray(w, leaf.dtype)
        if name in ("scale", "var"):
            return jnp.ones(leaf.shape, leaf.dtype)
        if name in ("bias", "mean"):
            return jnp.zeros(leaf.shape, leaf.dtype)
        raise ValueError(f"no fill for {name!r}")

    return jax.tree_util.tree_map_with_path(fill, shapes)


@functools.cache
def setup(name):
    """(model, input batch, labels, variables), built once per model and process."""
    model = models.create(name, num_classes=NUM_CLASSES)
    x = normal((2, *input_shape(name)))
    init = functools.partial(model.init, train=False)
    if name in REAL_INIT:
        variables = jax.jit(init)(KEY, x)
    else:
        variables = synthesize(jax.eval_shape(init, KEY, x))
    return model, x, jnp.array([3, 7]), variables


def run_step(model, variables, x, labels, *, grad: bool):
    """Eval logits, then a training loss, its gradient and one SGD step (only the
    training loss if not `grad`), jitted together."""

    def loss_fn(params, state):
        logits, new_state = model.apply(
            {"params": params, **state},
            x,
            train=True,
            rngs={"dropout": KEY},
            mutable=["batch_stats"],
        )
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, new_state

    @jax.jit
    def step(variables):
        params = variables["params"]
        state = {k: v for k, v in variables.items() if k != "params"}
        eval_logits = model.apply(variables, x, train=False)
        if not grad:
            loss, new_state = loss_fn(params, state)
            all_finite = jnp.all(
                jnp.array([jnp.isfinite(a).all() for a in jax.tree.leaves(new_state)])
            )
            return eval_logits, loss, None, all_finite, new_state
        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state)
        new_params = jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)
        all_finite = jnp.all(
            jnp.array([jnp.isfinite(a).all() for a in jax.tree.leaves((new_params, new_state))])
        )
        return eval_logits, loss, optax.tree.norm(grads), all_finite, new_state

    return step(variables)


@pytest.mark.parametrize("name", models.available())
def test_model_forward_and_one_gradient_step(name):
    model, x, labels, variables = setup(name)
    grad = name in GRAD_STEP
    eval_logits, loss, grad_norm, all_finite, new_state = run_step(
        model, variables, x, labels, grad=grad
    )
    assert eval_logits.shape == (2, NUM_CLASSES) and eval_logits.dtype == jnp.float32
    assert bool(jnp.isfinite(eval_logits).all())
    assert np.isfinite(float(loss)) and float(loss) > 0
    if grad:
        assert np.isfinite(float(grad_norm)) and float(grad_norm) > 0
    assert bool(all_finite)  # updated parameters and batch statistics
    if "batch_stats" in variables:  # training mode wrote new running statistics
        old, new = variables["batch_stats"], new_state["batch_stats"]
        assert any(
            not np.allclose(a, b)
            for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new), strict=True)
        )


@pytest.mark.parametrize("name", REAL_INIT)
def test_init_draws_he_normal_kernels_and_identity_norms(name):
    variables = setup(name)[-1]
    flat = jax.tree_util.tree_flatten_with_path(variables)[0]
    kernels = [leaf for path, leaf in flat if path[-1].key == "kernel"]
    for path, leaf in flat:
        key = path[-1].key
        if key in ("scale", "var"):
            np.testing.assert_array_equal(leaf, np.ones(leaf.shape))
        elif key in ("bias", "mean"):
            np.testing.assert_array_equal(leaf, np.zeros(leaf.shape))
    # Pooled over the kernels, w / sqrt(2 / fan_in) is a unit-variance sample of
    # n >= 10,000 weights (61,706 - 216 biases for LeNet-5); its variance has
    # sd <= sqrt(2 / n) ~ 0.014: a 6-sigma bound of 0.085.
    unit = np.concatenate([np.ravel(k) / math.sqrt(2 / math.prod(k.shape[:-1])) for k in kernels])
    assert unit.size >= 10_000
    assert abs(unit.var() - 1) < 6 * math.sqrt(2 / unit.size)
