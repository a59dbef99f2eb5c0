"""Every `jcnn.nn` layer through the same generic checks (after dm-haiku's
integration tests): jit, vmap, grad and bf16 compute.

One registry, `LAYERS`, lists each layer with a small input; adding a layer
there runs it through every check. Oracles are properties: vmap over
independent inputs equals separate calls; the gradient matches a central
finite difference along a random direction; bf16 compute keeps float32
parameters and stays within bf16 rounding of the float32 result.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcnn import nn as jnn
from tests.util import normal, tol

KEY = jax.random.key(0, impl="rbg")  # rbg: cheaper XLA:CPU compiles than threefry
DROPOUT_KEY = jax.random.key(1, impl="rbg")


@dataclasses.dataclass(frozen=True)
class Layer:
    make: Callable  # dtype -> module; dtype=None for the float32 layer
    shape: tuple[int, ...]
    train: bool | None = None  # None: the layer takes no `train`
    smooth_in_x: bool = True  # False: the gradient deliberately differs from a finite difference


def _with(cls, **kw):
    return lambda dtype: cls(dtype=dtype, **kw)


def _plain(cls, **kw):
    return lambda dtype: cls(**kw)


IMAGE = (2, 6, 6, 4)
LAYERS = {
    "Conv2d": Layer(_with(jnn.Conv2d, features=4, kernel_size=3, stride=2), IMAGE),
    "Conv2d_grouped": Layer(_with(jnn.Conv2d, features=6, groups=2, dilation=2), IMAGE),
    "Dense": Layer(_with(jnn.Dense, features=3), (2, 5)),
    "Flatten": Layer(_plain(jnn.Flatten), IMAGE),
    "BatchNorm_train": Layer(_with(jnn.BatchNorm), IMAGE, train=True),
    "BatchNorm_eval": Layer(_with(jnn.BatchNorm), IMAGE, train=False),
    "GroupNorm": Layer(_with(jnn.GroupNorm, num_groups=2), IMAGE),
    "LayerNorm": Layer(_with(jnn.LayerNorm), IMAGE),
    "InstanceNorm": Layer(_with(jnn.InstanceNorm), IMAGE),
    "Dropout": Layer(_plain(jnn.Dropout, rate=0.3), IMAGE, train=True),
    "DropBlock": Layer(_plain(jnn.DropBlock, rate=0.3, block_size=2), IMAGE, train=True),
    # Disout's noise scale is the input's standard deviation taken without
    # gradient (by design), so a finite difference sees a term grad does not.
    "Disout": Layer(
        _plain(jnn.Disout, rate=0.3, block_size=2, alpha=1.0), IMAGE, True, smooth_in_x=False
    ),
    "DropConnectDense": Layer(_with(jnn.DropConnectDense, features=3, rate=0.3), (2, 5), True),
    "DropConnectConv2d": Layer(_with(jnn.DropConnectConv2d, features=3, rate=0.3), IMAGE, True),
    "Sigmoid": Layer(_plain(jnn.Sigmoid), IMAGE),
    "Tanh": Layer(_plain(jnn.Tanh), IMAGE),
    "ReLU": Layer(_plain(jnn.ReLU), IMAGE),
    "ReLU6": Layer(_plain(jnn.ReLU6), IMAGE),
    "ELU": Layer(_plain(jnn.ELU), IMAGE),
    "SELU": Layer(_plain(jnn.SELU), IMAGE),
    "LeakyReLU": Layer(_plain(jnn.LeakyReLU), IMAGE),
    "PReLU": Layer(_with(jnn.PReLU), IMAGE),
    "Swish": Layer(_with(jnn.Swish), IMAGE),
    "Maxout": Layer(_plain(jnn.Maxout, num_pieces=2), IMAGE),
    "MaxPool2d": Layer(_plain(jnn.MaxPool2d, window=3, stride=2, padding=1), IMAGE),
    "AvgPool2d": Layer(_plain(jnn.AvgPool2d, window=2), IMAGE),
    "AdaptiveAvgPool2d": Layer(_plain(jnn.AdaptiveAvgPool2d, output_size=4), IMAGE),
    "AdaptiveMaxPool2d": Layer(_plain(jnn.AdaptiveMaxPool2d, output_size=3), IMAGE),
    "GlobalAvgPool": Layer(_plain(jnn.GlobalAvgPool), IMAGE),
    "Sequential": Layer(
        lambda dtype: jnn.Sequential(
            [jnn.Conv2d(4, dtype=dtype), jnn.BatchNorm(dtype=dtype), jnn.Tanh(), jnn.Dropout(0.2)]
        ),
        IMAGE,
        train=True,
    ),
}


def spaced(shape, seed=0):
    """Distinct values at least ``4 / size`` apart in (-2, 2), none within ``2 / size``
    of 0, in random order: a finite-difference step of 1e-3 along a direction of
    magnitude < 3 then crosses no kink of relu, max or maxout applied to them."""
    n = int(np.prod(shape))
    grid = (np.arange(n) + 0.5) * (4.0 / n) - 2.0
    return jnp.asarray(np.random.default_rng(seed).permutation(grid).reshape(shape), jnp.float32)


@functools.cache
def _setup(name, dtype=None):
    """(variables, jitted forward(variables, x), x) for the entry `name`, built once
    per process so that the tests share initialisation and compilation."""
    spec = LAYERS[name]
    module = spec.make(dtype)
    kwargs = {} if spec.train is None else {"train": spec.train}
    x = spaced(spec.shape)
    variables = module.init(KEY, x, **({} if spec.train is None else {"train": False}))

    def forward(variables, x):
        return module.apply(variables, x, rngs={"dropout": DROPOUT_KEY}, **kwargs)

    return variables, forward, jax.jit(forward), x


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_jit_and_vmap(name):
    variables, forward, single, x = _setup(name)
    x1 = spaced(x.shape, seed=5)
    batched = jax.jit(jax.vmap(forward, in_axes=(None, 0)))(variables, jnp.stack([x, x1]))
    for i, xi in enumerate((x, x1)):
        np.testing.assert_allclose(batched[i], single(variables, xi), **tol(jnp.float32))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_grad_matches_finite_difference(name):
    spec = LAYERS[name]
    variables, forward, _, x = _setup(name)
    weights = normal(jax.eval_shape(forward, variables, x).shape, seed=3)

    def loss(variables, x):
        return jnp.sum(forward(variables, x) * weights)

    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    _, grads = value_and_grad(variables, x)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    assert float(jnp.abs(grads[1]).sum()) > 0  # the input gets a gradient
    # Central difference along a random direction of (params, x). float32 with
    # eps = 1e-3: rounding error ~ |loss| * 1e-7 / eps ~ 1e-3, curvature error
    # ~ eps^2. The input is `spaced`, so the step crosses no kink of a layer
    # applied to it (the Sequential entry is smooth before its dropout).
    direction = jax.tree.map(lambda a: jnp.clip(normal(a.shape, seed=11), -3, 3), (variables, x))
    if not spec.smooth_in_x:
        direction = (direction[0], jnp.zeros_like(x))
    eps = 1e-3
    plus = jax.tree.map(lambda a, d: a + eps * d, (variables, x), direction)
    minus = jax.tree.map(lambda a, d: a - eps * d, (variables, x), direction)
    numeric = (value_and_grad(*plus)[0] - value_and_grad(*minus)[0]) / (2 * eps)
    analytic = sum(
        jnp.vdot(g, d) for g, d in zip(*map(jax.tree.leaves, (grads, direction)), strict=True)
    )
    np.testing.assert_allclose(numeric, analytic, rtol=1e-2, atol=2e-2)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_bf16_compute_keeps_float32_params(name):
    variables, _, forward, x = _setup(name)
    spec = LAYERS[name]
    module16 = spec.make(jnp.bfloat16)
    kwargs = {} if spec.train is None else {"train": False}
    x16 = x.astype(jnp.bfloat16)
    for leaf in jax.tree.leaves(jax.eval_shape(lambda: module16.init(KEY, x16, **kwargs))):
        assert leaf.dtype == jnp.float32
    kwargs = {} if spec.train is None else {"train": spec.train}
    y16 = jax.jit(lambda v, x: module16.apply(v, x, rngs={"dropout": DROPOUT_KEY}, **kwargs))(
        variables, x16
    )
    assert y16.dtype == jnp.bfloat16
    y32 = forward(variables, x)
    # bf16 keeps 8 significant bits: inputs, weights and outputs are each
    # rounded (2^-9 relative), and a conv sums up to 36 such products.
    np.testing.assert_allclose(y16.astype(jnp.float32), y32, rtol=3e-2, atol=3e-2)
