"""Each `jcnn.nn` module against its `jcnn.functional` op, its parameters and state.

Oracles: the functional op called directly on the module's (randomised)
parameters; float64 NumPy for BatchNorm's statistics; the initialisers'
documented distributions with 6-sigma bounds whose sample sizes are stated.
"""

from __future__ import annotations

import math

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcnn.functional as F
from jcnn import nn as jnn
from tests.util import normal, tol

KEY = jax.random.key(0, impl="rbg")  # rbg: cheaper XLA:CPU compiles than threefry


def randomized(variables, seed=1):
    """The same tree with standard-normal leaves, so that every parameter matters."""
    leaves, treedef = jax.tree.flatten(variables)
    new = [normal(leaf.shape, seed + i, leaf.dtype) for i, leaf in enumerate(leaves)]
    return jax.tree.unflatten(treedef, new)


def init_apply(module, x, seed=1, **kwargs):
    """(randomised params, module output on them)."""
    params = randomized(module.init(KEY, x, **kwargs).get("params", {}), seed)
    return params, module.apply({"params": params}, x, **kwargs)


X4 = normal((2, 7, 7, 4))

# (module, input, functional call on (x, params)); deterministic modules only.
CASES = {
    "conv_strided_grouped": (
        jnn.Conv2d(6, 3, stride=2, padding="SAME_SYMMETRIC", groups=2),
        X4,
        lambda x, p: F.conv2d(
            x, p["kernel"], p["bias"], stride=2, padding="SAME_SYMMETRIC", groups=2
        ),
    ),
    "conv_dilated_nobias": (
        jnn.Conv2d(3, (3, 2), dilation=2, padding="VALID", use_bias=False),
        X4,
        lambda x, p: F.conv2d(x, p["kernel"], dilation=2, padding="VALID"),
    ),
    "dense": (jnn.Dense(5), normal((3, 6)), lambda x, p: F.dense(x, p["kernel"], p["bias"])),
    "flatten": (jnn.Flatten(), X4, lambda x, p: F.flatten(x)),
    "group_norm": (
        jnn.GroupNorm(num_groups=2, eps=1e-3),
        X4,
        lambda x, p: F.group_norm(x, p["scale"], p["bias"], num_groups=2, eps=1e-3),
    ),
    "layer_norm": (
        jnn.LayerNorm(),
        X4,
        lambda x, p: F.layer_norm(x, p["scale"], p["bias"], eps=1e-5),
    ),
    "instance_norm": (
        jnn.InstanceNorm(),
        X4,
        lambda x, p: F.instance_norm(x, p["scale"], p["bias"], eps=1e-5),
    ),
    "sigmoid": (jnn.Sigmoid(), X4, lambda x, p: F.sigmoid(x)),
    "tanh": (jnn.Tanh(), X4, lambda x, p: F.tanh(x)),
    "relu": (jnn.ReLU(), X4, lambda x, p: F.relu(x)),
    "relu6": (jnn.ReLU6(), 4 * X4, lambda x, p: F.relu6(x)),
    "elu": (jnn.ELU(alpha=0.5), X4, lambda x, p: F.elu(x, 0.5)),
    "selu": (jnn.SELU(), X4, lambda x, p: F.selu(x)),
    "leaky_relu": (jnn.LeakyReLU(0.2), X4, lambda x, p: F.leaky_relu(x, 0.2)),
    "prelu": (jnn.PReLU(), X4, lambda x, p: F.prelu(x, p["slope"])),
    "swish": (jnn.Swish(), X4, lambda x, p: F.swish(x, p["beta"])),
    "maxout": (jnn.Maxout(2), X4, lambda x, p: F.maxout(x, 2)),
    "max_pool": (
        jnn.MaxPool2d(3, stride=2, padding=1),
        X4,
        lambda x, p: F.max_pool2d(x, 3, stride=2, padding=1),
    ),
    "avg_pool": (
        jnn.AvgPool2d(2, padding="SAME", count_include_pad=True),
        X4,
        lambda x, p: F.avg_pool2d(x, 2, padding="SAME", count_include_pad=True),
    ),
    "adaptive_avg": (jnn.AdaptiveAvgPool2d(3), X4, lambda x, p: F.adaptive_avg_pool2d(x, 3)),
    "adaptive_max": (
        jnn.AdaptiveMaxPool2d((2, 3)),
        X4,
        lambda x, p: F.adaptive_max_pool2d(x, (2, 3)),
    ),
    "global_avg": (jnn.GlobalAvgPool(), X4, lambda x, p: F.global_avg_pool(x)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_equals_its_functional_op(name):
    module, x, op = CASES[name]
    params, y = init_apply(module, x)
    expected = op(x, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(y, expected)
    np.testing.assert_allclose(y, expected, **tol(jnp.float32))


@pytest.mark.parametrize(
    "module,x,shapes",
    [
        (jnn.Conv2d(6, (3, 2), groups=2), X4, {"kernel": (3, 2, 2, 6), "bias": (6,)}),
        (jnn.Conv2d(6, use_bias=False), X4, {"kernel": (3, 3, 4, 6)}),
        (jnn.Dense(5), normal((3, 6)), {"kernel": (6, 5), "bias": (5,)}),
        (jnn.DropConnectDense(5), normal((3, 6)), {"kernel": (6, 5), "bias": (5,)}),
        (jnn.DropConnectConv2d(6, 1), X4, {"kernel": (1, 1, 4, 6), "bias": (6,)}),
        (jnn.GroupNorm(2), X4, {"scale": (4,), "bias": (4,)}),
        (jnn.PReLU(), X4, {"slope": (4,)}),
        (jnn.Swish(), X4, {"beta": ()}),
    ],
)
def test_parameter_shapes(module, x, shapes):
    kwargs = {"train": False} if "DropConnect" in type(module).__name__ else {}
    params = jax.eval_shape(lambda: module.init(KEY, x, **kwargs))["params"]
    assert {k: v.shape for k, v in params.items()} == shapes


@pytest.mark.parametrize(
    "module,in_channels,fan_in",
    # fan_in != fan_out in both (conv: 288 vs 1,152; dense: 128 vs 512), so a
    # fan_out or fan_avg default would fail.
    [(jnn.Conv2d(128, 3), 32, 3 * 3 * 32), (jnn.Dense(512), 128, 128)],
)
def test_kernel_default_is_he_normal_and_bias_zero(module, in_channels, fan_in):
    x = jnp.zeros((1, 5, 5, in_channels) if isinstance(module, jnn.Conv2d) else (1, in_channels))
    params = module.init(KEY, x)["params"]
    w = np.asarray(params["kernel"], np.float64).ravel()
    n, var = w.size, 2.0 / fan_in  # He et al. 2015: var = 2 / fan_in
    # n = 36,864 (conv) or 65,536 (dense). The sample mean has sd sqrt(var / n);
    # the sample variance, relative to var, has sd sqrt((kurtosis - 1) / n) <=
    # sqrt(2 / n) (a normal truncated at 2 sigma has kurtosis < 3): 6-sigma bounds.
    assert abs(w.mean()) < 6 * math.sqrt(var / n)
    assert abs(w.var() / var - 1) < 6 * math.sqrt(2 / n)
    np.testing.assert_array_equal(params["bias"], np.zeros(params["bias"].shape))


@pytest.mark.parametrize("module", [jnn.BatchNorm(), jnn.GroupNorm(2), jnn.LayerNorm()])
def test_norm_init_and_statistics_dtypes(module):
    bf16 = module.clone(param_dtype=jnp.bfloat16)
    kwargs = {"train": False} if isinstance(module, jnn.BatchNorm) else {}
    variables = bf16.init(KEY, X4, **kwargs)
    np.testing.assert_array_equal(variables["params"]["scale"], np.ones(4))
    np.testing.assert_array_equal(variables["params"]["bias"], np.zeros(4))
    assert variables["params"]["scale"].dtype == jnp.bfloat16
    if isinstance(module, jnn.BatchNorm):
        stats = variables["batch_stats"]
        np.testing.assert_array_equal(stats["mean"], np.zeros(4))
        np.testing.assert_array_equal(stats["var"], np.ones(4))
        assert stats["mean"].dtype == stats["var"].dtype == jnp.float32


def test_prelu_and_swish_initial_values():
    slope = jnn.PReLU().init(KEY, X4)["params"]["slope"]
    np.testing.assert_array_equal(slope, np.full(4, 0.25))  # He et al. 2015
    beta = jnn.Swish().init(KEY, X4)["params"]["beta"]
    np.testing.assert_array_equal(beta, np.float32(1.0))


# ------------------------------------------------------------ random layers ---

RANDOM = {
    "dropout": (jnn.Dropout(0.3), X4),
    "dropblock": (jnn.DropBlock(0.3, block_size=3, per_channel=True), X4),
    "disout": (jnn.Disout(0.3, block_size=2, alpha=0.5), X4),
    "dropconnect_dense": (jnn.DropConnectDense(5, rate=0.3), normal((3, 6))),
    "dropconnect_conv": (jnn.DropConnectConv2d(5, 3, rate=0.3), X4),
}


def _functional_with_key(name, module, key, x, params):
    if name == "dropout":
        return F.dropout(key, x, 0.3)
    if name == "dropblock":
        return F.dropblock(key, x, 0.3, block_size=3, per_channel=True)
    if name == "disout":
        return F.disout(key, x, 0.3, block_size=2, alpha=0.5)
    kernel = F.dropconnect(key, params["kernel"], 0.3)
    if name == "dropconnect_dense":
        return F.dense(x, kernel, params["bias"])
    return F.conv2d(x, kernel, params["bias"])


def _spy(monkeypatch, name):
    """Records the keys the module hands to its functional op."""
    op = "dropconnect" if name.startswith("dropconnect") else name
    real, keys = getattr(F, op), []

    def spy(key, *args, **kwargs):
        keys.append(key)
        return real(key, *args, **kwargs)

    monkeypatch.setattr(F, op, spy)
    return keys


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_layer_is_its_op_with_a_dropout_key(name, monkeypatch):
    module, x = RANDOM[name]
    variables = module.init(KEY, x, train=False)
    params = randomized(variables.get("params", {}))
    keys = _spy(monkeypatch, name)
    outs = [
        module.apply(
            {"params": params}, x, train=True, rngs={"dropout": jax.random.key(s, impl="rbg")}
        )
        for s in (1, 2)
    ]
    monkeypatch.undo()
    assert len(keys) == 2  # one draw per call
    for key, y in zip(keys, outs, strict=True):
        expected = _functional_with_key(name, module, key, x, params)
        np.testing.assert_allclose(y, expected, **tol(jnp.float32))
    assert not np.allclose(outs[0], outs[1])  # the key comes from the "dropout" rngs
    with pytest.raises(flax.errors.InvalidRngError, match='needs PRNG for "dropout"'):
        module.apply({"params": params}, x, train=True)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_layer_is_identity_in_eval_and_at_rate_zero(name):
    module, x = RANDOM[name]
    params = randomized(module.init(KEY, x, train=False).get("params", {}))
    if name.startswith("dropconnect"):
        plain = jnn.Dense(5) if name.endswith("dense") else jnn.Conv2d(5, 3)
        expected = plain.apply({"params": params}, x)
    else:
        expected = x
    for m, train in ((module, False), (module.clone(rate=0.0), True)):
        y = m.apply({"params": params}, x, train=train)  # no "dropout" rng needed
        np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_layer_checks_rate_and_train_in_eval_too(name):
    module, x = RANDOM[name]
    with pytest.raises(ValueError, match=r"`rate` must be in \[0, 1\).*got 1\.5"):
        module.clone(rate=1.5).init(KEY, x, train=False)
    with pytest.raises(TypeError, match=r"`train` must be a Python bool.*got 1"):
        module.init(KEY, x, train=1)


def test_block_regularisers_check_alpha_and_rank_in_eval_too():
    x = jnp.ones((2, 6, 6, 3))
    with pytest.raises(ValueError, match=r"Disout: `alpha` must be >= 0.*got -1\.0"):
        jnn.Disout(0.1, 3, -1.0).apply({}, x, train=False)
    for module in (jnn.Disout(0.1, 3), jnn.DropBlock(0.1, 3)):
        name = type(module).__name__
        message = rf"{name}: `x` must be NHWC \(4-D\), got shape \(2, 6\)"
        with pytest.raises(ValueError, match=message):
            module.apply({}, jnp.ones((2, 6)), train=False)


# ---------------------------------------------------------------- BatchNorm ---


def _bn_reference(x, scale, bias, mean, var, eps):
    x = np.asarray(x, np.float64)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(scale) + np.asarray(bias)


class TestBatchNorm:
    x = normal((4, 3, 3, 2)) * 2.0 + 3.0
    bn = jnn.BatchNorm(momentum=0.8, eps=1e-3)

    def variables(self):
        v = self.bn.init(KEY, self.x, train=True)
        # init keeps the initial statistics even with train=True
        np.testing.assert_array_equal(v["batch_stats"]["mean"], np.zeros(2))
        np.testing.assert_array_equal(v["batch_stats"]["var"], np.ones(2))
        return {
            "params": randomized(v["params"]),
            "batch_stats": {"mean": normal((2,), 7), "var": 1.0 + jnp.abs(normal((2,), 8))},
        }

    def test_train_mutable_updates_running_stats(self):
        v = self.variables()
        y, updated = self.bn.apply(v, self.x, train=True, mutable=["batch_stats"])
        xs = np.asarray(self.x, np.float64)
        mu, var = xs.mean(axis=(0, 1, 2)), xs.var(axis=(0, 1, 2))  # biased variance
        old = {k: np.asarray(a, np.float64) for k, a in v["batch_stats"].items()}
        p = v["params"]
        np.testing.assert_allclose(
            y, _bn_reference(xs, p["scale"], p["bias"], mu, var, 1e-3), rtol=1e-4, atol=1e-4
        )
        new = updated["batch_stats"]
        np.testing.assert_allclose(new["mean"], 0.8 * old["mean"] + 0.2 * mu, rtol=1e-5)
        np.testing.assert_allclose(new["var"], 0.8 * old["var"] + 0.2 * var, rtol=1e-5)
        assert new["mean"].dtype == new["var"].dtype == jnp.float32

    def test_eval_uses_running_stats_and_keeps_them(self):
        v = self.variables()
        y, updated = self.bn.apply(v, self.x, train=False, mutable=["batch_stats"])
        s, p = v["batch_stats"], v["params"]
        expected = _bn_reference(self.x, p["scale"], p["bias"], s["mean"], s["var"], 1e-3)
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
        chex.assert_trees_all_equal(updated["batch_stats"], s)

    def test_train_without_mutable_normalises_by_batch_and_writes_nothing(self):
        v = self.variables()
        y = self.bn.apply(v, self.x, train=True)  # no error, output only
        expected, _ = F.batch_norm(
            self.x,
            v["params"]["scale"],
            v["params"]["bias"],
            v["batch_stats"]["mean"],
            v["batch_stats"]["var"],
            train=True,
            momentum=0.8,
            eps=1e-3,
        )
        np.testing.assert_allclose(y, expected, **tol(jnp.float32))

    def test_rejects_non_bool_train(self):
        with pytest.raises(TypeError, match=r"BatchNorm: `train` must be a Python bool"):
            self.bn.init(KEY, self.x, train=None)


# ------------------------------------------------------------- Sequential ---


def test_sequential_passes_train_only_to_layers_that_take_it():
    seq = jnn.Sequential([jnn.Conv2d(4), jnn.BatchNorm(), jnn.ReLU(), jnn.Dropout(0.5)])
    v = seq.init(KEY, X4, train=False)
    p = v["params"]
    conv = F.conv2d(X4, p["layers_0"]["kernel"], p["layers_0"]["bias"])
    bn, _ = F.batch_norm(conv, jnp.ones(4), jnp.zeros(4), jnp.zeros(4), jnp.ones(4), train=False)
    np.testing.assert_allclose(seq.apply(v, X4, train=False), F.relu(bn), **tol(jnp.float32))
    y, _ = seq.apply(v, X4, train=True, rngs={"dropout": KEY}, mutable=["batch_stats"])
    assert (np.asarray(y) == 0).mean() > (np.asarray(F.relu(bn)) == 0).mean()  # dropout ran


def test_sequential_needs_train_only_when_a_layer_takes_it():
    plain = jnn.Sequential([jnn.Conv2d(4), jnn.ReLU()])
    plain.init(KEY, X4)  # no train needed
    with pytest.raises(ValueError, match=r"`layers\[1\]` \(Dropout\).*pass train=True"):
        jnn.Sequential([jnn.ReLU(), jnn.Dropout(0.5)]).init(KEY, X4)


# ------------------------------------------------------------- bad inputs ---


@pytest.mark.parametrize(
    "module,x,error,match",
    [
        (jnn.Conv2d(4, groups=3), X4, ValueError, r"Conv2d: `groups`=3 must divide the 4 input"),
        (jnn.Conv2d(4), normal((7, 7, 4)), ValueError, r"Conv2d: `x` must be NHWC \(4-D\)"),
        (jnn.Conv2d(0), X4, ValueError, r"Conv2d: `features` must be an int >= 1, got 0"),
        (jnn.Dense(2.5), X4, TypeError, r"Dense: `features` must be an int"),
        (jnn.GroupNorm(0), X4, ValueError, r"GroupNorm: `num_groups` must be an int >= 1"),
        (jnn.LayerNorm(), normal((4,)), ValueError, r"LayerNorm: `x` must have a batch and"),
        (jnn.Maxout(0), X4, ValueError, r"Maxout: `num_pieces` must be an int >= 1, got 0"),
        (jnn.DropBlock(0.1, 0), X4, ValueError, r"DropBlock: `block_size` must be an int >= 1"),
        (jnn.PReLU(slope_init="a"), X4, TypeError, r"PReLU: the initial value must be"),
        (jnn.PReLU(), jnp.float32(1.0), ValueError, r"PReLU: `x` must have a channel axis"),
        (jnn.Dense(3), jnp.float32(1.0), ValueError, r"Dense: `x` must have a feature axis"),
        (jnn.Sequential([]), X4, ValueError, r"Sequential: `layers` must be a non-empty list"),
        (jnn.Sequential([jnn.ReLU(), 3]), X4, TypeError, r"Sequential: `layers\[1\]` is not"),
    ],
)
def test_bad_configuration_raises_before_xla(module, x, error, match):
    kwargs = {"train": False} if isinstance(module, jnn.DropBlock) else {}
    with pytest.raises(error, match=match):
        module.init(KEY, x, **kwargs)
