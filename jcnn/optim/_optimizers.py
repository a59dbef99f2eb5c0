r"""Optimisers built from a config: one optax chain per run."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from jcnn.optim._config import choose, flag, read_config, real
from jcnn.optim._schedules import build_schedule

OPTIMIZERS = ("sgd", "adam", "adamw", "lars")
WEIGHT_DECAY_MODES = ("decoupled", "l2")


def default_decay_mask(params):
    """True for the leaves that weight decay applies to: conv and dense kernels.

    A leaf decays when its name (the last key of its path) is ``"kernel"`` and
    it has ``ndim >= 2``; biases, normalisation scales and offsets, PReLU
    slopes and Swish betas do not. This is the "no bias decay" rule of He et
    al. (2019): the few per-channel parameters do not overfit, and decaying a
    norm layer's scale pulls its output towards zero instead of regularising.

    References:
      He et al., "Bag of Tricks for Image Classification with Convolutional
      Neural Networks", CVPR 2019.
    """

    def decays(path, leaf) -> bool:
        if not path:
            return False
        last = path[-1]
        name = getattr(last, "key", getattr(last, "name", None))
        return name == "kernel" and getattr(leaf, "ndim", 0) >= 2

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(
    cfg,
    *,
    steps_per_epoch: int,
    num_epochs: int,
    decay_mask: Callable | None = None,
) -> optax.GradientTransformation:
    r"""An optax chain: clip, (L2 decay), SGD/Adam, (decoupled decay), -lr schedule
    (LARS: clip, trust ratio with its decay, -lr schedule, momentum).

    Config keys (`ml_collections.ConfigDict` or a Mapping; ``None`` = unset):

    - ``name``: ``"sgd"``, ``"adam"``, ``"adamw"`` or ``"lars"`` (required); ``lr`` > 0 and
      the schedule keys of `make_schedule`.
    - ``sgd``: ``momentum`` :math:`\mu \in [0, 1)` (default 0, plain SGD) and
      ``nesterov`` (default False; needs :math:`\mu > 0`). The update is
      optax's (and PyTorch's): :math:`v_t = \mu v_{t-1} + g_t`,
      :math:`\theta_t = \theta_{t-1} - \eta_t v_t`; Nesterov uses
      :math:`\theta_t = \theta_{t-1} - \eta_t (g_t + \mu v_t)`. Texts writing
      :math:`v_t = \mu v_{t-1} + \eta g_t` give the same steps only for a
      constant :math:`\eta` (here a rate change acts at once, not through v).
    - ``adam``/``adamw``: ``b1`` (0.9), ``b2`` (0.999), ``eps`` (1e-8), with
      :math:`m_t = b_1 m + (1-b_1) g`, :math:`v_t = b_2 v + (1-b_2) g^2`,
      :math:`\theta_t = \theta - \eta_t \hat m_t / (\sqrt{\hat v_t} + \epsilon)`
      and the bias corrections :math:`\hat m_t = m_t / (1 - b_1^t)`,
      :math:`\hat v_t = v_t / (1 - b_2^t)` (Kingma & Ba, Algorithm 1).
    - ``weight_decay`` :math:`\lambda \ge 0` (default 0) and
      ``weight_decay_mode``: ``"l2"`` adds :math:`\lambda\theta` to the
      gradient before momentum/Adam (classic SGD weight decay, the gradient of
      :math:`\tfrac{\lambda}{2}\|\theta\|^2`; Adam then rescales it per
      coordinate), ``"decoupled"`` adds it after, so :math:`\theta_t =
      \theta - \eta_t(u_t + \lambda\theta)` with :math:`u_t` the SGD/Adam
      direction (Loshchilov & Hutter's SGDW/AdamW). The decay is scaled by the
      full rate :math:`\eta_t` as in ``optax.adamw`` and ``torch.optim.AdamW``;
      the paper's Algorithm 2 scales it by the schedule multiplier only, so its
      :math:`\lambda` is ours times the base rate. Default mode: ``"decoupled"``
      for adamw, ``"l2"`` for sgd and adam; adamw with ``"l2"`` raises.
    - ``lars`` (You, Gitman & Ginsburg 2017, Algorithm 1): layer-wise rate
      scaling for large batches, with ``momentum`` (default 0.9), ``nesterov``,
      ``weight_decay`` :math:`\beta` and ``trust_coefficient`` :math:`\kappa`
      (default 0.001; the paper's :math:`\eta`). Per leaf (layer) that `decay_mask` selects,
      :math:`\lambda = \kappa \|\theta\| / (\|g\| + \beta\|\theta\|)`
      (1 where a norm is 0), :math:`v_t = \mu v_{t-1} + \eta_t \lambda (g +
      \beta\theta)`, :math:`\theta_t = \theta - v_t` (Nesterov: :math:`\theta
      - (\eta_t \lambda (g + \beta\theta) + \mu v_t)`); the other leaves
      (biases, norm parameters: no decay and no adaptation, the usual practice
      for BN networks) take :math:`\lambda = 1` and :math:`\beta = 0`. The
      denominator is the paper's, :math:`\|g\| + \beta\|\theta\|`;
      ``optax.lars`` divides by :math:`\|g + \beta\theta\|`. The rate
      :math:`\eta_t` enters the momentum buffer, as in the paper, so
      :math:`\eta_t` and :math:`\lambda` of earlier steps stay in it. The
      decay is part of the trust ratio: ``weight_decay_mode`` must stay "l2".
    - ``decay_norm_and_bias`` (default False): by default only the leaves
      chosen by `decay_mask` decay; True decays every parameter.
    - ``clip``: if set, ``optax.clip_by_global_norm(clip)`` runs first, on
      the raw gradient: :math:`g \leftarrow g \min(1, c / \|g\|_2)` with the
      norm over all leaves.

    Args:
      cfg: the optimiser config.
      steps_per_epoch: steps per epoch >= 1 (for the schedule).
      num_epochs: epochs >= 1 (for the schedule).
      decay_mask: ``params -> pytree of bool`` (True = decay), overriding
        `default_decay_mask` (conv/dense kernels only).

    Returns:
      An `optax.GradientTransformation`; its update needs ``params`` when
      weight decay is on.

    References:
      Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
      Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
      Sutskever et al., "On the importance of initialization and momentum in
      deep learning", ICML 2013. You, Gitman & Ginsburg, "Large Batch Training
      of Convolutional Networks", arXiv:1708.03888, 2017.
    """
    fn = "make_optimizer"
    c = read_config(cfg, fn)
    if "name" not in c:
        raise ValueError(f"{fn}: the config must set `name`, one of {OPTIMIZERS}.")
    name = choose(c["name"], OPTIMIZERS, "optimizer", fn)
    schedule = build_schedule(c, steps_per_epoch, num_epochs, fn)
    parts = []
    if "clip" in c:
        parts.append(optax.clip_by_global_norm(real(c, "clip", fn, low=0.0, low_open=True)))
    if name == "lars":
        return optax.chain(*parts, *_lars(c, schedule, decay_mask, fn))
    decay, mode = _weight_decay(c, name, decay_mask, fn)
    if decay is not None and mode == "l2":
        parts.append(decay)
    if name == "sgd":
        momentum, nesterov = _momentum(c, fn, default=0.0)
        if momentum > 0.0:
            parts.append(optax.trace(decay=momentum, nesterov=nesterov))
    else:
        b1 = real(c, "b1", fn, default=0.9, low=0.0, high=1.0, high_open=True)
        b2 = real(c, "b2", fn, default=0.999, low=0.0, high=1.0, high_open=True)
        eps = real(c, "eps", fn, default=1e-8, low=0.0, low_open=True)
        parts.append(optax.scale_by_adam(b1=b1, b2=b2, eps=eps))
    if decay is not None and mode == "decoupled":
        parts.append(decay)
    parts.append(optax.scale_by_learning_rate(schedule))
    return optax.chain(*parts)


def _weight_decay(c, name: str, decay_mask, fn: str):
    """The masked `add_decayed_weights` (None when the decay is 0) and its mode."""
    default_mode = "decoupled" if name == "adamw" else "l2"
    mode = choose(
        c.get("weight_decay_mode", default_mode), WEIGHT_DECAY_MODES, "weight_decay_mode", fn
    )
    if name == "adamw" and mode == "l2":
        raise ValueError(
            f"{fn}: 'adamw' is Adam with decoupled weight decay; for L2 decay use name='adam' "
            f"with weight_decay_mode='l2'."
        )
    everything = flag(c, "decay_norm_and_bias", fn, default=False)
    if everything and decay_mask is not None:
        raise ValueError(
            f"{fn}: `decay_norm_and_bias`=True decays every parameter, which contradicts the "
            f"`decay_mask` given; pass one or the other."
        )
    if decay_mask is not None and not callable(decay_mask):
        raise TypeError(
            f"{fn}: `decay_mask` must be a function params -> bool pytree, got {decay_mask!r}."
        )
    weight_decay = real(c, "weight_decay", fn, default=0.0, low=0.0)
    if weight_decay == 0.0:
        return None, mode
    mask = None if everything else (decay_mask or default_decay_mask)
    return optax.add_decayed_weights(weight_decay, mask=mask), mode


def _momentum(c, fn: str, *, default: float) -> tuple[float, bool]:
    """``momentum`` in [0, 1) and ``nesterov`` (which needs momentum > 0)."""
    momentum = real(c, "momentum", fn, default=default, low=0.0, high=1.0, high_open=True)
    nesterov = flag(c, "nesterov", fn, default=False)
    if nesterov and momentum == 0.0:
        raise ValueError(f"{fn}: `nesterov`=True needs `momentum` > 0, got momentum=0.")
    return momentum, nesterov


def _lars(c, schedule, decay_mask, fn: str) -> list:
    """The LARS part of the chain: trust ratio, rate, then momentum (see `make_optimizer`)."""
    if c.get("weight_decay_mode", "l2") != "l2":
        raise ValueError(
            f"{fn}: 'lars' puts the weight decay inside its trust ratio; "
            f"`weight_decay_mode` must be 'l2', got {c['weight_decay_mode']!r}."
        )
    _weight_decay(c, "lars", decay_mask, fn)  # the mask and flag checks
    everything = flag(c, "decay_norm_and_bias", fn, default=False)
    mask = (lambda p: jax.tree.map(lambda _: True, p)) if everything else decay_mask
    momentum, nesterov = _momentum(c, fn, default=0.9)
    return [
        scale_by_lars(
            weight_decay=real(c, "weight_decay", fn, default=0.0, low=0.0),
            trust_coefficient=real(
                c, "trust_coefficient", fn, default=1e-3, low=0.0, low_open=True
            ),
            mask=mask or default_decay_mask,
        ),
        optax.scale_by_learning_rate(schedule),
        optax.trace(decay=momentum, nesterov=nesterov),
    ]


def scale_by_lars(
    *, weight_decay: float, trust_coefficient: float, mask: Callable = default_decay_mask
) -> optax.GradientTransformation:
    r"""LARS's layer-wise step: :math:`g \leftarrow \lambda (g + \beta\theta)` with
    :math:`\lambda = \kappa \|\theta\| / (\|g\| + \beta\|\theta\|)` per leaf
    where ``mask(params)`` is True (1 where a norm is 0), `g` unchanged elsewhere.

    Norms are Frobenius norms of each leaf, in float32 or wider. Needs ``params``.
    """

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("scale_by_lars: the update needs `params` (the trust ratio).")

        def one(g, w, adapt):
            if not adapt:
                return g
            wide = jnp.promote_types(g.dtype, jnp.float32)
            w_norm = jnp.linalg.norm(w.astype(wide).ravel())
            g_norm = jnp.linalg.norm(g.astype(wide).ravel())
            denominator = g_norm + weight_decay * w_norm
            ratio = jnp.where(
                (w_norm > 0) & (denominator > 0),
                trust_coefficient * w_norm / jnp.where(denominator > 0, denominator, 1.0),
                1.0,
            )
            return (ratio * (g.astype(wide) + weight_decay * w.astype(wide))).astype(g.dtype)

        return jax.tree.map(one, updates, params, mask(params)), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
