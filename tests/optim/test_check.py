"""check_schedule: the report against closed forms, the errors, and the 100x warning."""

from __future__ import annotations

import contextlib
import math
import warnings

import jax.numpy as jnp
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jcnn.optim import ScheduleReport, ScheduleWarning, check_schedule, check_schedule_config


def warmup_cosine(t, lr, warmup, total, init, final):
    """Linear warmup then a half cosine, from the definition, in float64."""
    if t < warmup:
        return init + (lr - init) * t / warmup
    return final + (lr - final) * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (total - warmup)))


@contextlib.contextmanager
def no_schedule_warning():
    """A context in which a ScheduleWarning fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleWarning)
        yield


def test_report_of_warmup_cosine_matches_formula():
    cfg = dict(lr=0.1, schedule="warmup_cosine", warmup_epochs=2, init_lr=0.01, final_lr=1e-4)
    report = check_schedule_config(cfg, steps_per_epoch=10, num_epochs=20)
    assert (report.name, report.total_steps, report.warmup_steps) == ("warmup_cosine", 200, 20)
    assert report.peak_step == 20
    assert report.initial_lr == pytest.approx(0.01, rel=1e-6)
    assert report.peak_lr == pytest.approx(0.1, rel=1e-6)
    final = warmup_cosine(199, 0.1, 20, 200, 0.01, 1e-4)  # the last update is step T - 1
    assert report.final_lr == pytest.approx(final, rel=1e-5)
    assert report.final_over_peak == pytest.approx(final / 0.1, rel=1e-5)


def test_describe_is_one_line_with_the_numbers():
    # 23,400 steps = 100 epochs of 234 (Fashion-MNIST at batch 256).
    cfg = dict(lr=0.1, schedule="warmup_cosine", warmup_steps=500, final_lr=1e-4)
    report = check_schedule_config(cfg, steps_per_epoch=234, num_epochs=100)
    assert report.describe() == (
        "lr schedule: warmup_cosine peak 0.1 at step 500 (warmup 500), final 1e-4 "
        "(final/peak 1.0e-03, 1000x decay) over 23,400 steps"
    )
    assert str(report) == report.describe()


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (
            ScheduleReport("constant", 30, 0, 0.1, 0.1, 0, 0.1),
            "final 0.1 (final/peak 1.0e+00, no decay)",
        ),
        (
            ScheduleReport("cosine", 30, 0, 0.1, 0.1, 0, 0.0),
            "final 0 (final/peak 0.0e+00, decays to 0)",
        ),
        (
            ScheduleReport("step", 30, 0, 0.2, 0.2, 0, 0.04),
            "final 0.04 (final/peak 2.0e-01, 5x decay)",
        ),
        (
            ScheduleReport("x", 30, 0, 0.1, 0.1, 0, 2.5e-5),
            "final 2.5e-5 (final/peak 2.5e-04, 4000x",
        ),
    ],
)
def test_describe_formats(report, expected):
    assert expected in report.describe()


def test_constant_over_ten_epochs_warns():
    with pytest.warns(ScheduleWarning, match=r"peak 0.1 .* decays less than 100x"):
        check_schedule(optax.constant_schedule(0.1), 100, steps_per_epoch=10)
    with pytest.warns(ScheduleWarning):  # length in epochs unknown: warn
        check_schedule(optax.constant_schedule(0.1), 20)


def test_no_warning_for_enough_decay_or_a_short_run():
    with no_schedule_warning():
        # cosine to 1e-3 of the peak
        check_schedule(optax.cosine_decay_schedule(0.1, 100, alpha=1e-3), 100, steps_per_epoch=10)
        # exactly 100x: 0.1 -> 0.001 in two 10x steps, whatever float32 rounding does
        check_schedule_config(
            dict(lr=0.1, schedule="step", boundaries=(0.5, 0.75)), steps_per_epoch=10, num_epochs=10
        )
        # 3 epochs: too short for the rule
        check_schedule(optax.constant_schedule(0.1), 30, steps_per_epoch=10)


@pytest.mark.parametrize(
    "cfg",
    [
        dict(schedule="cosine"),
        dict(schedule="exponential"),
        dict(schedule="warmup_cosine", warmup_steps=10),
    ],
)
def test_exactly_100x_by_the_end_does_not_warn(cfg):
    # Over 100 updates the last one (step 99) is still ~2% of the peak above the
    # schedule's end at step 100, so the rule measures the end.
    with no_schedule_warning():
        report = check_schedule_config(
            dict(lr=0.1, final_lr=1e-3, **cfg), steps_per_epoch=10, num_epochs=10
        )
    assert report.end_lr == pytest.approx(1e-3, rel=1e-5)
    assert report.end_over_peak == pytest.approx(0.01, rel=1e-5)
    assert report.final_lr > 1.01e-3  # the last update: one step short of the end
    with pytest.warns(ScheduleWarning, match=r"decays less than 100x \(it ends at 0\.0011\)"):
        check_schedule_config(
            dict(lr=0.1, final_lr=1.1e-3, **cfg), steps_per_epoch=10, num_epochs=10
        )


def test_one_cycle_report():
    cfg = dict(lr=0.1, schedule="one_cycle", pct_start=0.25, div_factor=10.0)
    with no_schedule_warning():
        report = check_schedule_config(cfg, steps_per_epoch=10, num_epochs=20)
    assert report.warmup_steps == 50
    assert report.initial_lr == pytest.approx(0.01, rel=1e-6)
    assert report.peak_lr == pytest.approx(0.1, rel=1e-6)
    # u steps before its end the cosine ramp is below the peak by
    # (1 - 1/10) pi^2 u^2 / (4 * 50^2) ~ 9e-4 u^2 relative, far above float32's
    # 6e-8, so the first largest float32 rate is at the ramp's end.
    assert report.peak_step == 50


def test_a_million_steps():
    cfg = dict(lr=0.1, schedule="warmup_cosine", warmup_steps=1000, final_lr=1e-5)
    report = check_schedule_config(cfg, steps_per_epoch=1000, num_epochs=1000)
    assert (report.total_steps, report.peak_step) == (1_000_000, 1000)
    final = warmup_cosine(999_999, 0.1, 1000, 1_000_000, 0.0, 1e-5)
    assert report.final_lr == pytest.approx(final, rel=1e-4)


@settings(max_examples=10, deadline=None)
@given(
    lr=st.floats(1e-4, 10.0),
    warmup=st.integers(1, 50),
    extra=st.integers(1, 200),
    final_ratio=st.sampled_from([0.0, 1e-4, 1e-2, 0.5]),
)
def test_warmup_cosine_peaks_at_end_of_warmup(lr, warmup, extra, final_ratio):
    total = warmup + extra
    cfg = dict(lr=lr, schedule="warmup_cosine", warmup_steps=warmup, final_lr=lr * final_ratio)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        report = check_schedule_config(cfg, steps_per_epoch=total, num_epochs=1)
    assert report.peak_step == warmup
    assert report.peak_lr == pytest.approx(lr, rel=1e-6)
    assert report.final_lr == pytest.approx(
        warmup_cosine(total - 1, lr, warmup, total, 0.0, lr * final_ratio), rel=1e-4, abs=1e-7 * lr
    )


def test_rejects_bad_schedules():
    with pytest.raises(ValueError, match=r"check_schedule: .* its peak over 10 steps is 0"):
        check_schedule(optax.constant_schedule(0.0), 10)
    with pytest.raises(ValueError, match=r"the learning rate at step 0 is negative \(-0.1\)"):
        check_schedule(optax.constant_schedule(-0.1), 10)
    with pytest.raises(ValueError, match=r"the learning rate at step 5 is nan, not finite"):
        check_schedule(lambda t: jnp.where(t == 5, jnp.nan, 0.1), 10)


def test_rejects_a_warmup_that_never_reaches_the_peak():
    # A linear ramp to 0.1 over 1000 steps is at 0.05 after a "warmup" of 500.
    ramp = optax.linear_schedule(0.0, 0.1, 1000)
    with pytest.raises(ValueError, match=r"never reaches the peak: .* \(step 500\) is 0.05, below"):
        check_schedule(ramp, 2000, warmup_steps=500)
    # A warmup_cosine that ends at 0.1 when the config asks for 0.2.
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.1, 10, 100)
    with pytest.raises(ValueError, match=r"is 0.1, below the peak 0.2"):
        check_schedule(schedule, 100, warmup_steps=10, peak_lr=0.2)
    with pytest.raises(ValueError, match=r"`warmup_steps`=100 must be less than `total_steps`=100"):
        check_schedule(schedule, 100, warmup_steps=100)


def test_rejects_bad_arguments():
    schedule = optax.constant_schedule(0.1)
    with pytest.raises(
        ValueError, match=r"check_schedule: `total_steps` must be an int >= 1, got 0"
    ):
        check_schedule(schedule, 0)
    with pytest.raises(ValueError, match=r"`warmup_steps` must be an int >= 0, got -1"):
        check_schedule(schedule, 10, warmup_steps=-1)
    with pytest.raises(ValueError, match=r"`steps_per_epoch` must be an int >= 1, got 0"):
        check_schedule(schedule, 10, steps_per_epoch=0)
    with pytest.raises(ValueError, match=r"`peak_lr` must be in \(0, inf\), got -1"):
        check_schedule(schedule, 10, peak_lr=-1)
    with pytest.raises(TypeError, match=r"`schedule` must be a function step -> rate, got 0.1"):
        check_schedule(0.1, 10)
    with pytest.raises(ValueError, match=r"check_schedule_config: unknown schedule 'step_decay'"):
        check_schedule_config(dict(lr=0.1, schedule="step_decay"), steps_per_epoch=1, num_epochs=1)
