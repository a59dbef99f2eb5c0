"""The small real-data config the training tests share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jcnn import configs

# Whether the data is there, decided without the code under test (a broken
# search in jcnn.data must fail its own tests, not skip these): the documented
# places, JCNN_DATA_DIR first, then the Debian package's and the cache.
_PLACES = [
    *([Path(os.environ["JCNN_DATA_DIR"]).expanduser()] if os.environ.get("JCNN_DATA_DIR") else []),
    Path("/usr/share/datasets/fashion-mnist"),
    Path.home() / ".cache" / "jcnn" / "fashion_mnist",
]
HAVE_FASHION = any(
    (p / "train-images-idx3-ubyte.gz").is_file() and (p / "t10k-images-idx3-ubyte.gz").is_file()
    for p in _PLACES
)

needs_fashion = pytest.mark.skipif(
    not HAVE_FASHION, reason="Fashion-MNIST not installed (make data installs it)"
)


def smoke(**overrides):
    """`default:smoke` with dotted-key overrides (``smoke(**{"data.batch_size": 16})``)."""
    config = configs.get("default:smoke")
    config.unlock()
    config.progress = False
    for key, value in overrides.items():
        node = config
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    config.lock()
    return config
