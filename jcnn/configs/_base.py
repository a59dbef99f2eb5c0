"""Every key a training run reads, with its default, and the checks on them."""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Mapping

import ml_collections

from jcnn.data import OPS, available

PARALLEL_MODES = ("jit", "shard_map", "pmap")  # jcnn.train.parallel.MODES
DTYPES = ("float32", "bfloat16")
ON_NONFINITE = ("stop", "skip")


def sgd_nesterov_warmup_cosine(*, lr: float, final_lr: float) -> ml_collections.ConfigDict:
    """The `optim` section of jcnn's recipes, from `lr` (the peak) down to `final_lr`.

    SGD with Nesterov momentum 0.9, weight decay 5e-4 (L2, SGD's default
    mode, on conv and dense kernels only), a linear warmup over the first
    epoch, then a cosine decay; `jcnn.optim.make_optimizer` reads it.
    """
    return ml_collections.ConfigDict(
        {
            "name": "sgd",
            "lr": lr,
            "momentum": 0.9,
            "nesterov": True,
            "weight_decay": 5e-4,
            "schedule": "warmup_cosine",
            "warmup_epochs": 1.0,
            "final_lr": final_lr,
        }
    )


def base() -> ml_collections.ConfigDict:
    """The defaults. A config overrides fields of this; a key it does not know is an error."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.num_epochs = 10
    c.model = ml_collections.ConfigDict({"name": "cnn_small"})
    c.data = ml_collections.ConfigDict(
        {
            "name": "fashion_mnist",
            "fallback": "digits",  # used, with a one-line notice, when the data is missing
            "batch_size": 128,
            "augment": ("crop", "flip"),
            "crop_padding": 2,
            "cutout_size": None,
            "train_subset": None,  # first N training images (smoke runs, tests)
            "test_subset": None,
        }
    )
    c.optim = sgd_nesterov_warmup_cosine(lr=0.05, final_lr=5e-5)
    c.label_smoothing = 0.0
    c.flip_tta = False
    c.eval_every_epochs = 1
    c.eval_batch_size = 1000
    c.log_every_steps = 50
    c.checkpoint = ml_collections.ConfigDict({"keep": 3})
    c.stop_at_step = None
    # A step whose loss, gradients or new parameters hold NaN/Inf: "stop" ends the run
    # naming the step and the quantity; "skip" leaves the state as it was and counts it.
    c.on_nonfinite = "stop"
    c.progress = True
    # Train steps per compiled call (unrolled in one XLA program; not with parallel="pmap").
    # None: 4 on one device (1.17-1.24x faster on a 2-core CPU), 1 on several. See fit.
    c.steps_per_call = None
    # Devices and numerics (jcnn.train.parallel): how the step spreads over the devices,
    # whether to start multi-process JAX, and the compute dtype of convs and dense layers.
    c.parallel = "jit"  # "jit" | "shard_map" | "pmap"
    c.distributed = False  # also started when JAX_COORDINATOR_ADDRESS is set
    c.dtype = "float32"  # "float32" | "bfloat16" (params, optimiser, BN stats stay float32)
    return c


def with_article(noun: str) -> str:
    """``"an int"``, ``"a float"``: the noun of an error message with its article."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _positive_int(c, key: str, where: str = "", *, minimum: int = 1, optional=False) -> None:
    value = c[key]
    if optional and value is None:
        return
    if not _is_int(value) or value < minimum:
        none = " or None" if optional else ""
        raise ValueError(
            f"config: `{where}{key}` must be an int >= {minimum}{none}, got {value!r}."
        )


def validate(config) -> ml_collections.ConfigDict:
    """Checks `config` and fills in the defaults of `base` for missing keys."""
    if not isinstance(config, Mapping | ml_collections.ConfigDict):
        raise TypeError(f"config: expected a ConfigDict or dict, got {type(config).__name__}.")
    merged = base()
    merged.unlock()
    _merge(merged, config, "")
    _positive_int(merged, "num_epochs")
    _positive_int(merged, "eval_every_epochs")
    _positive_int(merged, "log_every_steps")
    _positive_int(merged, "eval_batch_size")
    _positive_int(merged.data, "batch_size", "data.")
    _positive_int(merged.checkpoint, "keep", "checkpoint.")
    _positive_int(merged, "seed", minimum=0)
    if merged.seed >= 2**32:
        raise ValueError(
            f"config: `seed` must be an int in [0, 2**32) (it seeds the data order), "
            f"got {merged.seed!r}."
        )
    _positive_int(merged.data, "crop_padding", "data.", minimum=0)
    for key in ("cutout_size", "train_subset", "test_subset"):
        _positive_int(merged.data, key, "data.", optional=True)
    _positive_int(merged, "stop_at_step", optional=True)
    _positive_int(merged, "steps_per_call", optional=True)
    if merged.data.name not in available():
        raise ValueError(
            f"config: `data.name` must be one of {available()}, got {merged.data.name!r}."
        )
    bad = [op for op in merged.data.augment if op not in OPS]
    if bad:
        raise ValueError(f"config: `data.augment` has unknown ops {bad}; expected some of {OPS}.")
    if "cutout" in merged.data.augment and merged.data.cutout_size is None:
        raise ValueError(
            "config: `data.augment` contains 'cutout' but `data.cutout_size` is None; "
            "set it (e.g. --config.data.cutout_size=8) or drop 'cutout'."
        )
    if not 0.0 <= merged.label_smoothing < 1.0:
        raise ValueError(
            f"config: `label_smoothing` must be in [0, 1), got {merged.label_smoothing!r}."
        )
    for key, allowed in (
        ("parallel", PARALLEL_MODES),
        ("dtype", DTYPES),
        ("on_nonfinite", ON_NONFINITE),
    ):
        if merged[key] not in allowed:
            raise ValueError(f"config: `{key}` must be one of {allowed}, got {merged[key]!r}.")
    merged.lock()
    return merged


# Sections whose keys are free-form (checked by their own consumer).
_OPEN_SECTIONS = ("model", "optim")


def _merge(dst: ml_collections.ConfigDict, src, prefix: str) -> None:
    for key, value in src.items():
        where = f"{prefix}{key}"
        if key not in dst:
            close = difflib.get_close_matches(key, list(dst.keys()), n=2)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"config: unknown key `{where}`.{hint}")
        is_section = isinstance(value, Mapping | ml_collections.ConfigDict)
        if is_section and key in _OPEN_SECTIONS and not prefix:
            # A config's model and optim sections are complete: they replace the defaults.
            dst[key] = ml_collections.ConfigDict(dict(value))
        elif is_section and key in dst and isinstance(dst[key], ml_collections.ConfigDict):
            _merge(dst[key], value, f"{where}.")
        else:
            if isinstance(value, list):
                value = tuple(value)
            try:
                dst[key] = value
            except TypeError as err:  # ml_collections keeps a field's type
                raise TypeError(
                    f"config: `{where}` must be "
                    f"{with_article(type(dst[key]).__name__)} like its default "
                    f"{dst[key]!r}, got {value!r} ({type(value).__name__})."
                ) from err
