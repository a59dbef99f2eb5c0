"""Orbax checkpoints of a training run: atomic, pruned, restored bit for bit.

A checkpoint is one directory per step under `directory` (``<directory>/<step>/``)
written by an Orbax ``CheckpointManager``. It holds four items:

- ``state/``: the arrays of the training state (params, batch stats, optimiser
  state, step, RNG key data; the data position follows from the step) in
  Orbax's array format (TensorStore/OCDBT chunks plus JSON metadata), written
  with ``StandardSave``;
- ``metadata/``: a JSON file of what the caller passes (`fit`: the jcnn version
  and the dataset), ``JsonSave``;
- ``checksums/``: a JSON file with the SHA-256 of every leaf of ``state`` (over
  its dtype, shape and bytes) and of the metadata's JSON text;
- ``metrics/``: a JSON file of the scalar metrics passed to `save`, used to keep
  the best checkpoint.

Checkpoints contain no pickle: every file is JSON, plain text or raw array
chunks (TensorStore), read by parsers that build only data, so loading a
checkpoint, even a damaged or a hostile one, never runs code.

Integrity: the checksums are written in the same atomic save as the arrays and
verified on every `restore`. A damaged checkpoint (a truncated or bit-flipped
file: TensorStore fails to read or decompress a chunk, a JSON file no longer
parses, or a leaf reads back with other bytes than were saved; a flipped byte
in a stored chunk often decodes silently to other values, which only the
checksum catches) raises `CorruptCheckpointError` naming the step, and the
leaf or the file where that is known. ``restore(step=None)`` then warns
(`CorruptCheckpointWarning`, naming the bad step) and falls back to the newest
older step that verifies; ``restore(step=k)`` raises. A writer ignores the
corrupt steps it found when deciding whether a step is new, overwrites them,
and prunes them. Checkpoints written before checksums existed restore
unverified. A leaf replicated over several processes (the training state of
a multi-host run) is checksummed from each process's copy; leaves sharded over
several hosts are not checksummed. The checksums guard against accidents
(disk, network, a killed copy), not tampering: whoever can rewrite the arrays
can rewrite their checksums. Hashing reads each leaf to the host once per save
and once per restore.

Atomicity is Orbax's. On a POSIX file system a step is written into
``<step>.orbax-checkpoint-tmp`` and renamed to ``<step>`` on commit (on GCS,
where rename is not atomic, Orbax writes ``commit_success.txt`` last instead).
Orbax lists only committed steps, so a save killed half-way is never the latest
step and the previous checkpoint stays loadable. The first `save` of a
`Checkpointer` deletes such leftovers (``cleanup_tmp_directories``); one that
only reads, e.g. an evaluation next to a running job, leaves them alone.

Retention: after each save the last `keep` steps are kept, plus (when
`keep_best`) the step with the best `best_metric`, however old; every other step
is deleted. This is not Orbax's ``max_to_keep`` + ``best_fn``, which keeps the
top-`keep` by metric and may delete the newest step.

All file writes go through Orbax, which coordinates processes, so the class is
correct for one process and does not stand in the way of several.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import re
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp

from jcnn.functional._checks import check_int

_STATE, _METADATA, _CHECKSUMS = "state", "metadata", "checksums"
_JSON_FILE = "metadata"  # the file name JsonCheckpointHandler writes in its item directory
_log = logging.getLogger(__name__)


class CorruptCheckpointWarning(UserWarning):
    """`restore` skipped a corrupt checkpoint and fell back to an older one."""


class CorruptCheckpointError(ValueError):
    """A committed checkpoint whose files cannot be read or fail their checksums."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def best_step(steps, scores: dict, best_mode: str = "max") -> int | None:
    """The step with the best score, None if no step has one.

    `scores` maps a step to its `best_metric` value, or to None where that step
    has no finite value. Among equal scores the earliest step wins, so a later
    checkpoint must strictly improve on the best to replace it.
    """
    sign = 1.0 if best_mode == "max" else -1.0
    ranked = [s for s in steps if scores.get(s) is not None]
    return max(ranked, key=lambda s: (sign * scores[s], -s)) if ranked else None


def steps_to_keep(
    steps, scores: dict, *, keep: int, keep_best: bool, best_mode: str = "max"
) -> set[int]:
    """The steps the retention policy keeps: the last `keep`, plus `best_step` if `keep_best`."""
    kept = set(sorted(steps)[-keep:])
    best = best_step(steps, scores, best_mode) if keep_best else None
    return kept if best is None else kept | {best}


class Checkpointer:
    """Saves and restores a training state pytree with Orbax; see the module doc.

    Args:
      directory: where the step directories go (local path or ``gs://...``).
        It is created on the first save, not by the constructor.
      keep: how many of the most recent checkpoints to keep (>= 1).
      keep_best: also keep the checkpoint with the best `best_metric`.
      best_metric: the key of the `metrics` dict passed to `save` to rank by.
      best_mode: ``"max"`` or ``"min"``: which end of `best_metric` is best.
      async_save: write in a background thread; `save` returns once the arrays
        are copied off the device. Off by default: synchronous saves are simple
        and deterministic. Call `wait` (or `close`) before reading the files.
    """

    def __init__(
        self,
        directory,
        *,
        keep: int = 3,
        keep_best: bool = True,
        best_metric: str = "test_accuracy",
        best_mode: str = "max",
        async_save: bool = False,
    ):
        fn = "Checkpointer"
        self.keep = check_int(keep, "keep", fn, minimum=1)
        if best_mode not in ("max", "min"):
            raise ValueError(f"{fn}: `best_mode` must be 'max' or 'min', got {best_mode!r}.")
        if not isinstance(best_metric, str):
            raise TypeError(f"{fn}: `best_metric` must be a str, got {best_metric!r}.")
        directory = os.fspath(directory)
        # Orbax wants absolute local paths; URLs (gs://...) are left alone.
        self.directory = directory if "://" in directory else os.path.abspath(directory)
        self.keep_best = bool(keep_best)
        self.best_metric = best_metric
        self.best_mode = best_mode
        self._async = bool(async_save)
        self._pending = False  # a save whose pruning waits for its commit
        self._scores: dict[int, float | None] = {}
        self._corrupt: set[int] = set()  # steps `restore` found damaged
        # Read-only until the first save: a Checkpointer that only restores (an
        # evaluation next to a running job) must not delete that job's
        # in-flight temporary directory, so only a writer cleans them up.
        self._writing = False
        self._manager = self._open(cleanup=False)

    def _open(self, *, cleanup: bool) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(
            # No max_to_keep: Orbax deletes nothing, `_prune` applies our policy.
            # A best_fn makes Orbax write and read back the metrics item.
            best_fn=self._orbax_rank,
            best_mode=self.best_mode,
            create=False,
            cleanup_tmp_directories=cleanup,
            enable_async_checkpointing=self._async,
            # Orbax would read every step's metrics here, and one damaged file
            # would make the directory unopenable; `_step_score` reads them lazily.
            lightweight_initialize=True,
        )
        return ocp.CheckpointManager(
            self.directory,
            options=options,
            # Handlers given up front, so a fresh process can read item metadata.
            item_handlers={
                _STATE: ocp.StandardCheckpointHandler(),
                _METADATA: ocp.JsonCheckpointHandler(),
                _CHECKSUMS: ocp.JsonCheckpointHandler(),
            },
        )

    def _score(self, metrics) -> float | None:
        """`best_metric` of a metrics dict, None where missing or not finite."""
        value = (metrics or {}).get(self.best_metric)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def _orbax_rank(self, metrics) -> float:
        # Orbax only needs best_fn to be set; keep it total in case it sorts.
        score = self._score(metrics)
        if score is None:
            return -math.inf if self.best_mode == "max" else math.inf
        return score

    # --- queries ---

    def all_steps(self) -> list[int]:
        """The committed steps in `directory`, ascending."""
        return sorted(int(s) for s in self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest committed step, or None if there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def best_step(self) -> int | None:
        """The committed step with the best `best_metric`, or None if none has it."""
        steps = self.all_steps()
        return best_step(steps, {s: self._step_score(s) for s in steps}, self.best_mode)

    def _step_score(self, step: int) -> float | None:
        if step not in self._scores:
            try:
                metrics = self._manager.metrics(step)
            except Exception as e:  # a damaged metrics file: the step just cannot be best
                _log.warning("Checkpointer: metrics of step %d unreadable (%s).", step, e)
                metrics = None
            self._scores[step] = self._score(metrics)
        return self._scores[step]

    # --- save ---

    def save(
        self, step: int, state, *, metadata: dict, metrics: dict | None = None, force: bool = False
    ) -> None:
        """Writes `state` (a pytree of arrays) and `metadata` (JSON) as checkpoint `step`.

        A step not newer than the latest one is skipped (logged), unless `force`,
        which overwrites a checkpoint of the same step. `metrics` maps names to
        real numbers; its `best_metric` entry ranks the checkpoint for `keep_best`.
        After the save, steps outside the retention policy are deleted.
        """
        fn = "Checkpointer.save"
        step = check_int(step, "step", fn, minimum=0)
        metadata = _check_metadata(metadata, fn)
        metrics = _check_metrics(metrics, fn)
        _check_state(state, fn)
        self._finish_pending()
        if not self._writing:
            self._manager.close()
            self._manager = self._open(cleanup=True)
            self._writing = True
        steps = self.all_steps()
        # A corrupt step is no checkpoint: a run resumed before it must save over it.
        good = [s for s in steps if s not in self._corrupt]
        if not force and good and step <= good[-1]:
            _log.info("%s: step %d not newer than %d; skipped.", fn, step, good[-1])
            return
        if step in steps:
            self._manager.delete(step)
            self._scores.pop(step, None)
            self._corrupt.discard(step)
        checksums = {"leaves": _leaf_checksums(state), "metadata": _json_checksum(metadata)}
        self._manager.save(
            step,
            args=ocp.args.Composite(
                **{
                    _STATE: ocp.args.StandardSave(state),
                    _METADATA: ocp.args.JsonSave(metadata),
                    _CHECKSUMS: ocp.args.JsonSave({"sha256": checksums}),
                }
            ),
            metrics=metrics,
            # Our own skip rule above replaces Orbax's save-interval decision.
            force=True,
        )
        self._scores[step] = self._score(metrics)
        self._pending = True
        if not self._async:
            self._finish_pending()

    def _finish_pending(self) -> None:
        """Waits for the last save to commit, then prunes: never delete before commit."""
        if self._pending:
            self._manager.wait_until_finished()
            self._pending = False
            self._prune()

    def _prune(self) -> None:
        steps = self.all_steps()
        good = [s for s in steps if s not in self._corrupt]
        scores = {s: self._step_score(s) for s in good} if self.keep_best else {}
        kept = steps_to_keep(
            good, scores, keep=self.keep, keep_best=self.keep_best, best_mode=self.best_mode
        )
        # Corrupt steps count for nothing; one newer than every good step stays
        # until the resumed run saves over it.
        newest = max(good, default=-1)
        kept |= {s for s in self._corrupt if s > newest}
        for s in steps:
            if s not in kept:
                self._manager.delete(s)
                self._scores.pop(s, None)
                self._corrupt.discard(s)

    # --- restore ---

    def restore(self, state_like, step: int | None = None):
        """Reads checkpoint `step` (default: the latest) into the structure of `state_like`.

        `state_like` is a pytree with the structure, shapes and dtypes of the
        saved state: concrete arrays, or ``jax.ShapeDtypeStruct`` leaves (e.g. from
        ``jax.eval_shape``), whose `sharding` places the restored arrays (default
        device when None). Returns ``(state, metadata)``; arrays are bit-identical
        to those saved, and `metadata` is the saved dict after a JSON round trip
        (tuples come back as lists).

        Every leaf is checked against the checksums saved with it. With ``step=None``
        a corrupt step is skipped with a `CorruptCheckpointWarning` naming it, and
        the newest older step that verifies is restored; `CorruptCheckpointError`
        if none does. An explicit `step` that is corrupt raises
        `CorruptCheckpointError`.
        """
        fn = "Checkpointer.restore"
        self._finish_pending()
        steps = self.all_steps()
        if not steps:
            why = "holds no committed checkpoint"
            if not os.path.exists(self.directory) and "://" not in self.directory:
                why = "does not exist"
            raise FileNotFoundError(f"{fn}: no checkpoint to restore: {self.directory!r} {why}.")
        _check_state_like(state_like, fn)  # so that what fails below is the files
        if step is not None:
            if step not in steps:
                raise FileNotFoundError(
                    f"{fn}: no checkpoint for step {step!r} in {self.directory!r}; "
                    f"committed steps: {steps}."
                )
            return self._restore_step(state_like, step, fn)
        corrupt = []
        for candidate in reversed(steps):
            try:
                result = self._restore_step(state_like, candidate, fn)
            except CorruptCheckpointError as err:
                corrupt.append(candidate)
                older = [s for s in steps if s < candidate]
                then = f"trying step {older[-1]}" if older else "no older step to try"
                warnings.warn(f"{err} Skipped; {then}.", CorruptCheckpointWarning, stacklevel=2)
                continue
            return result
        raise CorruptCheckpointError(
            f"{fn}: every checkpoint in {self.directory!r} is corrupt (steps {sorted(corrupt)}); "
            "see the warnings above for each.",
            step=corrupt[0],
        )

    def _restore_step(self, state_like, step: int, fn: str):
        """Restores and verifies one step; `CorruptCheckpointError` if it is damaged."""
        try:
            items = self._manager.item_metadata(step)
            saved = items[_STATE]
            saved_tree = getattr(saved, "tree", saved)
            verified = _CHECKSUMS in items.keys()
        except Exception as e:  # Orbax and TensorStore raise many kinds on damaged files
            raise self._corruption(step, "reading its metadata failed", e) from e
        _check_same_arrays(saved_tree, state_like, step, fn)
        args = {_STATE: ocp.args.StandardRestore(state_like), _METADATA: ocp.args.JsonRestore()}
        if verified:
            args[_CHECKSUMS] = ocp.args.JsonRestore()
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(**args))
            state, metadata = restored[_STATE], restored[_METADATA]
            if verified:
                record = restored[_CHECKSUMS]["sha256"]
                leaves, metadata_sum = dict(record["leaves"]), record["metadata"]
        except Exception as e:
            raise self._corruption(step, "reading it failed", e) from e
        if not verified:
            _log.info("%s: step %d has no checksums (older jcnn); restored unverified.", fn, step)
            self._corrupt.discard(step)
            return state, metadata
        missing = object()
        bad = [
            path
            for path, digest in _leaf_checksums(state).items()
            if digest is not None and leaves.get(path, missing) not in (digest, None)
        ]
        if bad:
            more = f" (and {len(bad) - 1} more: {bad[1:6]})" if len(bad) > 1 else ""
            step_dir = os.path.join(self.directory, str(step))
            # Which side is damaged, the arrays or the checksums, cannot be told apart.
            raise self._corruption(
                step,
                f"leaf {bad[0]!r}{more} does not match the SHA-256 saved with it (arrays "
                f"under {os.path.join(step_dir, _STATE)!r}, checksums in "
                f"{os.path.join(step_dir, _CHECKSUMS, _JSON_FILE)!r})",
            )
        if _json_checksum(metadata) != metadata_sum:
            where = os.path.join(self.directory, str(step), _METADATA, _JSON_FILE)
            raise self._corruption(step, f"file {where!r} does not match the SHA-256 saved with it")
        self._corrupt.discard(step)  # it reads now: the earlier failure was transient
        return state, metadata

    def _corruption(self, step: int, what: str, cause: Exception | None = None):
        """Remembers `step` as corrupt; the error naming it, the file and the cause."""
        self._corrupt.add(step)
        detail = ""
        if cause is not None:
            root = _root_cause(cause)
            text = " ".join(str(root).split())
            damaged = _damaged_file(text, os.path.join(self.directory, str(step)))
            if damaged:
                what += f" (file {damaged!r})"
            detail = f": {type(root).__name__}: {text[:400]}"
        return CorruptCheckpointError(
            f"Checkpointer.restore: checkpoint step {step} in {self.directory!r} is corrupt: "
            f"{what}{detail}.",
            step=step,
        )

    # --- lifetime ---

    def wait(self) -> None:
        """Blocks until every save has committed (and pruning has run)."""
        self._finish_pending()
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases Orbax's threads."""
        self.wait()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _leaf_checksums(state) -> dict[str, str | None]:
    """SHA-256 of each leaf's dtype, shape and bytes, keyed by its path ('a/0/b').

    A leaf replicated over several processes is read from this process's copy;
    None for a leaf no process holds whole (sharded over several hosts).
    """
    sums = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            if not leaf.is_fully_replicated:
                sums[_path_str(path)] = None
                continue
            leaf = leaf.addressable_data(0)
        array = np.asarray(leaf)
        digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
        sums[_path_str(path)] = digest.hexdigest()
    return sums


def _json_checksum(metadata) -> str:
    # Canonical text of the JSON round trip (keys become strings, then sorted).
    text = json.dumps(json.loads(json.dumps(metadata)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _root_cause(err: BaseException) -> BaseException:
    # The innermost error says what TensorStore or json found; Orbax's wrappers do not.
    for _ in range(16):
        inner = err.__cause__
        if inner is None and not err.__suppress_context__:
            inner = err.__context__
        if inner is None:
            break
        err = inner
    return err


def _damaged_file(message: str, step_dir: str) -> str | None:
    """The file a read error points at, or the first JSON file of the step that fails to parse."""
    # TensorStore names a data file (or at least the database directory) in its messages.
    named = [f for f in re.findall(r'local file "([^"]+)"', message) if not f.endswith("/")]
    if named:
        return named[-1]
    for root, dirs, files in os.walk(step_dir):
        dirs[:] = sorted(d for d in dirs if d != "d")  # array chunks are not JSON
        for name in sorted(files):
            if name in ("manifest.ocdbt", "commit_success.txt"):
                continue
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    json.loads(f.read())
            except (OSError, ValueError):
                return path
    return None


def _check_metadata(metadata, fn: str) -> dict:
    if not isinstance(metadata, dict):
        raise TypeError(
            f"{fn}: `metadata` must be a JSON-serialisable dict, got {type(metadata).__name__}."
        )
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{fn}: `metadata` must be JSON-serialisable (str, numbers, lists, dicts; "
            f"convert arrays with .tolist() or float()): {e}"
        ) from e
    return metadata


def _check_metrics(metrics, fn: str) -> dict:
    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        raise TypeError(f"{fn}: `metrics` must be a dict of name -> number, got {metrics!r}.")
    out = {}
    for name, value in metrics.items():
        # Accepts Python, NumPy and 0-d JAX numbers; JSON needs plain Python ones.
        item = np.asarray(value).item() if np.ndim(value) == 0 else value
        if not isinstance(item, numbers.Real) or isinstance(item, bool):
            raise TypeError(f"{fn}: `metrics[{name!r}]` must be a real number, got {value!r}.")
        out[str(name)] = item
    return out


def _check_state(state, fn: str) -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        dtype = getattr(leaf, "dtype", None)
        if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            raise TypeError(
                f"{fn}: leaf {_path_str(path)!r} of `state` is a typed PRNG key ({dtype}); "
                "save jax.random.key_data(key) and rebuild it with jax.random.wrap_key_data."
            )


_TARGETS = (jax.Array, np.ndarray, jax.ShapeDtypeStruct, int, float)


def _check_state_like(state_like, fn: str) -> None:
    for path, leaf in jax.tree_util.tree_flatten_with_path(state_like)[0]:
        if not isinstance(leaf, _TARGETS):
            raise TypeError(
                f"{fn}: leaf {_path_str(path)!r} of `state_like` is a {type(leaf).__name__}; "
                "expected an array, a jax.ShapeDtypeStruct or a Python int/float "
                "(wrap NumPy scalars in np.asarray)."
            )


def _path_str(path) -> str:
    """A key path as 'a/0/b' whatever the node kinds (dict, tuple, NamedTuple)."""
    parts = []
    for k in path:
        for attr in ("key", "idx", "name"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def _shape(leaf) -> tuple:
    return tuple(leaf.shape) if hasattr(leaf, "shape") else np.shape(leaf)


def _describe(leaf) -> str:
    dtype = getattr(leaf, "dtype", None)
    return f"{_shape(leaf)} {np.dtype(dtype) if dtype is not None else '(no dtype)'}"


def _check_same_arrays(saved_tree, state_like, step: int, fn: str) -> None:
    """Raises a ValueError naming the first leaf whose path, shape or dtype differ.

    Orbax stores tuples and NamedTuples as lists and dicts, so leaves are matched
    by their key path written as a string, not by pytree node types.
    """
    saved = {_path_str(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(saved_tree)[0]}
    where = f"checkpoint step {step}"
    for p, leaf in jax.tree_util.tree_flatten_with_path(state_like)[0]:
        path = _path_str(p)
        if path not in saved:
            raise ValueError(
                f"{fn}: `state_like` does not match {where}: leaf {path!r} is "
                f"{_describe(leaf)} in `state_like` but absent from the checkpoint "
                f"(its unmatched leaves: {sorted(saved)[:8]})."
            )
        ref = saved.pop(path)
        same_shape = _shape(ref) == _shape(leaf)
        same_dtype = getattr(leaf, "dtype", None) is None or np.dtype(ref.dtype) == np.dtype(
            leaf.dtype
        )
        if not (same_shape and same_dtype):
            raise ValueError(
                f"{fn}: `state_like` does not match {where}: leaf {path!r} is "
                f"{_describe(leaf)} in `state_like` but {_describe(ref)} in the checkpoint."
            )
    if saved:
        path, ref = next(iter(saved.items()))
        raise ValueError(
            f"{fn}: `state_like` does not match {where}: leaf {path!r} is "
            f"{_describe(ref)} in the checkpoint but absent from `state_like`."
        )
