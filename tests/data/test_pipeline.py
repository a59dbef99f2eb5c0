"""jcnn.data pipeline: epoch orders are permutations fixed by (seed, epoch), batches
see each example at most once, process slices partition the global batch, a resumed
run continues with the same batches, and eval batches cover every example once."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcnn.data as D

N, B = 23, 4  # 23 = 5 * 4 + 3: a remainder to drop or pad


def test_epoch_permutation_is_a_permutation_fixed_by_seed_and_epoch():
    perm = np.asarray(D.epoch_permutation(3, 1, N))
    assert perm.dtype == np.int32
    np.testing.assert_array_equal(np.sort(perm), np.arange(N))
    # The documented formula, the contract a resumed run relies on.
    key = jax.random.fold_in(jax.random.key(3), 1)
    np.testing.assert_array_equal(perm, jax.random.permutation(key, N))
    jax.clear_caches()  # recomputed from scratch, not read back from a cache
    np.testing.assert_array_equal(D.epoch_permutation(3, 1, N), perm)
    others = [D.epoch_permutation(3, 2, N), D.epoch_permutation(4, 1, N)]
    # Two fixed draws of 23! orders: equal with probability 1/23! < 1e-22.
    assert all(not np.array_equal(o, perm) for o in others)


def test_epoch_permutation_traces_epoch_under_jit():
    jitted = jax.jit(lambda epoch: D.epoch_permutation(3, epoch, N))
    np.testing.assert_array_equal(jitted(jnp.uint32(2)), D.epoch_permutation(3, 2, N))


def test_batch_indices_drop_remainder_sees_each_example_at_most_once():
    idx = np.asarray(D.batch_indices(0, 5, N, B))
    assert idx.shape == (N // B, B) and idx.dtype == np.int32
    assert len(np.unique(idx)) == idx.size  # no example twice in an epoch
    np.testing.assert_array_equal(idx.ravel(), np.asarray(D.epoch_permutation(0, 5, N))[:20])


def test_batch_indices_without_drop_covers_all_and_wraps_from_the_start():
    idx = np.asarray(D.batch_indices(0, 5, N, B, drop_remainder=False))
    perm = np.asarray(D.epoch_permutation(0, 5, N))
    assert idx.shape == (6, B)
    np.testing.assert_array_equal(idx.ravel(), np.concatenate([perm, perm[:1]]))


@pytest.mark.parametrize("count", [2, 4])
def test_process_slices_partition_the_global_batch(count):
    def indices(**process):
        return np.asarray(D.batch_indices(1, 0, N, 8, drop_remainder=False, **process))

    full = indices()
    parts = [indices(process_index=p, process_count=count) for p in range(count)]
    assert all(p.shape == (3, 8 // count) for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), full)


def test_steps_and_step_position_enumerate_epochs_then_batches():
    assert D.steps_per_epoch(N, B) == 5
    assert D.steps_per_epoch(N, B, drop_remainder=False) == 6
    expected = [(e, b) for e in range(3) for b in range(5)]
    assert [D.step_position(s, N, B) for s in range(15)] == expected


def test_resumed_run_sees_exactly_the_batches_it_would_have():
    images = jnp.arange(N * 2, dtype=jnp.uint8).reshape(N, 1, 1, 2)
    data = D.to_device(images, jnp.arange(N, dtype=jnp.int32))
    seed, stop = 9, 7  # stop after 7 steps = epoch 1, batch 2
    uninterrupted = [
        labels for epoch in range(2) for _, labels in D.train_batches(data, seed, epoch, B)
    ]
    epoch, start = D.step_position(stop, N, B)
    resumed = list(D.train_batches(data, seed, epoch, B, start=start))
    assert len(resumed) == len(uninterrupted) - stop
    for (x, y), want in zip(resumed, uninterrupted[stop:], strict=True):
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(x, images[want])  # images travel with their labels


@pytest.mark.parametrize("count", [1, 2])
def test_eval_indices_cover_every_example_once_with_a_mask(count):
    per = 8 // count
    parts = [D.eval_indices(N, 8, process_index=p, process_count=count) for p in range(count)]
    idx = np.concatenate([np.asarray(i) for i, _ in parts], axis=1)
    mask = np.concatenate([np.asarray(m) for _, m in parts], axis=1)
    assert idx.shape == mask.shape == (3, 8) and parts[0][0].shape == (3, per)
    np.testing.assert_array_equal(idx[mask], np.arange(N))  # all, once, in order
    assert (idx[~mask] == 0).all() and (~mask).sum() == 3 * 8 - N


def test_eval_batches_yield_every_label_once():
    data = D.to_device(np.zeros((N, 2, 2, 1), np.uint8), np.arange(N, dtype=np.int32) % 10)
    seen = [np.asarray(y)[np.asarray(m)] for _, y, m in D.eval_batches(data, B)]
    np.testing.assert_array_equal(np.concatenate(seen), np.arange(N) % 10)


def test_bad_arguments_name_the_function_and_value():
    with pytest.raises(
        ValueError, match=r"batch_indices: global `batch_size`=6 .* process_count=4"
    ):
        D.batch_indices(0, 0, N, 6, process_count=4)
    with pytest.raises(
        ValueError, match=r"`process_index` must be in \[0, process_count=2\), got 2"
    ):
        D.batch_indices(0, 0, N, 4, process_index=2, process_count=2)
    with pytest.raises(ValueError, match=r"steps_per_epoch: `batch_size`=30 exceeds the 23"):
        D.steps_per_epoch(N, 30)
    with pytest.raises(
        ValueError, match=r"epoch_permutation: `seed` must be an int in \[0, 2\*\*32\)"
    ):
        D.epoch_permutation(-1, 0, N)
    with pytest.raises(TypeError, match=r"epoch_permutation: `epoch` must be a non-negative int"):
        D.epoch_permutation(0, 1.5, N)
    with pytest.raises(ValueError, match=r"step_position: `step` must be an int >= 0, got -1"):
        D.step_position(-1, N, B)
    with pytest.raises(ValueError, match=r"to_device: `images` \(3, 2\) and `labels` \(4,\)"):
        D.to_device(np.zeros((3, 2)), np.zeros(4))
