r"""Learning-rate schedules built from a config, on optax's schedule functions.

Notation: :math:`\eta` is the configured peak rate ``lr``, :math:`t` the step
(the optimiser's update count, 0 for the first update), :math:`S` the steps
per epoch, :math:`T = S \cdot` ``num_epochs`` the total number of steps,
:math:`W` the warmup steps and :math:`\eta_f` the final rate.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Mapping

import optax

from jcnn.functional._checks import check_int
from jcnn.optim._config import choose, read_config, real

SCHEDULES = ("constant", "step", "exponential", "cosine", "warmup_cosine", "one_cycle")
_WARMUP_KEYS = ("warmup_epochs", "warmup_steps")


def make_schedule(cfg, *, steps_per_epoch: int, num_epochs: int) -> optax.Schedule:
    r"""The learning-rate schedule ``cfg.schedule`` (default ``"constant"``).

    Config keys, per schedule (``lr`` > 0 is always required):

    - ``constant``: :math:`\eta_t = \eta`.
    - ``step``: :math:`\eta_t = \eta\, d^{\,\#\{i:\ t \ge b_i\}}` with ``decay``
      :math:`d \in (0, 1)` (default 0.1) and boundaries given either as
      ``boundaries``, fractions of training in (0, 1) (:math:`b_i =
      \mathrm{round}(f_i T)`), or as ``boundary_epochs`` (:math:`b_i =
      \mathrm{round}(e_i S)`); e.g. ``boundaries=(0.5, 0.75)`` is He et al.'s
      0.1 -> 0.01 -> 0.001.
    - ``exponential``: :math:`\eta_t = \eta\, r^{t/S}` with ``decay_rate`` r
      per epoch in (0, 1], or :math:`\eta_t = \eta (\eta_f/\eta)^{t/T}` with
      ``final_lr`` :math:`\eta_f \in (0, \eta]` (exactly one of the two).
    - ``cosine``: :math:`\eta_t = \eta_f + (\eta - \eta_f)\tfrac12(1 + \cos(\pi
      t / T))`, to ``final_lr`` or to ``alpha * lr`` (default 0).
    - ``warmup_cosine``: linear warmup :math:`\eta_0 + (\eta - \eta_0) t / W`
      for :math:`t < W` from ``init_lr`` :math:`\eta_0` (default 0), then
      :math:`\eta_f + (\eta - \eta_f)\tfrac12(1 + \cos(\pi (t - W)/(T - W)))`.
      ``warmup_epochs`` (:math:`W = \mathrm{round}(\text{epochs} \cdot S)`) or
      ``warmup_steps`` sets :math:`W < T`; the rate reaches :math:`\eta` at
      :math:`t = W`.
    - ``one_cycle`` (Smith & Topin): from :math:`\eta/\text{div}` up to
      :math:`\eta` over :math:`W = \lfloor p\,T \rfloor` steps, then down to
      :math:`\eta / (\text{div} \cdot \text{final\_div})` at :math:`T`, with
      ``pct_start`` p (0.3), ``div_factor`` (25), ``final_div_factor`` (1e4).
      ``anneal="cos"`` (default; `optax.cosine_onecycle_schedule`, PyTorch's
      ``OneCycleLR`` default) interpolates both phases by half cosines,
      :math:`a + (b - a)\tfrac12(1 - \cos(\pi u))` for the phase fraction
      :math:`u`; ``anneal="linear"`` interpolates linearly, as in the paper.
      Momentum is not cycled. Like every schedule here (optax's convention), it
      reaches its end value at step :math:`T`, one step after the last update
      :math:`T - 1`; PyTorch's ``OneCycleLR`` reaches the peak at
      :math:`pT - 1` and the floor at :math:`T - 1`, one step earlier, so its
      rates lead these by one step (at most 3% of the peak on a 100-step run,
      0.3% on 1,000 steps).

    Warmup keys (``warmup_epochs``/``warmup_steps``) with a schedule other than
    ``warmup_cosine`` raise rather than being ignored: training without a
    warmup that the config asks for is a silent error no later check catches.

    Args:
      cfg: ConfigDict or Mapping with the keys above (see `make_optimizer`).
      steps_per_epoch: :math:`S` >= 1.
      num_epochs: number of epochs >= 1.

    Returns:
      An `optax.Schedule`: step -> learning rate (a scalar; sample many steps
      with ``jax.vmap``).

    References:
      He et al., "Deep Residual Learning for Image Recognition", CVPR 2016.
      Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm
      Restarts", ICLR 2017. Goyal et al., "Accurate, Large Minibatch SGD:
      Training ImageNet in 1 Hour", 2017 (linear warmup). Smith & Topin,
      "Super-Convergence", 2019.
    """
    return build_schedule(read_config(cfg, "make_schedule"), steps_per_epoch, num_epochs)


def build_schedule(c: Mapping, steps_per_epoch, num_epochs, fn: str = "make_schedule"):
    """`make_schedule` on a config already read by `read_config`; errors name `fn`."""
    spe = check_int(steps_per_epoch, "steps_per_epoch", fn)
    total = spe * check_int(num_epochs, "num_epochs", fn)
    name = schedule_name(c, fn)
    lr = real(c, "lr", fn, low=0.0, low_open=True)
    warmup = warmup_steps(c, spe, total, fn)
    if name == "constant":
        return optax.constant_schedule(lr)
    if name == "step":
        return _step(c, lr, spe, total, fn)
    if name == "exponential":
        return _exponential(c, lr, spe, total, fn)
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, total, alpha=_final_lr(c, lr, fn) / lr)
    if name == "warmup_cosine":
        init_lr = real(c, "init_lr", fn, default=0.0, low=0.0, high=lr)
        return optax.warmup_cosine_decay_schedule(
            init_lr, lr, warmup, total, end_value=_final_lr(c, lr, fn)
        )
    return _one_cycle(c, lr, warmup, total, fn)


def schedule_name(c: Mapping, fn: str) -> str:
    return choose(c.get("schedule", "constant"), SCHEDULES, "schedule", fn)


def warmup_steps(c: Mapping, steps_per_epoch: int, total: int, fn: str) -> int:
    """The number of steps before the peak: :math:`W` for warmup_cosine and one_cycle, else 0."""
    name = schedule_name(c, fn)
    if name == "one_cycle":
        _reject_warmup_keys(c, name, fn)
        pct = real(
            c, "pct_start", fn, default=0.3, low=0.0, high=1.0, low_open=True, high_open=True
        )
        steps = int(pct * total)  # optax's rounding in cosine_onecycle_schedule
        if not 1 <= steps < total:
            raise ValueError(
                f"{fn}: one_cycle's ramp-up int(pct_start * total_steps) = int({pct} * {total}) "
                f"= {steps} must be in [1, {total}); change `pct_start` or train longer."
            )
        return steps
    if name != "warmup_cosine":
        _reject_warmup_keys(c, name, fn)
        return 0
    if all(key in c for key in _WARMUP_KEYS):
        raise ValueError(f"{fn}: set `warmup_epochs` or `warmup_steps`, not both.")
    if "warmup_steps" in c:
        steps = check_int(c["warmup_steps"], "warmup_steps", fn, minimum=0)
    elif "warmup_epochs" in c:
        steps = round(real(c, "warmup_epochs", fn, low=0.0) * steps_per_epoch)
    else:
        raise ValueError(f"{fn}: schedule 'warmup_cosine' needs `warmup_epochs` or `warmup_steps`.")
    if steps >= total:
        raise ValueError(
            f"{fn}: the warmup ({steps} steps) must be shorter than training "
            f"({total} steps); the rate would never reach its peak."
        )
    return steps


def _reject_warmup_keys(c: Mapping, name: str, fn: str) -> None:
    for key in _WARMUP_KEYS:
        if c.get(key, 0) != 0:
            raise ValueError(
                f"{fn}: `{key}`={c[key]!r} is only used by schedule 'warmup_cosine', "
                f"but the schedule is {name!r}; use 'warmup_cosine' or remove `{key}`."
            )


def _final_lr(c: Mapping, lr: float, fn: str) -> float:
    if "final_lr" in c and "alpha" in c:
        raise ValueError(f"{fn}: set `final_lr` or `alpha` (final_lr = alpha * lr), not both.")
    if "alpha" in c:
        return lr * real(c, "alpha", fn, low=0.0, high=1.0)
    return real(c, "final_lr", fn, default=0.0, low=0.0, high=lr)


def _step(c: Mapping, lr: float, spe: int, total: int, fn: str):
    decay = real(c, "decay", fn, default=0.1, low=0.0, high=1.0, low_open=True, high_open=True)
    if ("boundaries" in c) == ("boundary_epochs" in c):
        raise ValueError(
            f"{fn}: schedule 'step' needs exactly one of `boundaries` (fractions of "
            f"training in (0, 1)) and `boundary_epochs` (epochs)."
        )
    key = "boundaries" if "boundaries" in c else "boundary_epochs"
    values = c[key]
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise TypeError(f"{fn}: `{key}` must be a non-empty sequence of numbers, got {values!r}.")
    values = tuple(values)  # also a list or a NumPy array
    if not values or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values
    ):
        raise TypeError(f"{fn}: `{key}` must be a non-empty sequence of numbers, got {values!r}.")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{fn}: `{key}` must be strictly increasing, got {tuple(values)}.")
    scale = total if key == "boundaries" else spe
    steps = [round(v * scale) for v in values]
    if not all(1 <= s < total for s in steps):
        unit = "fractions of training in (0, 1)" if key == "boundaries" else "epochs"
        raise ValueError(
            f"{fn}: `{key}` {tuple(values)} are at steps {steps}, but every boundary must fall "
            f"inside training, in [1, {total}); `{key}` are {unit}."
        )
    boundaries_and_scales: dict[int, float] = {}
    for s in steps:  # two boundaries rounding to one step decay twice there
        boundaries_and_scales[s] = boundaries_and_scales.get(s, 1.0) * decay
    return optax.piecewise_constant_schedule(lr, boundaries_and_scales)


def _exponential(c: Mapping, lr: float, spe: int, total: int, fn: str):
    if ("decay_rate" in c) == ("final_lr" in c):
        raise ValueError(
            f"{fn}: schedule 'exponential' needs exactly one of `decay_rate` (per epoch) "
            f"and `final_lr`."
        )
    if "decay_rate" in c:
        rate = real(c, "decay_rate", fn, low=0.0, high=1.0, low_open=True)
        return optax.exponential_decay(lr, transition_steps=spe, decay_rate=rate)
    final = real(c, "final_lr", fn, low=0.0, high=lr, low_open=True)
    return optax.exponential_decay(lr, transition_steps=total, decay_rate=final / lr)


def _one_cycle(c: Mapping, lr: float, warmup: int, total: int, fn: str):
    div = real(c, "div_factor", fn, default=25.0, low=1.0)
    final_div = real(c, "final_div_factor", fn, default=1e4, low=1.0)
    anneal = choose(c.get("anneal", "cos"), ("cos", "linear"), "one_cycle anneal", fn)
    # optax.cosine_onecycle_schedule's own construction, called directly so that
    # the ramp-up length is the `warmup` checked above (passing pct_start back
    # through int(pct * total) could round one step lower) and so that the
    # interpolation can be linear (optax.linear_onecycle_schedule is the
    # three-phase 2018 variant, not this one).
    return optax.piecewise_interpolate_schedule(
        "cosine" if anneal == "cos" else "linear",
        lr / div,
        {warmup: div, total: 1.0 / (div * final_div)},
    )
