"""jcnn.data datasets: Fashion-MNIST against its published shapes, counts and pixel
statistics; IDX parsing against hand-packed files; every corruption and absence
error; the digits split."""

from __future__ import annotations

import gzip
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

import jcnn.data as D
from jcnn.data import datasets

# Checked independently of jcnn's search code, so a broken search is a failure, not a skip.
_FMNIST_PLACES = [Path("/usr/share/datasets/fashion-mnist")]
if os.environ.get("JCNN_DATA_DIR"):
    _FMNIST_PLACES.insert(0, Path(os.environ["JCNN_DATA_DIR"]))
needs_fashion_mnist = pytest.mark.skipif(
    not any((p / "train-images-idx3-ubyte.gz").is_file() for p in _FMNIST_PLACES),
    reason="Fashion-MNIST not installed (`make data` / apt-get install dataset-fashion-mnist)",
)

# Xiao et al. 2017, Table 1 / the dataset README.
FASHION_CLASSES = (
    *("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"),
    *("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)


@pytest.fixture(scope="module")
def fashion():
    """Both splits, loaded once for the module (~1 s)."""
    return {split: D.load("fashion_mnist", split) for split in ("train", "test")}


# --- Fashion-MNIST: the real files ---


@needs_fashion_mnist
@pytest.mark.parametrize("split,n", [("train", 60_000), ("test", 10_000)])
def test_fashion_mnist_shapes_dtypes_and_label_counts(fashion, split, n):
    images, labels = fashion[split]
    assert images.shape == (n, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.int32
    # Fashion-MNIST is balanced: 6,000 train and 1,000 test images per class.
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), np.full(10, n // 10))


@needs_fashion_mnist
def test_fashion_mnist_first_labels_match_published_order(fashion):
    # The first training images as shown in the TensorFlow Fashion-MNIST tutorial:
    # Ankle boot, T-shirt/top, T-shirt/top, Dress, T-shirt/top, Pullover, Sneaker, ...
    np.testing.assert_array_equal(fashion["train"][1][:7], [9, 0, 0, 3, 0, 2, 7])
    assert fashion["test"][1][0] == 9  # the tutorial's first test image, an ankle boot


@needs_fashion_mnist
def test_fashion_mnist_pixel_stats_match_published_values(fashion):
    images = fashion["train"][0]
    # Float64 moments accumulated in chunks of 10,000 images (a float64 copy of all is 376 MB).
    s = sq = 0.0
    for i in range(0, len(images), 10_000):
        x = images[i : i + 10_000].astype(np.float64) / 255.0
        s, sq = s + x.sum(), sq + (x * x).sum()
    count = images.size
    mean, std = s / count, np.sqrt(sq / count - (s / count) ** 2)
    # Published normalisation constants of Fashion-MNIST: mean 0.2860, std 0.3530.
    assert abs(mean - 0.2860) <= 5e-4 and abs(std - 0.3530) <= 5e-4
    np.testing.assert_allclose(D.pixel_stats("fashion_mnist"), (mean, std), rtol=1e-9)


@needs_fashion_mnist
def test_fashion_mnist_cache_returns_read_only_arrays(fashion):
    images, labels = D.load("fashion_mnist", "train")
    assert images is fashion["train"][0]  # parsed once per process
    with pytest.raises(ValueError, match="read-only"):
        images[0, 0, 0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        labels[0] = 1


# --- IDX parsing and errors, on small files written here ---


def idx_bytes(array: np.ndarray, magic: int | None = None, dims=None) -> bytes:
    """An IDX file written from the format's definition (big-endian header, C-order data)."""
    dims = array.shape if dims is None else dims
    magic = 0x0800 | len(dims) if magic is None else magic
    return struct.pack(f">I{len(dims)}I", magic, *dims) + array.astype(np.uint8).tobytes()


def write_fashion(directory: Path, images: np.ndarray, labels: np.ndarray, split="train"):
    prefix = "train" if split == "train" else "t10k"
    (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))


TINY_IMAGES = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4) * 7
TINY_LABELS = np.array([9, 0, 4], np.uint8)


def test_read_idx_parses_a_hand_packed_file(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(TINY_IMAGES)))
    out = D.read_idx(path, ndim=3)
    np.testing.assert_array_equal(out, TINY_IMAGES)
    assert out.dtype == np.uint8


def test_load_reads_jcnn_data_dir_first(tmp_path, monkeypatch):
    write_fashion(tmp_path, TINY_IMAGES, TINY_LABELS)
    monkeypatch.setenv("JCNN_DATA_DIR", str(tmp_path))
    images, labels = D.load("fashion_mnist", "train")
    np.testing.assert_array_equal(images, TINY_IMAGES[..., None])
    np.testing.assert_array_equal(labels, [9, 0, 4])
    assert labels.dtype == np.int32


def _gz(b: bytes) -> bytes:
    return gzip.compress(b)


def _flip_middle(b: bytes) -> bytes:
    z = bytearray(gzip.compress(b))
    z[len(z) // 2] ^= 0xFF
    return bytes(z)


CORRUPTIONS = {
    # name: (which file, its bytes, message pattern)
    "truncated_gzip": ("images", _gz(idx_bytes(TINY_IMAGES))[:-12], "not a complete gzip"),
    "not_gzip": ("images", idx_bytes(TINY_IMAGES), "not a complete gzip"),
    "damaged_gzip": ("images", _flip_middle(idx_bytes(TINY_IMAGES) * 50), "not a complete gzip"),
    "wrong_magic": (
        "images",
        _gz(idx_bytes(TINY_IMAGES, magic=0x0801)),
        "magic number is 0x00000801, expected 0x00000803",
    ),
    "labels_magic": (
        "labels",
        _gz(idx_bytes(TINY_LABELS, magic=0x0803)),
        "magic number is 0x00000803, expected 0x00000801",
    ),
    "wrong_size": (
        "images",
        _gz(idx_bytes(TINY_IMAGES, dims=(4, 2, 4))),
        r"declares dimensions \(4, 2, 4\) = 32 bytes .* holds 24",
    ),
    "short_header": ("labels", _gz(b"\x00\x00"), "shorter than the 8-byte IDX header"),
    "count_mismatch": ("labels", _gz(idx_bytes(np.zeros(4))), "3 images but .* 4 labels"),
    "label_range": ("labels", _gz(idx_bytes(np.array([1, 10, 2]))), r"0\.\.9, found 10"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_file_raises_naming_the_file(tmp_path, monkeypatch, case):
    which, payload, pattern = CORRUPTIONS[case]
    write_fashion(tmp_path, TINY_IMAGES, TINY_LABELS)
    bad = tmp_path / f"train-{which}-idx{3 if which == 'images' else 1}-ubyte.gz"
    bad.write_bytes(payload)
    monkeypatch.setenv("JCNN_DATA_DIR", str(tmp_path))
    with pytest.raises(D.DatasetCorruptError, match=pattern) as info:
        D.load("fashion_mnist", "train")
    assert str(bad) in str(info.value)


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """All three search places point at empty directories; returns them in search order."""
    places = [tmp_path / "env", tmp_path / "system", tmp_path / "home"]
    for p in places:
        p.mkdir()
    monkeypatch.setenv("JCNN_DATA_DIR", str(places[0]))
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", places[1])
    monkeypatch.setenv("HOME", str(places[2]))
    return [places[0], places[1], places[2] / ".cache" / "jcnn" / "fashion_mnist"]


def test_missing_dataset_lists_every_place_and_how_to_install(nowhere):
    # Half a split (images without labels) does not count as found.
    write_fashion(nowhere[0], TINY_IMAGES, TINY_LABELS)
    (nowhere[0] / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(D.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as e:
        D.load("fashion_mnist", "train")
    assert isinstance(e.value, FileNotFoundError)
    message = str(e.value)
    assert all(str(p) in message for p in nowhere), message
    assert "$JCNN_DATA_DIR" in message and "train-labels-idx1-ubyte.gz" in message


def test_resolve_dataset_falls_back_to_digits_only_when_missing(nowhere):
    with pytest.warns(D.DatasetFallbackWarning, match=re.escape(str(nowhere[1]))):
        assert D.resolve_dataset("fashion_mnist") == "digits"
    nowhere[2].mkdir(parents=True)  # the last place searched, ~/.cache/jcnn/fashion_mnist
    for split in ("train", "test"):
        write_fashion(nowhere[2], TINY_IMAGES, TINY_LABELS, split)
    assert D.resolve_dataset("fashion_mnist") == "fashion_mnist"
    np.testing.assert_array_equal(D.load("fashion_mnist", "test")[1], TINY_LABELS)
    assert D.resolve_dataset("digits") == "digits"


def test_the_system_directory_wins_over_the_cache(nowhere, monkeypatch):
    # Two copies that differ in their labels: the one found says where the search went.
    monkeypatch.delenv("JCNN_DATA_DIR")
    for place, labels in ((nowhere[1], TINY_LABELS), (nowhere[2], TINY_LABELS[::-1])):
        place.mkdir(parents=True, exist_ok=True)
        for split in ("train", "test"):
            write_fashion(place, TINY_IMAGES, labels, split)
    assert not np.array_equal(TINY_LABELS, TINY_LABELS[::-1])
    np.testing.assert_array_equal(D.load("fashion_mnist", "test")[1], TINY_LABELS)
    monkeypatch.setenv("JCNN_DATA_DIR", str(nowhere[2]))  # the variable comes first
    np.testing.assert_array_equal(D.load("fashion_mnist", "test")[1], TINY_LABELS[::-1])


def test_unknown_names_and_splits_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"load: unknown dataset 'cifar10'.*'fashion_mnist'"):
        D.load("cifar10", "train")
    with pytest.raises(ValueError, match=r"load: unknown split 'val'.*\['train', 'test'\]"):
        D.load("digits", "val")
    with pytest.raises(ValueError, match=r"class_names: unknown dataset 'mnist'.*'digits'"):
        D.class_names("mnist")
    with pytest.raises(ValueError, match=r"pixel_stats: unknown dataset"):
        D.pixel_stats("mnist")


def test_class_names():
    assert D.class_names("fashion_mnist") == FASHION_CLASSES
    assert D.class_names("digits") == tuple("0123456789")
    assert set(D.available()) == {"fashion_mnist", "digits"}


# --- digits ---


def test_digits_split_is_fixed_disjoint_and_rescaled():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    train, test = D.load("digits", "train"), D.load("digits", "test")
    assert train[0].shape == (1437, 8, 8, 1) and test[0].shape == (360, 8, 8, 1)
    assert train[0].dtype == np.uint8 and train[1].dtype == np.int32
    # round-half-up of v * 255 / 16 for each of the 17 levels (v = 8 -> 127.5 -> 128).
    levels = np.array([int(v * 255 / 16 + 0.5) for v in range(17)], np.uint8)
    expected = levels[bunch.images.astype(int)][..., None]
    # Train is the first 1,437 images, test the last 360: disjoint and together all 1,797.
    np.testing.assert_array_equal(np.concatenate([train[0], test[0]]), expected)
    np.testing.assert_array_equal(np.concatenate([train[1], test[1]]), bunch.target)
    assert np.bincount(test[1], minlength=10).min() >= 33  # every class is tested
    # Recomputed from scratch (cache cleared), the split is the same.
    datasets._load_digits_all.cache_clear()
    np.testing.assert_array_equal(D.load("digits", "test")[0], test[0])


def test_digits_pixel_stats_from_the_train_split():
    x = D.load("digits", "train")[0].astype(np.float64) / 255.0
    np.testing.assert_allclose(D.pixel_stats("digits"), (x.mean(), x.std()), rtol=1e-9)
