"""`fit(config, workdir)`: train a model on a real dataset, evaluate, checkpoint, resume.

The data flow is one way: ``data -> model -> loss -> optax -> state ->
checkpoint``. A run's workdir holds ``config.json``, ``metrics.jsonl`` (one
JSON object per line; eval lines carry ``test_accuracy``), ``checkpoints/``
and ``curves.png``. A workdir that already holds a checkpoint is resumed from
its latest step; the epoch order depends only on ``(seed, epoch)`` and the
step keys on ``(seed, step)``, so the resumed run's parameters are
bit-for-bit those of an uninterrupted run on the same machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import socket
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

import jcnn
from jcnn import configs, models, optim
from jcnn import data as jdata
from jcnn.train import multihost
from jcnn.train.checkpoint import Checkpointer
from jcnn.train.parallel import DataParallel, initialize_distributed
from jcnn.train.preempt import Preemption
from jcnn.train.state import TrainState, create_state


@dataclasses.dataclass
class Run:
    """Everything `fit` builds from a config, shared with `load` and `evaluate`."""

    config: object
    dataset: str
    model: object
    tx: object
    train: jdata.DeviceData
    test: jdata.DeviceData
    mean: float
    std: float
    steps_per_epoch: int
    plan: DataParallel

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.num_epochs


def build(config, *, quiet: bool = False, plan: DataParallel | None = None) -> Run:
    """Loads the data, creates the model and the optimiser of `config`.

    The data goes where `plan` puts it (default: ``DataParallel(config.parallel)``).
    """
    config = configs.validate(config)
    if plan is None:
        plan = DataParallel(config.parallel)
    name = config.data.name
    if config.data.get("fallback"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", jdata.DatasetFallbackWarning)
            name = jdata.resolve_dataset(config.data.name, fallback=config.data.fallback)
        for w in caught:
            if not quiet and jax.process_index() == 0:
                print(str(w.message))
        if name != config.data.name:
            config = _fall_back(config, name, quiet=quiet)
    train_x, train_y = jdata.load(name, "train")
    test_x, test_y = jdata.load(name, "test")
    if config.data.get("train_subset"):
        train_x, train_y = train_x[: config.data.train_subset], train_y[: config.data.train_subset]
    if config.data.get("test_subset"):
        test_x, test_y = test_x[: config.data.test_subset], test_y[: config.data.test_subset]
    mean, std = jdata.pixel_stats(name)
    overrides = {k: v for k, v in config.model.items() if k != "name"}
    if config.dtype != "float32":
        # Compute dtype only: parameters, optimiser state and BN statistics stay float32.
        overrides.setdefault("dtype", jnp.dtype(config.dtype))
    model = models.create(config.model.name, num_classes=len(jdata.class_names(name)), **overrides)
    if config.data.batch_size > len(train_y):
        raise ValueError(
            f"config: `data.batch_size`={config.data.batch_size} exceeds the "
            f"{len(train_y):,} training images of {name!r}"
            + (
                f" (data.train_subset={config.data.train_subset})"
                if config.data.train_subset
                else ""
            )
            + "; a run trains on full batches only. Use a smaller batch size."
        )
    # Before the arrays go to the devices: a process with other shapes would build
    # other global arrays.
    multihost.check_same_data(name, train_x.shape, test_x.shape)
    steps = jdata.steps_per_epoch(len(train_y), config.data.batch_size)
    tx = optim.make_optimizer(config.optim, steps_per_epoch=steps, num_epochs=config.num_epochs)
    return Run(
        config=config,
        dataset=name,
        model=model,
        tx=tx,
        train=plan.put_data(train_x, train_y),
        test=plan.put_data(test_x, test_y),
        mean=mean,
        std=std,
        steps_per_epoch=steps,
        plan=plan,
    )


def _fall_back(config, name: str, *, quiet: bool):
    """`config` retargeted at dataset `name` with its `jcnn.data.FALLBACK_SETTINGS`;
    the run's ``config.json`` then records what was trained."""
    config = configs.from_json(config.to_json())
    config.unlock()
    config.data.name = name
    settings = jdata.FALLBACK_SETTINGS.get(name, {})
    for dotted, value in settings.items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    config.lock()
    if settings and not quiet and jax.process_index() == 0:
        changes = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        print(f"training on {name!r} with its settings: {changes} (jcnn.data.FALLBACK_SETTINGS)")
    return config


def initial_state(run: Run) -> TrainState:
    """The state of step 0, replicated on the plan's devices."""
    return run.plan.create(
        lambda: create_state(
            run.model, run.tx, jax.random.key(run.config.seed), run.train.images.shape[1:]
        )
    )


def _step_kwargs(run: Run) -> dict:
    config = run.config
    return dict(
        num_classes=len(jdata.class_names(run.dataset)),
        mean=run.mean,
        std=run.std,
        augment_ops=tuple(config.data.augment),
        crop_padding=config.data.crop_padding,
        cutout_size=config.data.get("cutout_size"),
        label_smoothing=config.label_smoothing,
        skip_nonfinite=config.on_nonfinite == "skip",
    )


def compiled_train_step(run: Run):
    """The jitted, state-donating ``step(state, images, labels)`` of `run`'s config."""
    return run.plan.train_step(run.model, run.tx, **_step_kwargs(run))


DEFAULT_STEPS_PER_CALL = 4


def steps_per_call(run: Run) -> int:
    """``config.steps_per_call``, or its default: 4 on a single device, else 1.

    Several devices keep one step per call by default: the chunk's gain was
    measured on one CPU device only. ``parallel="jit"`` and ``"shard_map"``
    accept more; ``"pmap"`` runs one step per call (ValueError otherwise).
    """
    k = run.config.get("steps_per_call")
    if k is None:
        return DEFAULT_STEPS_PER_CALL if run.plan.trivial else 1
    if k > 1 and not run.plan.trivial and run.config.parallel == "pmap":
        raise ValueError(
            f"config: `steps_per_call`={k} runs several steps in one call, which "
            f"parallel='pmap' does not; use parallel='jit' or 'shard_map', or set it to 1."
        )
    return k


def compiled_train_chunk(run: Run, k: int):
    """The jitted, state-donating ``chunk(state, images, labels, rows)``: `k` train
    steps in one XLA program, step ``i`` on the batch of this process's rows
    ``rows[i]`` (`jcnn.train.parallel.DataParallel.train_chunk`).

    On a 2-core CPU, 4 steps per call train the default config 1.24x and
    resnet20 1.17x faster than single calls (147 -> 117 and 286 -> 244 ms a
    step, 2026-11-30); 8 gained no more than 4, and compile time grows with `k`.
    """
    return run.plan.train_chunk(run.model, run.tx, k, **_step_kwargs(run))


def params_sha256(params) -> str:
    """SHA-256 over the parameter leaves' bytes, in tree order (dtype and shape included)."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        arr = np.asarray(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}:{arr.dtype}:{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def _evaluator(run: Run):
    plan = run.plan
    eval_step = plan.eval_step(
        run.model,
        num_classes=len(jdata.class_names(run.dataset)),
        mean=run.mean,
        std=run.std,
        flip_tta=run.config.get("flip_tta", False),
    )
    batch = plan.eval_batch_size(run.config.get("eval_batch_size", 1000))
    idx, mask = jdata.eval_indices(
        len(run.test.labels),
        batch,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    if not plan.trivial:
        idx, mask = np.asarray(idx), np.asarray(mask)

    def evaluate(state: TrainState) -> dict:
        totals = {"correct": 0.0, "loss": 0.0, "count": 0.0}
        for b in range(idx.shape[0]):
            images, labels = plan.take(run.test, idx[b])
            m = mask[b] if plan.trivial else plan.global_array(mask[b])
            sums = eval_step(state, images, labels, m)
            for k in totals:
                totals[k] += float(sums[k])
        return {
            "test_accuracy": totals["correct"] / totals["count"],
            "test_loss": totals["loss"] / totals["count"],
        }

    return evaluate


class _Log:
    """Appends JSON lines to ``metrics.jsonl`` (process 0 only).

    A run that starts at `step` (0, or the checkpoint it resumed from) first
    drops the records past that step, written by an attempt that ended before
    its next checkpoint (killed, or crashed mid-save): the resumed run logs
    those steps again, so each step appears once, as in an uninterrupted run.
    A line cut short by a kill is dropped too.
    """

    def __init__(self, workdir: Path, *, step: int):
        self.path = workdir / "metrics.jsonl"
        self.enabled = jax.process_index() == 0
        if self.enabled and self.path.exists():
            lines = self.path.read_text().splitlines()
            kept = [line for line in lines if _record_step(line) <= step]
            if kept != lines:
                _write_atomically(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")


def _record_step(line: str) -> float:
    """The step of a ``metrics.jsonl`` line; infinity for a line that is not a record."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return math.inf
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else math.inf


def _schedule_count(opt_state) -> int | None:
    """The step count of the learning-rate schedule in `opt_state` (None if none)."""
    found = [
        node
        for node in jax.tree.leaves(
            opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByScheduleState)
        )
        if isinstance(node, optax.ScaleByScheduleState)
    ]
    if len(found) != 1:
        return None
    count = found[0].count
    # Replicated over several processes, it is read from this process's copy.
    return int(np.asarray(count.addressable_data(0) if isinstance(count, jax.Array) else count))


class _Meter:
    """Collects step metrics and, every flush, checks them and writes their means.

    The metrics stay on the device until a flush, so the host never waits for
    a step. A flush finds the first step whose ``nonfinite`` code is set
    (`jcnn.train.step.nonfinite_check`): with ``on_nonfinite="stop"`` it raises
    `FloatingPointError` naming that step and the quantity; with ``"skip"``
    those steps (which changed nothing) are counted as ``skipped_steps`` and
    left out of the means. `fit` flushes before every checkpoint save, so no
    checkpoint ever holds a state that a non-finite step produced.
    """

    def __init__(self, run: Run, schedule, log: _Log, bar, state: TrainState):
        self.run, self.schedule, self.log, self.bar = run, schedule, log, bar
        self.skip = run.config.on_nonfinite == "skip"
        self.leaf_names = {
            name: [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(t)]
            for name, t in (("params", state.params), ("batch_stats", state.batch_stats))
        }
        self.leaf_names["opt_state"] = [
            jax.tree_util.keystr(path)
            for path, leaf in jax.tree_util.tree_leaves_with_path(state.opt_state)
            if jnp.issubdtype(leaf.dtype, jnp.inexact)
        ]
        self.pending: list[tuple[int, dict, int]] = []  # (last step, metrics, steps)
        # A skipped step leaves the optimiser state, the schedule's count with it,
        # unchanged: the steps skipped so far (before a resume too) are the lag of
        # that count behind `state.step`.
        count = _schedule_count(state.opt_state)
        self.skipped_total = 0 if count is None else int(state.step) - count
        self.tick = time.perf_counter()

    def add(self, step: int, epoch: int, metrics: dict, *, flush: bool, count: int = 1) -> None:
        """Records the metrics of the steps up to `step`: one step's, or `count` steps'
        stacked along a leading axis."""
        self.pending.append((step, metrics, count))
        self.bar.update(count)
        if flush:
            self.flush(epoch)

    def _describe(self, step: int, metrics: dict) -> str:
        from jcnn.train.step import NONFINITE

        code, leaf = int(metrics["nonfinite"]), int(metrics["nonfinite_leaf"])
        what = NONFINITE[code]
        if code in (2, 3, 4, 5):
            names = self.leaf_names[{4: "batch_stats", 5: "opt_state"}.get(code, "params")]
            what = f"{what} {names[leaf]}" if 0 <= leaf < len(names) else what
        detail = f" (loss {float(metrics['loss'])})" if code != 1 else ""
        return f"{what} became non-finite (NaN or Inf) in step {step}{detail}"

    def flush(self, epoch: int) -> None:
        """Checks and logs the steps since the last flush (no-op when there are none)."""
        if not self.pending:
            return
        steps, host = [], []
        for (last, _, count), m in zip(
            self.pending, jax.device_get([m for _, m, _ in self.pending]), strict=True
        ):
            if count == 1:
                steps.append(last)
                host.append(m)
            else:
                steps += range(last - count + 1, last + 1)
                host += [{k: v[i] for k, v in m.items()} for i in range(count)]
        bad = [i for i, m in enumerate(host) if int(m["nonfinite"])]
        if bad and not self.skip:
            i = bad[0]
            raise FloatingPointError(
                f"fit: {self._describe(steps[i], host[i])}; stopped without saving it (the "
                "latest checkpoint is finite). Lower the learning rate, clip the gradients "
                "(optim.clip) or set on_nonfinite='skip'."
            )
        good = [m for i, m in enumerate(host) if i not in set(bad)]
        if not good:
            raise FloatingPointError(
                f"fit: all {len(host)} steps up to step {steps[-1]} were non-finite and "
                f"skipped (on_nonfinite='skip'); the first: {self._describe(steps[0], host[0])}."
            )
        self.skipped_total += len(bad)
        means = {k: float(np.mean([m[k] for m in good])) for k in ("loss", "accuracy", "grad_norm")}
        now = time.perf_counter()
        step = steps[-1]
        # The rate of the last step: the schedule at the count of the steps before it
        # that were not skipped.
        lag = self.skipped_total - (1 if bad and bad[-1] == len(host) - 1 else 0)
        record = {
            "step": step,
            "epoch": step / self.run.steps_per_epoch,
            "train_loss": means["loss"],
            "train_accuracy": means["accuracy"],
            "grad_norm": means["grad_norm"],
            "lr": float(self.schedule(step - 1 - lag)),
            "images_per_sec": len(host) * self.run.config.data.batch_size / (now - self.tick),
        }
        if self.skip:
            record["skipped_steps"] = len(bad)
        self.log.write(record)
        self.bar.set_postfix(
            epoch=epoch + 1,
            loss=f"{record['train_loss']:.3f}",
            acc=f"{record['train_accuracy']:.3f}",
            img_s=f"{record['images_per_sec']:.0f}",
            **({"skipped": self.skipped_total} if self.skip else {}),
        )
        self.pending, self.tick = [], now


def fit(config, workdir) -> TrainState:
    """Trains `config` in `workdir`, resuming from its latest checkpoint if any.

    A checkpointed run resumes only under its own config: any difference in
    what it trains (`check_same_run`; the keys of `RESUMABLE_CHANGES`, such as
    logging, evaluation and ``steps_per_call``, may change) raises ValueError
    before a file is written. A bad config raises before the workdir is made.
    While it trains, `fit` holds `WorkdirLock`: a second `fit` in the same
    workdir raises `WorkdirInUseError`.

    Prints the schedule check and a progress bar; writes ``config.json``,
    ``metrics.jsonl``, ``checkpoints/`` and ``curves.png``. Returns the final
    `TrainState`. ``config.stop_at_step`` (optional) saves and returns early,
    as a preempted run does: SIGTERM or a first SIGINT makes `fit` save at the
    next call boundary and return (`jcnn.train.preempt`).

    ``config.steps_per_call`` steps (default 4 on one device, 1 on several)
    run in one compiled call (`compiled_train_chunk`) from each multiple of it
    in the epoch; the epoch's remaining steps run one per call. Runs stop, save and
    log at call boundaries: ``stop_at_step`` stops at the end of the call that
    reaches it, and a log line covers the steps up to the end of the call that
    reaches its multiple of ``log_every_steps``. Changing ``steps_per_call``
    changes the compiled program and so the float rounding (like a change of
    XLA version); the run's result stays a function of its config.

    A step whose loss, gradients, updated parameters, BatchNorm statistics or
    optimiser state are NaN/Inf stops the run with `FloatingPointError` naming
    the step and the first such quantity (``config.on_nonfinite="stop"``, the
    default) before anything is saved; with ``"skip"`` such steps leave the
    state unchanged (parameters, statistics and the whole optimiser state, the
    schedule's count included, as ``optax.apply_if_finite`` does: k skipped
    steps delay the schedule by k steps, and the logged ``lr`` is the rate
    applied) and are counted in ``metrics.jsonl`` (``skipped_steps``).

    ``config.parallel`` spreads each step over every device (`jcnn.train.parallel`;
    the global batch must be a multiple of the device count), ``config.distributed``
    or ``JAX_COORDINATOR_ADDRESS`` first starts multi-process JAX, and
    ``config.dtype`` is the compute dtype of the model's layers.
    """
    config = configs.validate(config)
    initialize_distributed(config.distributed)  # before anything touches a device
    plan = DataParallel(config.parallel)
    plan.check_batch_size(config.data.batch_size)
    workdir = _local_workdir(workdir, "fit")
    run = build(config, plan=plan)
    config = run.config
    report = optim.check_schedule_config(
        config.optim, steps_per_epoch=run.steps_per_epoch, num_epochs=config.num_epochs
    )
    per_call = steps_per_call(run)  # its errors, like the ones above, before any file
    say = print if jax.process_index() == 0 else lambda *a: None
    say(report.describe())
    say(
        f"training {config.model.name} on {run.dataset}: {len(run.train.labels):,} train / "
        f"{len(run.test.labels):,} test images, batch {config.data.batch_size}, "
        f"{config.num_epochs} epochs ({run.total_steps:,} steps), {config.dtype}, jax "
        f"{jax.__version__} on {jax.device_count()} {jax.devices()[0].platform} device(s)"
        + (f" in {jax.process_count()} processes" if jax.process_count() > 1 else "")
        + ("" if plan.trivial else f", parallel={plan.mode}")
    )
    workdir.mkdir(parents=True, exist_ok=True)
    multihost.check_shared_workdir(workdir)
    with WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext():
        return _train(run, plan, workdir, per_call, say)


def _train(run: Run, plan: DataParallel, workdir: Path, per_call: int, say) -> TrainState:
    """`fit` after its checks, with the workdir locked: resume, train, evaluate, save."""
    config = run.config
    ckpt = Checkpointer(workdir / "checkpoints", keep=config.checkpoint.keep)
    start = ckpt.latest_step()
    if start is not None:
        check_same_run(workdir, config, step=start)
    if jax.process_index() == 0:
        _write_atomically(workdir / "config.json", config.to_json(indent=2) + "\n")

    state = initial_state(run)
    if start is not None:
        state, _ = ckpt.restore(state)
        say(f"resumed from step {int(state.step):,} ({workdir / 'checkpoints'})")
    log = _Log(workdir, step=int(state.step))
    train_step = compiled_train_step(run)
    train_chunk = compiled_train_chunk(run, per_call) if per_call > 1 else None
    evaluate = _evaluator(run)
    schedule = optim.make_schedule(
        config.optim, steps_per_epoch=run.steps_per_epoch, num_epochs=config.num_epochs
    )
    stop_at = config.get("stop_at_step")
    step = int(state.step)
    epoch, first_batch = divmod(step, run.steps_per_epoch)
    bar = tqdm(
        total=run.total_steps,
        initial=step,
        disable=jax.process_index() != 0 or not config.get("progress", True),
        unit="step",
        dynamic_ncols=True,
        # Redrawn ten times a second on a terminal; into a log file, twice a minute.
        mininterval=0.1 if sys.stderr.isatty() else 30.0,
    )
    metadata = {"jcnn_version": jcnn.__version__, "dataset": run.dataset}
    meter = _Meter(run, schedule, log, bar, state)
    with Preemption() as preempt:
        while epoch < config.num_epochs and (stop_at is None or step < stop_at):
            order = jdata.batch_indices(
                config.seed,
                epoch,
                len(run.train.labels),
                config.data.batch_size,
                process_index=jax.process_index(),
                process_count=jax.process_count(),
            )
            if not plan.trivial:
                order = np.asarray(order)  # host rows, sent to each device as its shard
            b = first_batch
            while b < run.steps_per_epoch:
                # Which call runs depends only on the position in the epoch (chunks start
                # at multiples of per_call; single steps fill the epoch's tail), never on
                # where a run stopped or how often it logs: a resumed run makes the same
                # calls, so its result is bit-identical.
                n = per_call if b % per_call == 0 and b + per_call <= run.steps_per_epoch else 1
                if n == 1:
                    state, metrics = train_step(state, *plan.train_batch(run.train, order[b]))
                else:
                    rows = order[b : b + n]
                    state, metrics = train_chunk(state, run.train.images, run.train.labels, rows)
                step, b = step + n, b + n
                logged = step // config.log_every_steps > (step - n) // config.log_every_steps
                flush = logged or b == run.steps_per_epoch
                meter.add(step, epoch, metrics, flush=flush, count=n)
                if stop_at is not None and step >= stop_at:
                    break
                if preempt.should_stop(sync_point=flush):
                    break
            if b < run.steps_per_epoch:  # stopped mid-epoch (stop_at_step or a signal)
                break
            epoch, first_batch = epoch + 1, 0
            if epoch % config.eval_every_epochs == 0 or epoch == config.num_epochs:
                result = {"step": step, "epoch": epoch, **evaluate(state)}
                log.write(result)
                if jax.process_index() == 0:
                    bar.write(
                        f"epoch {epoch}: test accuracy {result['test_accuracy']:.4f}, "
                        f"test loss {result['test_loss']:.4f}"
                    )
                ckpt.save(step, state, metadata=metadata, metrics=result)
            if preempt.should_stop(sync_point=True):
                break
        bar.close()
        meter.flush(epoch)  # raises, saving nothing, if a step since the last flush failed
        if ckpt.latest_step() != step:
            ckpt.save(step, state, metadata=metadata)
        ckpt.close()
    if preempt.received:
        say(
            f"fit: stopped by {preempt.received} after step {step:,}; the checkpoint is saved "
            "and the same command resumes the run."
        )
    if jax.process_index() == 0 and epoch >= config.num_epochs:
        try:
            from jcnn.train.plot import plot_curves

            plot_curves(workdir / "metrics.jsonl", workdir / "curves.png")
        except Exception as err:  # the run is trained and saved; the figure is a bonus
            warnings.warn(f"fit: could not plot the training curves: {err!r}", stacklevel=2)
    return state


class WorkdirInUseError(RuntimeError):
    """Another process trains in the workdir (`WorkdirLock`)."""


class WorkdirLock:
    """An exclusive, advisory lock on a run's workdir (``flock`` on ``.lock``) for
    the time a `fit` trains in it: a second `fit` in the same workdir (the same
    command started twice) raises instead of writing checkpoints beside the
    first. Readers (`load`, `evaluate`, ``jcnn eval``) take no lock. The kernel
    drops the lock when the process ends, however it ends. Where ``fcntl`` is
    missing (not POSIX) no lock is taken.
    """

    def __init__(self, workdir):
        self.path = Path(workdir) / ".lock"
        self._file = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        file = open(self.path, "a+")  # held open (and locked) until __exit__
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise WorkdirInUseError(
                f"fit: {self.path.parent} is in use by {holder} (it holds {self.path}); "
                "wait for that run to end, stop it (SIGTERM saves and exits), or use "
                "another --workdir."
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        file.flush()
        self._file = file
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the lock
            self._file = None
        return False


# Keys a resumed run may change: they decide how the run is executed, logged,
# evaluated or checkpointed, not what it trains. Any other difference between
# a workdir's config.json and the new config is an error (`check_same_run`).
RESUMABLE_CHANGES = frozenset(
    {
        "progress",
        "log_every_steps",
        "stop_at_step",
        "steps_per_call",
        "parallel",
        "distributed",
        "on_nonfinite",
        "eval_every_epochs",
        "eval_batch_size",
        "flip_tta",
        "checkpoint.keep",
    }
)


def _flat(tree, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_same_run(workdir, config, *, step: int | None = None) -> None:
    """Raises ValueError when `workdir` holds a run of a config that differs from
    `config` in what it trains (any key outside `RESUMABLE_CHANGES`).

    `fit` calls it before resuming, so that a mistaken command (another
    config, another learning rate or epoch count) neither trains a model under
    a config it was not started with nor overwrites the run's ``config.json``.
    """
    path = Path(workdir) / "config.json"
    if not path.exists():  # another host's workdir: only process 0 writes the file
        return
    try:
        stored = configs.from_json(path.read_text())
    except (ValueError, TypeError) as e:
        raise ValueError(f"fit: the run in {workdir} has an unreadable {path.name}: {e}") from e
    old = _flat(json.loads(stored.to_json()))
    new = _flat(json.loads(configs.validate(config).to_json()))
    changed = sorted(
        key
        for key in old.keys() | new.keys()
        if key not in RESUMABLE_CHANGES and old.get(key, "<unset>") != new.get(key, "<unset>")
    )
    if changed:
        shown = "; ".join(
            f"{key}: {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}"
            for key in changed[:6]
        )
        more = f" (and {len(changed) - 6} more)" if len(changed) > 6 else ""
        raise ValueError(
            f"fit: {workdir} holds a run{'' if step is None else f' (saved at step {step:,})'} "
            f"of a different config: {shown}{more}. To resume it, repeat its config "
            f"({path}); to train this one, use another --workdir."
        )


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _restore(run: Run, workdir: Path) -> TrainState:
    abstract = run.plan.state_like(jax.eval_shape(lambda: initial_state(run)))
    with Checkpointer(workdir / "checkpoints") as ckpt:
        state, _ = ckpt.restore(abstract)
    return state


def _local_workdir(workdir, fn: str) -> Path:
    """`workdir` as a `Path`, refusing a URL: ``Path("gs://b/run")`` is the local
    directory ``gs:/b/run``, where a run would land unnoticed. A run's workdir is
    a local or mounted (NFS, gcsfuse) directory."""
    if not isinstance(workdir, str | os.PathLike):
        raise TypeError(
            f"{fn}: `workdir` must be a path (str or os.PathLike), got {type(workdir).__name__}."
        )
    if "://" in os.fspath(workdir):
        raise ValueError(
            f"{fn}: `workdir` must be a local or mounted directory, got the URL "
            f"{os.fspath(workdir)!r}; mount the bucket (e.g. gcsfuse) and pass its path."
        )
    return Path(workdir)


def _run_of(workdir: Path, fn: str) -> Run:
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{fn}: no run in {workdir}: {config_path} does not exist.")
    return build(configs.from_json(config_path.read_text()), quiet=True)


def load(workdir) -> TrainState:
    """The latest checkpointed `TrainState` of the run in `workdir`."""
    workdir = _local_workdir(workdir, "load")
    return _restore(_run_of(workdir, "load"), workdir)


def evaluate(workdir) -> dict:
    """Evaluates the latest checkpoint in `workdir` on the test split.

    Returns ``step``, ``test_accuracy``, ``test_loss`` and ``params_sha256``.
    """
    workdir = _local_workdir(workdir, "evaluate")
    run = _run_of(workdir, "evaluate")
    state = _restore(run, workdir)
    result = _evaluator(run)(state)
    return {"step": int(state.step), **result, "params_sha256": params_sha256(state.params)}
