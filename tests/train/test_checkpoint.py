"""Tests of `jcnn.train.checkpoint`: exact round trips, retention, atomicity, integrity, errors."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from jcnn.train.checkpoint import (
    Checkpointer,
    CorruptCheckpointError,
    CorruptCheckpointWarning,
    steps_to_keep,
)


@flax.struct.dataclass
class _State:
    """A TrainState-like container: a flax dataclass pytree node holding nested states."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    rng: jax.Array
    data: Any


def _state(seed: int = 0) -> _State:
    rng = np.random.default_rng(seed)
    # Special float32 values catch any re-encoding: NaN payload, -0.0, inf, a subnormal.
    special = np.array([np.nan, -0.0, np.inf, 1e-45], np.float32)
    params = {
        "conv": {
            "kernel": jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.float32),
            "bias": jnp.asarray(special),
        },
        "head": {"kernel": jnp.asarray(rng.standard_normal((4, 3)), jnp.bfloat16)},
    }
    sgd, adam = optax.sgd(0.1, momentum=0.9), optax.adam(1e-3)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    # One update so the momentum/moment buffers and Adam's count are not all zero.
    opt_state = tuple(tx.update(grads, tx.init(params), params)[1] for tx in (sgd, adam))
    return _State(
        step=jnp.asarray(seed + 7, jnp.int32),
        params=params,
        batch_stats={"bn": {"mean": jnp.asarray(rng.standard_normal(4), jnp.float32)}},
        opt_state=opt_state,
        rng=jax.random.key_data(jax.random.key(seed)),
        # An empty dict node, like `batch_stats` of a model without BatchNorm.
        data={"epoch": np.asarray(3, np.int32), "order": np.arange(5, dtype=np.int32), "x": {}},
    )


METADATA = {"config": {"model": "lenet5", "lr": 0.1, "augment": ["crop", "flip"]}, "v": "0.1.0"}


def _assert_bit_identical(restored, expected):
    assert jax.tree.structure(restored) == jax.tree.structure(expected)
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(restored)[0], jax.tree.leaves(expected), strict=True
    ):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype, jax.tree_util.keystr(path)
        assert a.shape == b.shape, jax.tree_util.keystr(path)
        assert a.tobytes() == b.tobytes(), jax.tree_util.keystr(path)


def test_round_trip_is_bit_exact_with_optax_states_and_metadata(tmp_path):
    state = _state()
    assert isinstance(state.opt_state[0][0], optax.TraceState)  # the NamedTuples are really there
    assert isinstance(state.opt_state[1][0], optax.ScaleByAdamState)
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(7, state, metadata=METADATA, metrics={"test_accuracy": 0.5})
    ckpt = Checkpointer(tmp_path / "ckpt")  # a fresh process would see only the files
    for state_like in (jax.eval_shape(lambda: state), _state(seed=1)):
        restored, metadata = ckpt.restore(state_like)
        _assert_bit_identical(restored, state)
        assert metadata == METADATA
    assert isinstance(restored.params["head"]["kernel"], jax.Array)
    assert isinstance(restored.opt_state[1][0], optax.ScaleByAdamState)


def test_latest_and_all_steps_persist_and_old_steps_are_skipped_unless_forced(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=5)
    assert ckpt.latest_step() is None and ckpt.all_steps() == []
    for step in (10, 20, 30):
        ckpt.save(step, _state(step), metadata={"step": step})
    assert ckpt.all_steps() == [10, 20, 30] and ckpt.latest_step() == 30
    reopened = Checkpointer(tmp_path / "ckpt", keep=5)
    assert reopened.all_steps() == [10, 20, 30] and reopened.latest_step() == 30

    reopened.save(30, _state(99), metadata={"step": "again"})  # not newer: skipped
    restored, metadata = reopened.restore(jax.eval_shape(lambda: _state()))
    _assert_bit_identical(restored, _state(30))
    assert metadata == {"step": 30}
    reopened.save(30, _state(99), metadata={"step": "again"}, force=True)  # overwritten
    restored, metadata = reopened.restore(jax.eval_shape(lambda: _state()), step=30)
    _assert_bit_identical(restored, _state(99))
    assert metadata == {"step": "again"}
    assert reopened.all_steps() == [10, 20, 30]


# Accuracy per step 1..6; the best (0.9) is the early step 2. With keep=2 the
# policy keeps the last two steps plus step 2, worked out by hand after each save.
ACCURACIES = [0.5, 0.9, 0.6, 0.7, 0.8, 0.85]
KEPT_AFTER_EACH_SAVE = [[1], [1, 2], [2, 3], [2, 3, 4], [2, 4, 5], [2, 5, 6]]


def test_keeps_last_n_plus_best_and_remembers_the_best_across_restarts(tmp_path):
    state = _state()
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2)
    for step, (acc, kept) in enumerate(zip(ACCURACIES, KEPT_AFTER_EACH_SAVE, strict=True), 1):
        ckpt.save(step, state, metadata={}, metrics={"test_accuracy": acc, "epoch": step})
        assert ckpt.all_steps() == kept
        assert sorted(os.listdir(tmp_path / "ckpt")) == [str(s) for s in kept]
    assert ckpt.best_step() == 2
    # A restarted run reads step 2's metric back from disk and keeps it.
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2)
    ckpt.save(7, state, metadata={}, metrics={"test_accuracy": 0.1})
    assert ckpt.all_steps() == [2, 6, 7]
    ckpt.save(8, state, metadata={})  # no metrics: cannot be best
    assert ckpt.all_steps() == [2, 7, 8]


def test_keep_best_off_and_min_mode(tmp_path):
    no_best = Checkpointer(tmp_path / "a", keep=2, keep_best=False)
    losses = Checkpointer(tmp_path / "b", keep=2, best_metric="test_loss", best_mode="min")
    for step, acc in enumerate(ACCURACIES, 1):
        no_best.save(step, _state(), metadata={}, metrics={"test_accuracy": acc})
        # Loss 1 - accuracy: the lowest loss is at step 2 again.
        losses.save(step, _state(), metadata={}, metrics={"test_loss": 1.0 - acc})
    assert no_best.all_steps() == [5, 6]
    assert losses.all_steps() == [2, 5, 6] and losses.best_step() == 2


def test_steps_to_keep_ties_go_to_the_earliest_and_missing_scores_never_win():
    scores = {1: 0.9, 2: None, 3: 0.9, 4: 0.2, 5: 0.1}
    assert steps_to_keep(range(1, 6), scores, keep=1, keep_best=True) == {1, 5}
    assert steps_to_keep(range(1, 6), scores, keep=1, keep_best=True, best_mode="min") == {5}
    assert steps_to_keep([3, 1, 2], {2: None}, keep=2, keep_best=True) == {2, 3}


def test_interrupted_save_is_never_latest_and_previous_checkpoint_loads(tmp_path, monkeypatch):
    from orbax.checkpoint._src.path import atomicity

    directory = tmp_path / "ckpt"
    ckpt = Checkpointer(directory)
    ckpt.save(1, _state(1), metadata={"step": 1})

    async def killed(self):  # dies after writing every byte, before the commit rename
        raise KeyboardInterrupt("killed mid-save")

    with monkeypatch.context() as m:
        m.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", killed)
        with pytest.raises(KeyboardInterrupt):
            ckpt.save(2, _state(2), metadata={"step": 2})
    leftovers = [n for n in os.listdir(directory) if n.startswith("2.")]
    assert leftovers and all(".orbax-checkpoint-tmp" in n for n in leftovers)
    # An older Orbax names its temporary directories with a timestamp suffix.
    (directory / "3.orbax-checkpoint-tmp-1700000000").mkdir()
    (directory / "3.orbax-checkpoint-tmp-1700000000" / "junk").write_bytes(b"half")

    restarted = Checkpointer(directory)
    assert restarted.all_steps() == [1] and restarted.latest_step() == 1
    restored, metadata = restarted.restore(jax.eval_shape(lambda: _state()))
    _assert_bit_identical(restored, _state(1))
    assert metadata == {"step": 1}
    # Reading deletes nothing: the leftover could be a running job's save in flight.
    assert set(leftovers) < set(os.listdir(directory))
    restarted.save(2, _state(2), metadata={"step": 2})  # the same step commits this time
    restarted.wait()
    assert restarted.all_steps() == [1, 2]
    assert sorted(os.listdir(directory)) == ["1", "2"]  # leftovers cleaned up


def test_restore_without_checkpoint_raises_file_not_found(tmp_path):
    missing = tmp_path / "nowhere"
    ckpt = Checkpointer(missing)
    assert not missing.exists()  # constructing does not create the directory
    with pytest.raises(FileNotFoundError, match=r"nowhere' does not exist"):
        ckpt.restore(_state())
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty' holds no committed checkpoint"):
        Checkpointer(tmp_path / "empty").restore(_state())
    ckpt.save(4, _state(), metadata={})
    with pytest.raises(FileNotFoundError, match=r"no checkpoint for step 5 .* steps: \[4\]"):
        ckpt.restore(_state(), step=5)


def test_restore_mismatch_names_the_leaf_and_both_shapes(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt")
    ckpt.save(1, {"w": jnp.ones((2, 3)), "opt": (jnp.zeros(3, jnp.int32),)}, metadata={})
    like = {"w": jax.ShapeDtypeStruct((2, 3), jnp.float32), "opt": (jnp.zeros(3, jnp.int32),)}
    with pytest.raises(ValueError, match=r"leaf 'w' is \(3, 3\) float32 in `state_like` but "):
        ckpt.restore({**like, "w": jax.ShapeDtypeStruct((3, 3), jnp.float32)})
    with pytest.raises(ValueError, match=r"but \(2, 3\) float32 in the checkpoint"):
        ckpt.restore({**like, "w": jax.ShapeDtypeStruct((3, 3), jnp.float32)})
    with pytest.raises(ValueError, match=r"leaf 'opt/0' is \(3,\) float32 in `state_like` but"):
        ckpt.restore({**like, "opt": (jnp.zeros(3, jnp.float32),)})
    with pytest.raises(ValueError, match=r"leaf 'b' is \(\) float32 in `state_like` but absent"):
        ckpt.restore({**like, "b": jnp.zeros(())})
    with pytest.raises(ValueError, match=r"leaf 'opt/0' is \(3,\) int32 in the checkpoint but"):
        ckpt.restore({"w": like["w"]})
    with pytest.raises(TypeError, match=r"leaf 'w' of `state_like` is a float32; expected an"):
        ckpt.restore({**like, "w": np.float32(1.0)})


def test_checkpoint_files_are_json_text_or_array_chunks_never_pickle(tmp_path):
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, _state(), metadata=METADATA, metrics={"test_accuracy": 0.5})
    kinds = set()
    for root, _, files in os.walk(tmp_path / "ckpt"):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, tmp_path / "ckpt")
            head = Path(path).read_bytes()[:2]
            # Pickle protocols 2-5 open with b"\x80" and the protocol number.
            assert not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))
            assert not name.endswith((".pkl", ".pickle", ".npy", ".npz"))
            if name == "commit_success.txt":
                kinds.add("commit")
            elif name == "manifest.ocdbt" or os.path.basename(root) == "d":
                kinds.add("array chunks")  # TensorStore OCDBT: manifests and data files
            else:
                json.loads(Path(path).read_text())  # everything else is JSON
                kinds.add("json")
            assert rel.split(os.sep)[0] == "1"
    # Orbax < 0.12 writes no commit file on POSIX (the rename alone commits).
    assert {"array chunks", "json"} <= kinds <= {"commit", "array chunks", "json"}
    assert json.loads((tmp_path / "ckpt/1/metadata/metadata").read_text()) == METADATA


def test_async_save_round_trip_and_pruning(tmp_path):
    with Checkpointer(tmp_path / "ckpt", keep=2, async_save=True) as ckpt:
        for step in (1, 2, 3):
            ckpt.save(step, _state(step), metadata={"step": step})
        ckpt.wait()
        assert ckpt.all_steps() == [2, 3]
        restored, metadata = ckpt.restore(jax.eval_shape(lambda: _state()))
    _assert_bit_identical(restored, _state(3))
    assert metadata == {"step": 3}


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"Checkpointer: `keep` must be an int >= 1, got 0"):
        Checkpointer(tmp_path, keep=0)
    with pytest.raises(ValueError, match=r"`best_mode` must be 'max' or 'min', got 'best'"):
        Checkpointer(tmp_path, best_mode="best")
    with pytest.raises(TypeError, match=r"`best_metric` must be a str, got 3"):
        Checkpointer(tmp_path, best_metric=3)
    ckpt = Checkpointer(tmp_path / "ckpt")
    state = {"w": jnp.ones(2)}
    with pytest.raises(TypeError, match=r"`metadata` must be JSON-serialisable .* ndarray"):
        ckpt.save(1, state, metadata={"mean": np.zeros(2)})
    with pytest.raises(TypeError, match=r"`metadata` must be a JSON-serialisable dict, got list"):
        ckpt.save(1, state, metadata=[1])
    with pytest.raises(TypeError, match=r"`metrics\['acc'\]` must be a real number, got 'high'"):
        ckpt.save(1, state, metadata={}, metrics={"acc": "high"})
    with pytest.raises(TypeError, match=r"leaf 'rng' of `state` is a typed PRNG key"):
        ckpt.save(1, {"rng": jax.random.key(0)}, metadata={})
    with pytest.raises(ValueError, match=r"Checkpointer.save: `step` must be an int >= 0, got -1"):
        ckpt.save(-1, state, metadata={})
    assert ckpt.all_steps() == []


# --- integrity: checksums, corrupt files, fallback ---


def _big_state(seed: int) -> dict:
    # A leaf over Orbax's 1 KiB inline limit is stored as its own chunk in a data
    # file; uniformly random bytes do not compress, so zstd keeps them verbatim.
    big = np.random.default_rng(seed).integers(0, 2**32, (16, 40), dtype=np.uint32)
    return {"small": _state(seed), "big": jnp.asarray(big)}


def _data_file(step_dir) -> str:
    """The largest array data file of a step: the one holding the `big` leaf."""
    files = [
        os.path.join(root, name)
        for root, _, names in os.walk(os.path.join(step_dir, "state"))
        if os.path.basename(root) == "d"
        for name in names
    ]
    return max(files, key=os.path.getsize)


def _two_steps(directory):
    with Checkpointer(directory, keep=5) as ckpt:
        for step in (1, 2):
            ckpt.save(step, _big_state(step), metadata={"step": step})
    return jax.eval_shape(lambda: _big_state(0))


def test_checksums_hold_the_sha256_of_every_leaf_and_of_the_metadata(tmp_path):
    state = _state()
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, state, metadata=METADATA)
    record = json.loads((tmp_path / "ckpt/1/checksums/metadata").read_text())["sha256"]
    expected = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        a = np.asarray(leaf)
        name = "/".join(
            str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path
        )
        expected[name] = hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()
    assert len(expected) == 18 and record["leaves"] == expected
    text = json.dumps(METADATA, sort_keys=True)
    assert record["metadata"] == hashlib.sha256(text.encode()).hexdigest()


# Orbax abandons the other reads of a restore that failed; their coroutines are
# garbage-collected unawaited, which pytest reports as unraisable.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_truncated_array_file_falls_back_to_the_previous_step_with_a_warning(tmp_path):
    like = _two_steps(tmp_path / "ckpt")
    path = _data_file(tmp_path / "ckpt/2")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.warns(CorruptCheckpointWarning, match=r"step 2 .* is corrupt: .*trying step 1"):
        restored, metadata = ckpt.restore(like)
    _assert_bit_identical(restored, _big_state(1))
    assert metadata == {"step": 1}
    with pytest.raises(CorruptCheckpointError, match=r"step 2 .* corrupt: .*big") as err:
        ckpt.restore(like, step=2)
    assert err.value.step == 2
    _assert_bit_identical(ckpt.restore(like, step=1)[0], _big_state(1))
    gc.collect()  # the abandoned reads, while this test's filter applies


def test_flipped_byte_in_array_data_is_caught_by_the_checksum(tmp_path):
    like = _two_steps(tmp_path / "ckpt")
    path = _data_file(tmp_path / "ckpt/2")
    data = bytearray(Path(path).read_bytes())
    # Flip a bit inside the stored bytes of `big`: the file still decodes, to other values.
    raw = np.asarray(_big_state(2)["big"]).tobytes()[256:288]
    at = data.find(raw)
    assert at > 0, "zstd no longer stores incompressible bytes verbatim"
    data[at + 5] ^= 0x01
    Path(path).write_bytes(bytes(data))
    ckpt = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(CorruptCheckpointError, match=r"step 2 .* leaf 'big' does not match"):
        ckpt.restore(like, step=2)
    with pytest.warns(CorruptCheckpointWarning, match=r"leaf 'big' does not match the SHA-256"):
        restored, _ = ckpt.restore(like)
    _assert_bit_identical(restored, _big_state(1))


def test_a_flipped_bit_in_any_leaf_or_in_the_metadata_is_detected(tmp_path, monkeypatch):
    state = _state()
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, state, metadata=METADATA)
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
    original = ocp.CheckpointManager.restore
    target = {}

    def damaged(self, step, args=None):  # Orbax reads one bit other than was written
        out = original(self, step, args=args)
        flip = target["flip"]
        if flip == "metadata":
            return {**out, "metadata": {**out["metadata"], "v": "0.1.1"}}

        def one(path, leaf):
            if path != flip:
                return leaf
            a = np.array(leaf)
            a.reshape(-1).view(np.uint8)[-1] ^= 0x01
            return jnp.asarray(a)

        return {**out, "state": jax.tree_util.tree_map_with_path(one, out["state"])}

    monkeypatch.setattr(ocp.CheckpointManager, "restore", damaged)
    ckpt = Checkpointer(tmp_path / "ckpt")
    like = jax.eval_shape(lambda: state)
    for flip in [*paths, "metadata"]:
        target["flip"] = flip
        with pytest.raises(CorruptCheckpointError, match=r"step 1 .* does not match the SHA-256"):
            ckpt.restore(like, step=1)
    target["flip"] = None
    _assert_bit_identical(ckpt.restore(like, step=1)[0], state)


def test_a_resumed_run_saves_over_a_corrupt_step_and_prunes_it(tmp_path):
    like = _two_steps(tmp_path / "ckpt")
    (tmp_path / "ckpt/2/checksums/metadata").write_text('{"sha256": ')
    ckpt = Checkpointer(tmp_path / "ckpt", keep=1)
    with pytest.warns(CorruptCheckpointWarning, match=r"checksums/metadata'\): JSONDecodeError"):
        ckpt.restore(like)
    ckpt.save(2, _big_state(22), metadata={"step": 22})  # not skipped as "not newer"
    _assert_bit_identical(ckpt.restore(like)[0], _big_state(22))
    ckpt.save(3, _big_state(3), metadata={})
    assert ckpt.all_steps() == [3]


def test_every_step_corrupt_raises_after_warning_for_each(tmp_path):
    like = _two_steps(tmp_path / "ckpt")
    for step in (1, 2):
        (tmp_path / f"ckpt/{step}/state/_METADATA").write_text("{")
    with pytest.warns(CorruptCheckpointWarning) as caught:
        with pytest.raises(CorruptCheckpointError, match=r"every checkpoint .* \(steps \[1, 2\]\)"):
            Checkpointer(tmp_path / "ckpt").restore(like)
    assert [str(w.message).count("_METADATA") for w in caught] == [1, 1]


def test_damaged_metrics_do_not_stop_the_directory_from_opening(tmp_path):
    like = _two_steps(tmp_path / "ckpt")
    (tmp_path / "ckpt/1/metrics/metrics").write_text("{")
    ckpt = Checkpointer(tmp_path / "ckpt", keep=1)
    assert ckpt.all_steps() == [1, 2]
    _assert_bit_identical(ckpt.restore(like)[0], _big_state(2))
    ckpt.save(3, _big_state(3), metadata={}, metrics={"test_accuracy": 0.5})
    assert ckpt.all_steps() == [3]


def test_checkpoint_without_checksums_restores_unverified(tmp_path):
    # As written before checksums existed: the item is simply absent.
    like = _two_steps(tmp_path / "ckpt")
    shutil.rmtree(tmp_path / "ckpt/2/checksums")
    restored, metadata = Checkpointer(tmp_path / "ckpt").restore(like)
    _assert_bit_identical(restored, _big_state(2))
    assert metadata == {"step": 2}
