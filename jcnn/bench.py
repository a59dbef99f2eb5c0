"""`jcnn bench`: the train-step and eval throughput of a config, as `fit` runs it.

``jcnn bench --config=default [--steps 20] [--config.key=value ...]`` builds the
config's run exactly as `jcnn.train.fit` does (its model, optimiser, batch size,
on-device augmentation, data already on the device, donated state), runs the
compiling first step, then `steps` timed steps, then one pass over the test
split, and prints one JSON line. The XLA flags are those of the ``jcnn``
command (`jcnn._xla`) unless ``XLA_FLAGS`` already chooses them, so the figure
is the one a training run gets. `benchmarks/` compares such figures across
flags and frameworks.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import jax

from jcnn import configs
from jcnn import data as jdata
from jcnn.functional._checks import check_int


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def bench(config, *, steps: int = 20) -> dict:
    """Times `steps` train steps (after the compiling one) and one test-split pass.

    Returns ``img_s`` (training images per second), ``ms_per_step``,
    ``first_step_s`` (trace, compile and run of the first step), ``eval_img_s``,
    ``peak_rss_mib`` and what was measured (model, batch, dtype, device, jax
    version, ``XLA_FLAGS``).
    """
    from jcnn.train.loop import _evaluator, build, compiled_train_step, initial_state

    steps = check_int(steps, "steps", "bench")
    config = configs.validate(config)
    run = build(config, quiet=True)
    state = initial_state(run)
    step = compiled_train_step(run)
    n = len(run.train.labels)
    batch = config.data.batch_size
    order = jdata.batch_indices(config.seed, 0, n, batch)
    rows = order.shape[0]
    if rows < 2:
        raise ValueError(
            f"bench: the training set ({n} images) holds fewer than 2 batches of {batch}."
        )

    start = time.perf_counter()
    state, metrics = step(state, *run.plan.train_batch(run.train, order[0]))
    jax.block_until_ready((state, metrics))
    first = time.perf_counter() - start

    start = time.perf_counter()
    for i in range(steps):
        state, metrics = step(state, *run.plan.train_batch(run.train, order[1 + i % (rows - 1)]))
    jax.block_until_ready((state, metrics))
    per_step = (time.perf_counter() - start) / steps

    evaluate = _evaluator(run)
    evaluate(state)  # compiles
    start = time.perf_counter()
    evaluate(state)
    eval_s = time.perf_counter() - start
    return {
        "model": config.model.name,
        "batch": batch,
        "dtype": config.dtype,
        "img_s": batch / per_step,
        "ms_per_step": per_step * 1e3,
        "first_step_s": first,
        "eval_img_s": len(run.test.labels) / eval_s,
        "peak_rss_mib": _peak_rss_mib(),
        "steps": steps,
        "device": f"{jax.device_count()} {jax.devices()[0].platform}",
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
