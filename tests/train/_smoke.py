"""The small real-data config the training tests share."""

from __future__ import annotations

import pytest

from jcnn import configs
from jcnn.data import find_fashion_mnist

try:
    find_fashion_mnist("train")
    HAVE_FASHION = True
except FileNotFoundError:
    HAVE_FASHION = False

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
