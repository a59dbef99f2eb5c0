"""Reading an optimiser config: one dict of known keys, each value checked.

A config is an `ml_collections.ConfigDict` or any `Mapping`. Every key must be
one of `OPTIMIZER_KEYS | SCHEDULE_KEYS` (a typo such as ``weight_decy`` raises
with the close match rather than being silently ignored). A known key that the
chosen optimiser or schedule does not use is ignored, so a base config can be
switched from ``sgd`` to ``adam`` on the command line without deleting
``momentum``; the one exception is warmup (see `_schedules`).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

OPTIMIZER_KEYS = frozenset(
    {
        "name",
        "lr",
        "momentum",
        "nesterov",
        "b1",
        "b2",
        "eps",
        "weight_decay",
        "weight_decay_mode",
        "decay_norm_and_bias",
        "clip",
        "trust_coefficient",
    }
)
SCHEDULE_KEYS = frozenset(
    {
        "schedule",
        "lr",
        "warmup_epochs",
        "warmup_steps",
        "init_lr",
        "final_lr",
        "alpha",
        "boundaries",
        "boundary_epochs",
        "decay",
        "decay_rate",
        "pct_start",
        "div_factor",
        "final_div_factor",
        "anneal",
    }
)
KNOWN_KEYS = OPTIMIZER_KEYS | SCHEDULE_KEYS


def read_config(cfg, fn: str) -> dict[str, Any]:
    """A plain dict of `cfg` without its ``None`` values, all keys known."""
    if hasattr(cfg, "to_dict") and callable(cfg.to_dict):  # ml_collections.ConfigDict
        cfg = cfg.to_dict()
    if not isinstance(cfg, Mapping):
        raise TypeError(
            f"{fn}: `cfg` must be an ml_collections.ConfigDict or a Mapping of optimiser "
            f"settings, got {type(cfg).__name__}."
        )
    for key in cfg:
        if key not in KNOWN_KEYS:
            raise ValueError(
                f"{fn}: unknown config key {key!r}.{_did_you_mean(str(key), KNOWN_KEYS)} "
                f"Known keys: {', '.join(sorted(KNOWN_KEYS))}."
            )
    # None means "not set" (ConfigDict fields are often declared as None).
    return {key: value for key, value in cfg.items() if value is not None}


def _did_you_mean(value: str, valid) -> str:
    close = difflib.get_close_matches(value.lower(), sorted(valid), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def choose(value, valid: Sequence[str], what: str, fn: str) -> str:
    """Checks that `value` is one of the names `valid`; the error names the close match."""
    if isinstance(value, str) and value in valid:
        return value
    hint = _did_you_mean(value, valid) if isinstance(value, str) else ""
    raise ValueError(f"{fn}: unknown {what} {value!r}; valid: {', '.join(map(repr, valid))}.{hint}")


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real(
    c: Mapping,
    key: str,
    fn: str,
    *,
    default: float | None = None,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``c[key]`` (or `default`) as a float in the interval from `low` to `high`.

    `low_open`/`high_open` exclude the end points. A missing key with no
    default raises, naming the key.
    """
    if key not in c:
        if default is None:
            raise ValueError(f"{fn}: the config must set `{key}`.")
        return float(default)
    value = c[key]
    if not _is_real(value) or not math.isfinite(value):
        raise TypeError(f"{fn}: `{key}` must be a finite number, got {value!r}.")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        opening = "(" if low_open or low == -math.inf else "["
        closing = ")" if high_open or high == math.inf else "]"
        interval = f"{opening}{low:g}, {high:g}{closing}"
        raise ValueError(f"{fn}: `{key}` must be in {interval}, got {value!r}.")
    return float(value)


def flag(c: Mapping, key: str, fn: str, *, default: bool) -> bool:
    """``c[key]`` (or `default`), which must be a bool."""
    value = c.get(key, default)
    if not isinstance(value, bool):
        raise TypeError(f"{fn}: `{key}` must be True or False, got {value!r}.")
    return value
