"""`jcnn bench`: the train-step and eval throughput of a config, as `fit` runs it.

``jcnn bench --config=default [--steps 20] [--config.key=value ...]`` builds the
config's run exactly as `jcnn.train.fit` does (its model, optimiser, batch size,
on-device augmentation, data already on the device, donated state, the same
steps per compiled call), runs the compiling first call, then `steps` timed
steps, then one pass over the test split, and prints one JSON line. The XLA
flags are those of the ``jcnn`` command (`jcnn._xla`) unless ``XLA_FLAGS``
already chooses them, so the figure is the one a training run gets.
`benchmarks/` compares such figures across flags and frameworks.
"""

from __future__ import annotations

import os
import resource
import sys
import time

import jax
import numpy as np

from jcnn import configs
from jcnn import data as jdata
from jcnn.functional._checks import check_int


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def bench(config, *, steps: int = 20) -> dict:
    """Times `steps` train steps (after the compiling call) and one test-split pass.

    The steps run as `fit` runs them: ``steps_per_call`` at a time (`steps` is
    rounded up to a multiple of it). Returns ``img_s`` (training images per
    second), ``ms_per_step``, ``first_step_s`` (trace, compile and run of the
    first call), ``eval_img_s``,
    ``peak_rss_mib`` and what was measured (model, batch, dtype, device, jax
    version, ``XLA_FLAGS``).
    """
    from jcnn.train import loop

    steps = check_int(steps, "steps", "bench")
    config = configs.validate(config)
    run = loop.build(config, quiet=True)
    state = loop.initial_state(run)
    per_call = loop.steps_per_call(run)
    n = len(run.train.labels)
    batch = config.data.batch_size
    order = jdata.batch_indices(config.seed, 0, n, batch)
    rows = order.shape[0]
    if rows < 2:
        raise ValueError(
            f"bench: the training set ({n} images) holds fewer than 2 batches of {batch}."
        )
    if per_call == 1:
        step = loop.compiled_train_step(run)

        def call(state, i):
            return step(state, *run.plan.train_batch(run.train, order[1 + i % (rows - 1)]))

    else:
        chunk = loop.compiled_train_chunk(run, per_call)

        def call(state, i):
            idx = order[1 + np.arange(i, i + per_call) % (rows - 1)]
            return chunk(state, run.train.images, run.train.labels, idx)

    start = time.perf_counter()
    state, metrics = call(state, 0)
    jax.block_until_ready((state, metrics))
    first = time.perf_counter() - start

    calls = -(-steps // per_call)
    steps = calls * per_call
    start = time.perf_counter()
    for i in range(calls):
        state, metrics = call(state, i * per_call)
    jax.block_until_ready((state, metrics))
    per_step = (time.perf_counter() - start) / steps

    evaluate = loop._evaluator(run)
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
        "steps_per_call": per_call,
        "device": f"{jax.device_count()} {jax.devices()[0].platform}",
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
