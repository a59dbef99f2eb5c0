"""make_schedule: each schedule against its formula, written here in float64 Python."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jcnn.optim import SCHEDULES, make_schedule

S, E = 10, 20  # steps per epoch, epochs
T = S * E  # 200 steps
LR = 0.1


def sample(schedule) -> np.ndarray:
    """The rates at steps 0 .. T-1 (one jitted call: one compile per schedule)."""
    return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(T)))


def cosine_down(t, start, end, length):
    """start -> end over `length` steps: end + (start - end) (1 + cos(pi t / length)) / 2."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t / length))


def ref_step(t, boundaries, decay=0.1):
    return LR * decay ** sum(t >= b for b in boundaries)


def ref_warmup_cosine(t, warmup, init, final):
    if t < warmup:
        return init + (LR - init) * t / warmup
    return cosine_down(t - warmup, LR, final, T - warmup)


def ref_one_cycle(t, warmup, div, final_div, linear):
    low, end = LR / div, LR / div / final_div
    if linear:
        if t < warmup:
            return low + (LR - low) * t / warmup
        return LR + (end - LR) * (t - warmup) / (T - warmup)
    if t < warmup:
        return low + (LR - low) * 0.5 * (1.0 - math.cos(math.pi * t / warmup))
    return cosine_down(t - warmup, LR, end, T - warmup)


# (config, reference t -> rate, steps: start, mid-warmup, end of warmup +- 1,
#  middle, boundaries +- 1, last step)
CASES = {
    "constant": (dict(schedule="constant"), lambda t: LR, [0, 1, 100, 199]),
    "step_fractions": (
        dict(schedule="step", boundaries=(0.5, 0.75)),
        lambda t: ref_step(t, (100, 150)),
        [0, 99, 100, 101, 149, 150, 151, 199],
    ),
    "step_epochs": (
        dict(schedule="step", boundary_epochs=(5, 15), decay=0.5),
        lambda t: ref_step(t, (50, 150), 0.5),
        [0, 49, 50, 51, 149, 150, 151, 199],
    ),
    "exponential_rate": (
        dict(schedule="exponential", decay_rate=0.5),
        lambda t: LR * 0.5 ** (t / S),
        [0, 5, 10, 11, 100, 199],
    ),
    "exponential_final": (
        dict(schedule="exponential", final_lr=1e-3),
        lambda t: LR * (1e-3 / LR) ** (t / T),
        [0, 1, 100, 199],
    ),
    "cosine_final": (
        dict(schedule="cosine", final_lr=1e-3),
        lambda t: cosine_down(t, LR, 1e-3, T),
        [0, 1, 50, 100, 199],
    ),
    "cosine_alpha": (
        dict(schedule="cosine", alpha=0.01),
        lambda t: cosine_down(t, LR, 0.01 * LR, T),
        [0, 100, 199],
    ),
    "warmup_cosine_epochs": (
        dict(schedule="warmup_cosine", warmup_epochs=2, init_lr=0.01, final_lr=1e-4),
        lambda t: ref_warmup_cosine(t, 20, 0.01, 1e-4),
        [0, 10, 19, 20, 21, 110, 199],
    ),
    "warmup_cosine_steps": (
        dict(schedule="warmup_cosine", warmup_steps=7),
        lambda t: ref_warmup_cosine(t, 7, 0.0, 0.0),
        [0, 3, 6, 7, 8, 100, 199],
    ),
    "one_cycle_cos": (
        dict(schedule="one_cycle", pct_start=0.25, div_factor=10.0, final_div_factor=100.0),
        lambda t: ref_one_cycle(t, 50, 10.0, 100.0, linear=False),
        [0, 25, 49, 50, 51, 125, 199],
    ),
    "one_cycle_linear": (
        dict(schedule="one_cycle", anneal="linear"),  # pct 0.3, div 25, final_div 1e4
        lambda t: ref_one_cycle(t, 60, 25.0, 1e4, linear=True),
        [0, 30, 59, 60, 61, 130, 199],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_schedule_matches_formula(case):
    cfg, reference, steps = CASES[case]
    schedule = make_schedule(dict(lr=LR, **cfg), steps_per_epoch=S, num_epochs=E)
    got = sample(schedule)[steps]
    expected = np.array([reference(t) for t in steps])
    # float32 arithmetic of the schedule: ~1e-7 relative per operation.
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7 * LR)


def test_every_schedule_is_covered():
    assert {CASES[c][0]["schedule"] for c in CASES} == set(SCHEDULES)


@pytest.mark.parametrize("case", ["warmup_cosine_epochs", "warmup_cosine_steps", "one_cycle_cos"])
def test_warmup_reaches_the_peak(case):
    cfg, _, _ = CASES[case]
    warmup = {"warmup_cosine_epochs": 20, "warmup_cosine_steps": 7, "one_cycle_cos": 50}[case]
    schedule = make_schedule(dict(lr=LR, **cfg), steps_per_epoch=S, num_epochs=E)
    rates = sample(schedule)
    np.testing.assert_allclose(rates[warmup], LR, rtol=1e-6)
    assert np.all(rates[:warmup] < LR)


def test_config_dict_equals_plain_dict():
    cfg = dict(lr=LR, schedule="warmup_cosine", warmup_steps=7, final_lr=None)
    a = make_schedule(cfg, steps_per_epoch=S, num_epochs=E)
    b = make_schedule(ml_collections.ConfigDict(cfg), steps_per_epoch=S, num_epochs=E)
    np.testing.assert_array_equal(sample(a), sample(b))


def test_step_boundaries_may_be_a_list_or_array():
    for boundaries in ([0.5, 0.75], np.array([0.5, 0.75])):
        cfg = dict(lr=LR, schedule="step", boundaries=boundaries)
        rates = sample(make_schedule(cfg, steps_per_epoch=S, num_epochs=E))
        np.testing.assert_allclose(rates[[99, 100, 150]], [LR, LR * 0.1, LR * 0.01], rtol=1e-6)


def test_ignores_keys_of_other_optimizers_and_schedules():
    cfg = dict(lr=LR, schedule="cosine", momentum=0.9, b1=0.9, boundaries=(0.5,), warmup_steps=0)
    schedule = make_schedule(cfg, steps_per_epoch=S, num_epochs=E)
    np.testing.assert_allclose(sample(schedule)[100], cosine_down(100, LR, 0.0, T), rtol=1e-6)


BAD = [
    (dict(lr=-0.1), ValueError, r"make_schedule: `lr` must be in \(0, inf\), got -0.1"),
    (dict(lr=0.0), ValueError, r"`lr` must be in \(0, inf\), got 0.0"),
    (dict(lr="0.1"), TypeError, r"`lr` must be a finite number, got '0.1'"),
    (dict(lr=float("nan")), TypeError, r"`lr` must be a finite number, got nan"),
    (dict(schedule="cosine"), ValueError, r"the config must set `lr`"),
    (
        dict(lr=LR, schedule="cosin"),
        ValueError,
        r"unknown schedule 'cosin'; valid: 'constant', .*'one_cycle'\. Did you mean 'cosine'\?",
    ),
    (dict(lr=LR, warmup_epoch=1), ValueError, r"unknown config key 'warmup_epoch'\. Did you mean"),
    (
        dict(lr=LR, schedule="warmup_cosine", warmup_epochs=20),
        ValueError,
        r"the warmup \(200 steps\) must be shorter than training \(200 steps\)",
    ),
    (
        dict(lr=LR, schedule="warmup_cosine"),
        ValueError,
        r"'warmup_cosine' needs `warmup_epochs` or `warmup_steps`",
    ),
    (
        dict(lr=LR, schedule="warmup_cosine", warmup_epochs=1, warmup_steps=10),
        ValueError,
        r"set `warmup_epochs` or `warmup_steps`, not both",
    ),
    (
        dict(lr=LR, schedule="warmup_cosine", warmup_steps=-1),
        ValueError,
        r"`warmup_steps` must be an int >= 0, got -1",
    ),
    (
        dict(lr=LR, schedule="warmup_cosine", warmup_steps=5, init_lr=0.2),
        ValueError,
        r"`init_lr` must be in \[0, 0.1\], got 0.2",
    ),
    (
        dict(lr=LR, schedule="cosine", warmup_epochs=1),
        ValueError,
        r"`warmup_epochs`=1 is only used by schedule 'warmup_cosine', but the schedule is 'cosine'",
    ),
    (
        dict(lr=LR, schedule="cosine", final_lr=1e-3, alpha=0.01),
        ValueError,
        r"set `final_lr` or `alpha`",
    ),
    (dict(lr=LR, schedule="cosine", final_lr=0.5), ValueError, r"`final_lr` must be in \[0, 0.1\]"),
    (
        dict(lr=LR, schedule="step", boundaries=(0.5, 1.5)),
        ValueError,
        r"`boundaries` \(0.5, 1.5\) are at steps \[100, 300\], .* in \[1, 200\)",
    ),
    (
        dict(lr=LR, schedule="step", boundaries=(0.75, 0.5)),
        ValueError,
        r"`boundaries` must be strictly increasing, got \(0.75, 0.5\)",
    ),
    (
        dict(lr=LR, schedule="step", boundary_epochs=(5, 20)),
        ValueError,
        r"`boundary_epochs` \(5, 20\) are at steps \[50, 200\]",
    ),
    (
        dict(lr=LR, schedule="step", boundaries=(0.5,), boundary_epochs=(5,)),
        ValueError,
        r"exactly one of `boundaries`",
    ),
    (
        dict(lr=LR, schedule="step", boundaries="0.5"),
        TypeError,
        r"`boundaries` must be a non-empty sequence of numbers",
    ),
    (
        dict(lr=LR, schedule="step", boundaries=()),
        TypeError,
        r"`boundaries` must be a non-empty sequence of numbers, got \(\)",
    ),
    (
        dict(lr=LR, schedule="step", boundaries=(0.5,), decay=1.0),
        ValueError,
        r"`decay` must be in \(0, 1\), got 1.0",
    ),
    (dict(lr=LR, schedule="exponential"), ValueError, r"exactly one of `decay_rate`"),
    (
        dict(lr=LR, schedule="exponential", final_lr=0.0),
        ValueError,
        r"`final_lr` must be in \(0, 0.1\], got 0.0",
    ),
    (
        dict(lr=LR, schedule="exponential", decay_rate=1.5),
        ValueError,
        r"`decay_rate` must be in \(0, 1\], got 1.5",
    ),
    (
        dict(lr=LR, schedule="one_cycle", pct_start=0.001),
        ValueError,
        r"one_cycle's ramp-up int\(pct_start \* total_steps\) = int\(0.001 \* 200\) = 0",
    ),
    (
        dict(lr=LR, schedule="one_cycle", anneal="cosine"),
        ValueError,
        r"unknown one_cycle anneal 'cosine'; valid: 'cos', 'linear'\. Did you mean 'cos'\?",
    ),
]


@pytest.mark.parametrize(("cfg", "error", "match"), BAD)
def test_rejects_bad_config(cfg, error, match):
    with pytest.raises(error, match=match):
        make_schedule(cfg, steps_per_epoch=S, num_epochs=E)


def test_rejects_bad_lengths_and_config_types():
    with pytest.raises(ValueError, match=r"make_schedule: `steps_per_epoch` must be an int >= 1"):
        make_schedule(dict(lr=LR), steps_per_epoch=0, num_epochs=E)
    with pytest.raises(TypeError, match=r"`num_epochs` must be an int, got 2.5"):
        make_schedule(dict(lr=LR), steps_per_epoch=S, num_epochs=2.5)
    with pytest.raises(TypeError, match=r"`cfg` must be an ml_collections.ConfigDict or a Mapping"):
        make_schedule([("lr", LR)], steps_per_epoch=S, num_epochs=E)
