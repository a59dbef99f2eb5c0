"""Checks of a learning-rate schedule before training, and its one-line summary."""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jcnn.functional._checks import check_int
from jcnn.optim._config import read_config, real
from jcnn.optim._schedules import build_schedule, schedule_name, warmup_steps

# Relative tolerance of the comparisons below: float32 rounding of a schedule's
# arithmetic is ~1e-7 relative, so e.g. 0.1 * 0.1 * 0.1 (two 10x steps) may land
# just above 0.001 and must still count as a 100x decay.
RTOL = 1e-3
# The 100x rule: the last rate should be at most 1/100 of the peak.
MIN_DECAY = 100.0
# Runs of at most this many epochs are exempt from the 100x rule (smoke runs,
# fine-tuning); it needs `steps_per_epoch`.
MIN_EPOCHS_FOR_DECAY_RULE = 3


class ScheduleWarning(UserWarning):
    """A learning-rate schedule that trains, but against established practice."""


@dataclasses.dataclass(frozen=True)
class ScheduleReport:
    """What a schedule does over ``total_steps`` updates (steps 0 .. total_steps - 1)."""

    name: str
    total_steps: int
    warmup_steps: int
    initial_lr: float  # at step 0
    peak_lr: float  # the largest rate over the run
    # The first step at which the float32 rates reach their largest value; a
    # cosine ramp (one_cycle) rounds to the peak a few steps before its end.
    peak_step: int
    final_lr: float  # at step total_steps - 1, the last update
    # At step total_steps, where a schedule built for total_steps updates ends
    # (optax's convention: one step after the last update); None: `final_lr`.
    end_lr: float | None = None

    @property
    def final_over_peak(self) -> float:
        return self.final_lr / self.peak_lr

    @property
    def end_over_peak(self) -> float:
        """What the 100x rule measures: the rate the schedule ends at, over the peak."""
        return (self.final_lr if self.end_lr is None else self.end_lr) / self.peak_lr

    def describe(self) -> str:
        """The one-line summary, e.g. ``lr schedule: warmup_cosine peak 0.1 at step 500
        (warmup 500), final 1e-4 (final/peak 1.0e-03, 1000x decay) over 23,400 steps``."""
        warmup = f" (warmup {self.warmup_steps:,})" if self.warmup_steps else ""
        ratio = self.final_over_peak
        if self.final_lr == 0.0:
            decay = "decays to 0"
        elif ratio >= 1.0:
            decay = "no decay"
        else:
            factor = 1.0 / ratio
            decay = f"{factor:.0f}x decay" if factor >= 100 else f"{factor:.3g}x decay"
        return (
            f"lr schedule: {self.name} peak {_fmt(self.peak_lr)} at step {self.peak_step:,}"
            f"{warmup}, final {_fmt(self.final_lr)} (final/peak {ratio:.1e}, {decay}) "
            f"over {self.total_steps:,} steps"
        )

    __str__ = describe


def _fmt(x: float) -> str:
    """A rate in 3 significant digits: ``0.1``, ``0.00316``, ``1e-4``, ``2.5e-5``."""
    if x == 0.0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.2e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def check_schedule(
    schedule,
    total_steps: int,
    *,
    warmup_steps: int = 0,
    steps_per_epoch: int | None = None,
    peak_lr: float | None = None,
    name: str = "schedule",
) -> ScheduleReport:
    """Samples `schedule` at every step of a run and checks it before training.

    The schedule is evaluated at steps ``0 .. total_steps - 1`` in one
    vectorised, jitted call (``jax.vmap``), as float32 like in training; 1e6
    steps take well under a second.

    Raises ``ValueError`` when a rate is NaN or infinite, a rate is negative,
    the peak is not positive, ``warmup_steps >= total_steps``, or the warmup
    does not reach the peak: the rate at step ``warmup_steps`` (the first step
    after a linear warmup of that length) is below the peak by more than a
    relative ``RTOL``. The peak is `peak_lr` when given (the configured
    rate), else the largest sampled rate.

    Warns (`ScheduleWarning`) when the rate does not decay at least 100x by
    the end of the run and the run is longer than 3 epochs: the rate at step
    ``total_steps``, where a schedule of that many updates ends (e.g. a cosine
    to ``lr / 100``), over the peak is above 0.01 by more than ``RTOL``. The
    last update, step ``total_steps - 1``, is one step short of that end and
    sits above it (by ~2% of the peak on a 100-step cosine), so measuring it
    would warn about a schedule that asks for exactly 100x. Without
    `steps_per_epoch` the length in epochs is unknown and the warning is given
    whatever the length. The 100x guidance is classic CNN practice: step
    schedules divide the rate by 10 two or three times (Krizhevsky et al.
    2012: three times; He et al. 2016: 0.1 -> 0.001 at 32k and 48k
    iterations), and cosine schedules anneal to ~0 (Loshchilov & Hutter 2017).

    Args:
      schedule: step -> rate (an `optax.Schedule`), traceable by ``jax.vmap``.
      total_steps: number of updates >= 1.
      warmup_steps: length of the warmup, >= 0 (0 skips the warmup check).
      steps_per_epoch: >= 1, or None.
      peak_lr: the configured peak rate, or None.
      name: the schedule's name in `ScheduleReport.describe`.

    Returns:
      A `ScheduleReport`.

    References:
      Krizhevsky et al., "ImageNet Classification with Deep Convolutional
      Neural Networks", NeurIPS 2012. He et al., "Deep Residual Learning for
      Image Recognition", CVPR 2016. Loshchilov & Hutter, "SGDR", ICLR 2017.
    """
    report = _report(schedule, total_steps, warmup_steps, steps_per_epoch, peak_lr, name)
    _warn_on_short_decay(report, steps_per_epoch, stacklevel=3)
    return report


def _report(
    schedule, total_steps, warmup_steps, steps_per_epoch, peak_lr, name, fn="check_schedule"
):
    """`check_schedule` without the warning."""
    if not callable(schedule):
        raise TypeError(f"{fn}: `schedule` must be a function step -> rate, got {schedule!r}.")
    total = check_int(total_steps, "total_steps", fn)
    warmup = check_int(warmup_steps, "warmup_steps", fn, minimum=0)
    if steps_per_epoch is not None:
        steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", fn)
    if warmup >= total:
        raise ValueError(
            f"{fn}: `warmup_steps`={warmup} must be less than `total_steps`={total}; "
            f"the warmup would never reach the peak."
        )
    steps = jnp.arange(total + 1, dtype=jnp.int32)  # the updates, then the end
    # vmap, not schedule(steps): optax's piecewise_interpolate_schedule (one-cycle)
    # does not broadcast over an array of steps. jit: one compile (~0.1 s) instead
    # of one per primitive, which is ~10x slower for a warmup or one-cycle.
    rates = np.asarray(jax.jit(jax.vmap(schedule))(steps), dtype=np.float64)
    rates, end = rates[:-1], rates[-1]
    bad = ~np.isfinite(rates)
    if bad.any():
        t = int(np.argmax(bad))
        raise ValueError(f"{fn}: the learning rate at step {t} is {rates[t]}, not finite.")
    if (rates < 0).any():
        t = int(np.argmax(rates < 0))
        raise ValueError(f"{fn}: the learning rate at step {t} is negative ({rates[t]:g}).")
    peak_step = int(np.argmax(rates))
    peak = float(rates[peak_step])
    if peak <= 0.0:
        raise ValueError(
            f"{fn}: the learning rate must be positive somewhere, but its peak over "
            f"{total} steps is {peak:g}."
        )
    target = (
        peak
        if peak_lr is None
        else real({"peak_lr": peak_lr}, "peak_lr", fn, low=0.0, low_open=True)
    )
    if warmup and rates[warmup] < target * (1.0 - RTOL):
        raise ValueError(
            f"{fn}: the warmup never reaches the peak: the rate at the end of warmup "
            f"(step {warmup}) is {rates[warmup]:g}, below the peak {target:g}."
        )
    return ScheduleReport(
        name=name,
        total_steps=total,
        warmup_steps=warmup,
        initial_lr=float(rates[0]),
        peak_lr=peak,
        peak_step=peak_step,
        final_lr=float(rates[-1]),
        end_lr=float(end),
    )


def _warn_on_short_decay(report: ScheduleReport, steps_per_epoch, stacklevel: int) -> None:
    """The 100x rule; `stacklevel` points the warning at the public function's caller."""
    total = report.total_steps
    long_run = steps_per_epoch is None or total > MIN_EPOCHS_FOR_DECAY_RULE * steps_per_epoch
    if long_run and report.end_over_peak * MIN_DECAY > 1.0 + RTOL:
        warnings.warn(
            f"{report.describe()}: the rate decays less than {MIN_DECAY:.0f}x (it ends at "
            f"{_fmt(report.end_over_peak * report.peak_lr)}); classic CNN "
            f"schedules end at <= 1/100 of the peak (e.g. 0.1 -> 0.001, He et al. 2016).",
            ScheduleWarning,
            stacklevel=stacklevel,
        )


def check_schedule_config(cfg, *, steps_per_epoch: int, num_epochs: int) -> ScheduleReport:
    """`check_schedule` on the schedule of `cfg` (see `make_schedule`).

    The warmup is the config's (``warmup_cosine``'s W, ``one_cycle``'s
    ramp-up), the peak to reach is ``lr`` and the name is ``cfg.schedule``.
    """
    fn = "check_schedule_config"
    c = read_config(cfg, fn)
    schedule = build_schedule(c, steps_per_epoch, num_epochs, fn)
    total = steps_per_epoch * num_epochs  # both checked by build_schedule
    warmup = warmup_steps(c, steps_per_epoch, total, fn)
    report = _report(schedule, total, warmup, steps_per_epoch, c["lr"], schedule_name(c, fn), fn)
    _warn_on_short_decay(report, steps_per_epoch, stacklevel=3)
    return report
