"""make_optimizer: updates against float64 loops of the documented update rules."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jcnn.optim import default_decay_mask, make_optimizer

# A quadratic f(w) = 1/2 w^T A w - b^T w on a 2x2 "kernel" (decayed by the
# default mask); its gradient is A w - b.
A = np.array(
    [[3.0, 0.5, 0.0, 0.0], [0.5, 2.0, 0.0, 0.2], [0.0, 0.0, 1.0, 0.0], [0.0, 0.2, 0.0, 0.5]]
)
B = np.array([1.0, -1.0, 0.5, 2.0])
W0 = np.array([0.3, -0.2, 0.8, 0.1])
STEPS = 5


def grad64(w):
    return A @ w - B


def run(cfg, steps=STEPS, *, steps_per_epoch=10, num_epochs=1):
    """`steps` jitted updates of the optimiser on the quadratic; the kernel, flattened."""
    opt = make_optimizer(cfg, steps_per_epoch=steps_per_epoch, num_epochs=num_epochs)
    a, b = jnp.asarray(A, jnp.float32), jnp.asarray(B, jnp.float32)

    def step(params, state):
        w = params["Dense_0"]["kernel"].reshape(-1)
        g = {"Dense_0": {"kernel": (a @ w - b).reshape(2, 2)}}
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    params = {"Dense_0": {"kernel": jnp.asarray(W0, jnp.float32).reshape(2, 2)}}
    state = opt.init(params)
    step = jax.jit(step)
    for _ in range(steps):
        params, state = step(params, state)
    return np.asarray(params["Dense_0"]["kernel"]).reshape(-1)


def warmup_cosine_lr(t, lr=0.1, init=0.02, warmup=2, total=10):
    if t < warmup:
        return init + (lr - init) * t / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))


def clipped(g, clip):
    """g scaled to global norm `clip` when it is longer (Pascanu et al. 2013)."""
    norm = float(np.sqrt(np.sum(g**2)))
    return g if clip is None or norm <= clip else g * (clip / norm)


def sgd_reference(momentum, nesterov, lr_at, wd=0.0, mode="l2", steps=STEPS, clip=None):
    """v = mu v + g; w -= lr_t v (Nesterov: w -= lr_t (g + mu v)); decay l2 or decoupled;
    the raw gradient clipped first."""
    w, v = W0.copy(), np.zeros_like(W0)
    for t in range(steps):
        g = clipped(grad64(w), clip) + (wd * w if mode == "l2" else 0.0)
        v = momentum * v + g
        direction = g + momentum * v if nesterov else v
        if mode == "decoupled":
            direction = direction + wd * w
        w = w - lr_at(t) * direction
    return w


def adam_reference(lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, mode="l2", steps=STEPS, clip=None):
    """Kingma & Ba, Algorithm 1; AdamW (Loshchilov & Hutter) adds lr * wd * w after;
    the raw gradient clipped first."""
    w, m, v = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for t in range(1, steps + 1):
        g = clipped(grad64(w), clip) + (wd * w if mode == "l2" else 0.0)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        direction = m_hat / (np.sqrt(v_hat) + eps)
        if mode == "decoupled":
            direction = direction + wd * w
        w = w - lr * direction
    return w


# float32 updates of O(1) numbers over 5 steps.
TOL = dict(rtol=1e-5, atol=1e-6)
WARMUP = dict(schedule="warmup_cosine", warmup_steps=2, init_lr=0.02)  # 10 steps in all


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_update_rule(nesterov):
    cfg = dict(name="sgd", lr=0.1, momentum=0.9, nesterov=nesterov, **WARMUP)
    expected = sgd_reference(0.9, nesterov, warmup_cosine_lr)
    np.testing.assert_allclose(run(cfg), expected, **TOL)


def test_plain_sgd_matches_update_rule():
    expected = sgd_reference(0.0, False, lambda t: 0.1)
    np.testing.assert_allclose(run(dict(name="sgd", lr=0.1)), expected, **TOL)


def test_adam_matches_kingma_ba():
    cfg = dict(name="adam", lr=0.01, b1=0.8, b2=0.99, eps=1e-6)
    np.testing.assert_allclose(run(cfg, 1), adam_reference(0.01, 0.8, 0.99, 1e-6, steps=1), **TOL)
    np.testing.assert_allclose(run(cfg), adam_reference(0.01, 0.8, 0.99, 1e-6), **TOL)


def test_adamw_matches_loshchilov_hutter():
    cfg = dict(name="adamw", lr=0.01, weight_decay=0.5)
    expected = adam_reference(0.01, wd=0.5, mode="decoupled")
    np.testing.assert_allclose(run(cfg), expected, **TOL)
    # adam with decoupled decay is adamw
    cfg = dict(name="adam", lr=0.01, weight_decay=0.5, weight_decay_mode="decoupled")
    np.testing.assert_allclose(run(cfg), expected, **TOL)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_l2_and_decoupled_decay_give_their_documented_updates(name):
    base = dict(name=name, lr=0.05, weight_decay=0.5)
    if name == "sgd":
        base["momentum"] = 0.9
        l2 = sgd_reference(0.9, False, lambda t: 0.05, wd=0.5, mode="l2")
        decoupled = sgd_reference(0.9, False, lambda t: 0.05, wd=0.5, mode="decoupled")
    else:
        l2 = adam_reference(0.05, wd=0.5, mode="l2")
        decoupled = adam_reference(0.05, wd=0.5, mode="decoupled")
    got_l2 = run(dict(base, weight_decay_mode="l2"))
    got_decoupled = run(dict(base, weight_decay_mode="decoupled"))
    np.testing.assert_allclose(got_l2, l2, **TOL)
    np.testing.assert_allclose(got_decoupled, decoupled, **TOL)
    assert np.abs(l2 - decoupled).max() > 1e-3  # the two modes really differ here


FLAX_PARAMS = {
    "Conv_0": {"kernel": jnp.ones((3, 3, 1, 2)), "bias": jnp.ones((2,))},
    "BatchNorm_0": {"scale": jnp.ones((2,)), "bias": jnp.ones((2,))},
    "Dense_0": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones((3,))},
    "Odd_0": {"kernel": jnp.ones((3,))},  # a 1-D "kernel" is not a conv/dense kernel
}


def test_default_mask_decays_conv_and_dense_kernels_only():
    assert default_decay_mask(FLAX_PARAMS) == {
        "Conv_0": {"kernel": True, "bias": False},
        "BatchNorm_0": {"scale": False, "bias": False},
        "Dense_0": {"kernel": True, "bias": False},
        "Odd_0": {"kernel": False},
    }


def decay_updates(cfg, **kwargs):
    """The update for a zero gradient: only weight decay acts, -lr * wd * w."""
    opt = make_optimizer(cfg, steps_per_epoch=1, num_epochs=1, **kwargs)
    zeros = jax.tree.map(jnp.zeros_like, FLAX_PARAMS)
    updates, _ = jax.jit(opt.update)(zeros, opt.init(FLAX_PARAMS), FLAX_PARAMS)
    return jax.tree.map(lambda u: np.abs(np.asarray(u)).max(), updates)


@pytest.mark.parametrize("mode", ["l2", "decoupled"])
def test_weight_decay_follows_the_mask(mode):
    cfg = dict(name="sgd", lr=0.5, weight_decay=0.1, weight_decay_mode=mode)
    decayed = 0.5 * 0.1  # lr * wd * |w| with w = 1
    updates = decay_updates(cfg)
    mask = default_decay_mask(FLAX_PARAMS)
    expected = jax.tree.map(lambda m: decayed if m else 0.0, mask)
    chex.assert_trees_all_close(updates, expected, rtol=1e-6)
    everything = decay_updates(dict(cfg, decay_norm_and_bias=True))
    chex.assert_trees_all_close(everything, jax.tree.map(lambda _: decayed, mask), rtol=1e-6)
    only_biases = decay_updates(
        cfg, decay_mask=lambda p: {k: {n: n == "bias" for n in v} for k, v in p.items()}
    )
    chex.assert_trees_all_close(only_biases["Conv_0"], {"kernel": 0.0, "bias": decayed}, rtol=1e-6)


def test_clip_by_global_norm_caps_the_norm():
    opt = make_optimizer(dict(name="sgd", lr=1.0, clip=1.0), steps_per_epoch=1, num_epochs=1)
    params = {"a": jnp.zeros(2), "b": jnp.zeros(1)}
    big = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # global norm 5
    update = jax.jit(opt.update)
    updates, _ = update(big, opt.init(params), params)
    np.testing.assert_allclose(updates["a"], [-0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(updates["b"], [-0.8], rtol=1e-6)
    norm = math.sqrt(sum(np.sum(np.asarray(u, np.float64) ** 2) for u in jax.tree.leaves(updates)))
    assert norm == pytest.approx(1.0, rel=1e-6)
    small = {"a": jnp.array([0.3, 0.0]), "b": jnp.array([0.4])}  # norm 0.5 < 1: untouched
    updates, _ = update(small, opt.init(params), params)
    np.testing.assert_allclose(updates["b"], [-0.4], rtol=1e-6)


@pytest.mark.parametrize(
    "cfg, reference",
    [
        (
            dict(name="adam", lr=0.1, clip=0.5, weight_decay=0.5),
            lambda: adam_reference(0.1, wd=0.5, clip=0.5),
        ),
        (
            dict(name="adamw", lr=0.1, clip=0.5, weight_decay=0.5),
            lambda: adam_reference(0.1, wd=0.5, mode="decoupled", clip=0.5),
        ),
        (
            dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True, clip=0.5, weight_decay=0.5),
            lambda: sgd_reference(0.9, True, lambda t: 0.1, wd=0.5, clip=0.5),
        ),
    ],
)
def test_clipping_acts_on_the_raw_gradient_before_decay_and_moments(cfg, reference):
    # The gradient's norm on this quadratic stays above 0.5 over the 5 steps, so every
    # step is clipped; clipping after the L2 term or after Adam's scaling differs.
    w = W0.copy()
    assert np.sqrt(np.sum(grad64(w) ** 2)) > 2 * 0.5
    np.testing.assert_allclose(run(cfg), reference(), **TOL)


# --- LARS: a kernel (adapted and decayed) and a bias (neither), float64 loop of
# You, Gitman & Ginsburg 2017, Algorithm 1, with the rate inside the momentum.
BIAS_TARGET = np.array([1.0, -2.0])
B0 = np.array([0.5, 0.25])


def lars_reference(lr_at, momentum, wd, eta, nesterov=False, steps=STEPS):
    w, b = W0.copy(), B0.copy()
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for t in range(steps):
        gw, gb = grad64(w), b - BIAS_TARGET
        local = eta * np.linalg.norm(w) / (np.linalg.norm(gw) + wd * np.linalg.norm(w))
        uw, ub = lr_at(t) * local * (gw + wd * w), lr_at(t) * gb
        vw, vb = momentum * vw + uw, momentum * vb + ub
        w = w - (uw + momentum * vw if nesterov else vw)
        b = b - (ub + momentum * vb if nesterov else vb)
    return w, b


def run_with_bias(cfg, steps=STEPS):
    opt = make_optimizer(cfg, steps_per_epoch=10, num_epochs=1)
    a, target = jnp.asarray(A, jnp.float32), jnp.asarray(BIAS_TARGET, jnp.float32)

    def step(params, state):
        w, b = params["Dense_0"]["kernel"].reshape(-1), params["Dense_0"]["bias"]
        g = {"Dense_0": {"kernel": (a @ w - jnp.asarray(B, jnp.float32)).reshape(2, 2)}}
        g["Dense_0"]["bias"] = b - target
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    params = {
        "Dense_0": {
            "kernel": jnp.asarray(W0, jnp.float32).reshape(2, 2),
            "bias": jnp.asarray(B0, jnp.float32),
        }
    }
    state = opt.init(params)
    step = jax.jit(step)
    for _ in range(steps):
        params, state = step(params, state)
    return (
        np.asarray(params["Dense_0"]["kernel"]).reshape(-1),
        np.asarray(params["Dense_0"]["bias"]),
    )


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_matches_the_papers_update_rule(nesterov):
    # eta = 0.5 (not 1e-3) so that 5 steps move the kernel well beyond float32 noise.
    cfg = dict(name="lars", lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.05,
               trust_coefficient=0.5, **WARMUP)  # fmt: skip
    w, b = run_with_bias(cfg)
    ref_w, ref_b = lars_reference(warmup_cosine_lr, 0.9, 0.05, 0.5, nesterov=nesterov)
    assert np.abs(ref_w - W0).max() > 1e-2  # the test would see a wrong step
    np.testing.assert_allclose(w, ref_w, **TOL)
    np.testing.assert_allclose(b, ref_b, **TOL)


def test_lars_trust_ratio_is_the_papers_not_optax():
    # With decay the paper's denominator |g| + wd|w| differs from |g + wd w|:
    # the first update's kernel step, over the rate, is the trust ratio times g + wd w.
    cfg = dict(name="lars", lr=1.0, momentum=0.0, weight_decay=0.5, trust_coefficient=0.1)
    w1, _ = run_with_bias(cfg, steps=1)
    g = grad64(W0) + 0.5 * W0
    paper = 0.1 * np.linalg.norm(W0) / (np.linalg.norm(grad64(W0)) + 0.5 * np.linalg.norm(W0))
    optax_ratio = 0.1 * np.linalg.norm(W0) / np.linalg.norm(g)
    assert abs(paper / optax_ratio - 1) > 0.05
    # w1 is float32 near 0.3: its rounding (3e-8) bounds the step's absolute error.
    np.testing.assert_allclose(W0 - w1, paper * g, rtol=1e-5, atol=1e-7)


def test_lars_rejects_decoupled_decay_and_a_bad_trust_coefficient():
    with pytest.raises(ValueError, match=r"'lars' puts the weight decay inside its trust ratio"):
        make_optimizer(
            dict(name="lars", lr=1.0, weight_decay=1e-4, weight_decay_mode="decoupled"),
            steps_per_epoch=1,
            num_epochs=1,
        )
    with pytest.raises(ValueError, match=r"`trust_coefficient` must be in \(0, inf\), got 0"):
        make_optimizer(
            dict(name="lars", lr=1.0, trust_coefficient=0), steps_per_epoch=1, num_epochs=1
        )


def test_accepts_config_dict():
    cfg = ml_collections.ConfigDict(
        dict(name="sgd", lr=0.1, momentum=0.9, nesterov=True, clip=None)
    )
    np.testing.assert_allclose(run(cfg), sgd_reference(0.9, True, lambda t: 0.1), **TOL)


BAD = [
    (
        dict(name="sgd", lr=-0.1),
        ValueError,
        r"make_optimizer: `lr` must be in \(0, inf\), got -0.1",
    ),
    (
        dict(name="sgd", lr=0.1, momentum=1.0),
        ValueError,
        r"`momentum` must be in \[0, 1\), got 1.0",
    ),
    (
        dict(name="sgd", lr=0.1, momentum=-0.1),
        ValueError,
        r"`momentum` must be in \[0, 1\), got -0.1",
    ),
    (
        dict(name="adamm", lr=0.1),
        ValueError,
        r"unknown optimizer 'adamm'; valid: 'sgd', 'adam', 'adamw', 'lars'\. Did you mean 'adam'\?",
    ),
    (dict(name="SGD", lr=0.1), ValueError, r"unknown optimizer 'SGD'.*Did you mean 'sgd'\?"),
    (dict(lr=0.1), ValueError, r"the config must set `name`"),
    (
        dict(name="sgd", lr=0.1, weight_decy=1e-4),
        ValueError,
        r"unknown config key 'weight_decy'\. Did you mean 'weight_decay'\?",
    ),
    (dict(name="sgd", lr=0.1, nesterov=True), ValueError, r"`nesterov`=True needs `momentum` > 0"),
    (
        dict(name="sgd", lr=0.1, momentum=0.9, nesterov="yes"),
        TypeError,
        r"`nesterov` must be True or False",
    ),
    (
        dict(name="adamw", lr=0.1, weight_decay=0.1, weight_decay_mode="l2"),
        ValueError,
        r"'adamw' is Adam with decoupled weight decay; for L2 decay use name='adam'",
    ),
    (
        dict(name="sgd", lr=0.1, weight_decay_mode="decoupld"),
        ValueError,
        r"unknown weight_decay_mode 'decoupld'.*Did you mean 'decoupled'\?",
    ),
    (
        dict(name="sgd", lr=0.1, weight_decay=-1e-4),
        ValueError,
        r"`weight_decay` must be in \[0, inf\)",
    ),
    (dict(name="adam", lr=0.1, b2=1.0), ValueError, r"`b2` must be in \[0, 1\), got 1.0"),
    (dict(name="adam", lr=0.1, eps=0.0), ValueError, r"`eps` must be in \(0, inf\), got 0.0"),
    (dict(name="sgd", lr=0.1, clip=0.0), ValueError, r"`clip` must be in \(0, inf\), got 0.0"),
    (
        dict(name="sgd", lr=0.1, schedule="cosin"),
        ValueError,
        r"make_optimizer: unknown schedule 'cosin'.*Did you mean 'cosine'\?",
    ),
]


@pytest.mark.parametrize(("cfg", "error", "match"), BAD)
def test_rejects_bad_config(cfg, error, match):
    with pytest.raises(error, match=match):
        make_optimizer(cfg, steps_per_epoch=10, num_epochs=1)


def test_rejects_a_mask_that_contradicts_decay_norm_and_bias():
    cfg = dict(name="sgd", lr=0.1, weight_decay=1e-4, decay_norm_and_bias=True)
    with pytest.raises(ValueError, match=r"`decay_norm_and_bias`=True decays every parameter"):
        make_optimizer(cfg, steps_per_epoch=1, num_epochs=1, decay_mask=default_decay_mask)
    with pytest.raises(TypeError, match=r"`decay_mask` must be a function"):
        make_optimizer(
            dict(cfg, decay_norm_and_bias=False), steps_per_epoch=1, num_epochs=1, decay_mask=True
        )
