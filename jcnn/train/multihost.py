"""Checks that the processes of a multi-host run agree before they train.

Each process of a multi-process run loads its own copy of the dataset and
writes into the workdir it is given. Two set-up mistakes would otherwise show
only as a collective that hangs, or a resume that restores different states
on different hosts:

- a host that trains on other data: Fashion-MNIST missing there, so that host
  fell back to the bundled digits (`check_same_data`);
- a workdir that is a local directory on each host instead of one directory
  they share (NFS, gcsfuse): each host would see only its own checkpoints
  (`check_shared_workdir`).

`jcnn.train.fit` runs both before it trains. Each check is collective: every
process takes part and every process raises the same `ValueError`, so no host
is left waiting for a peer that stopped. With one process they do nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

# The file process 0 writes into the workdir for `check_shared_workdir`.
TOKEN_FILE = ".processes"


def check_same_data(dataset: str, train_shape, test_shape) -> None:
    """Raises ValueError unless every process loaded the same dataset (name and
    image shapes of both splits)."""
    if jax.process_count() == 1:
        return
    mine = f"{dataset}: train {tuple(train_shape)}, test {tuple(test_shape)}"
    others = disagreeing(_allgather(_digest(mine)))
    if others:
        raise ValueError(
            f"fit: the processes loaded different data: processes {others} differ from "
            f"process 0 in the dataset or its image shapes (this is process {_me()}, with "
            f"{mine}). Install the same dataset on every host (Fashion-MNIST: `make data`, "
            "or the Debian package dataset-fashion-mnist), or set "
            "--config.data.fallback=None so that a host without it stops."
        )


def check_shared_workdir(workdir) -> None:
    """Raises ValueError unless every process sees the file process 0 writes into
    `workdir` (`TOKEN_FILE`, holding a random token): the workdir must be one
    directory shared by all hosts."""
    if jax.process_count() == 1:
        return
    token = np.asarray(multihost_utils.broadcast_one_to_all(_random_words()))
    text = token.tobytes().hex()
    path = Path(workdir) / TOKEN_FILE
    if _me() == 0:
        tmp = path.with_name(f"{TOKEN_FILE}.tmp-{os.getpid()}")
        tmp.write_text(text + "\n")
        os.replace(tmp, path)
    multihost_utils.sync_global_devices("jcnn.train.multihost: token written")
    try:
        seen = path.read_text().strip() == text
    except OSError:
        seen = False
    blind = [i for i, ok in enumerate(_allgather(np.array([seen], np.uint32))) if not ok[0]]
    if blind:
        raise ValueError(
            f"fit: `workdir` {os.fspath(workdir)!r} is not one directory shared by every "
            f"host: processes {blind} do not see {TOKEN_FILE}, which process 0 wrote there. "
            "Give every process the same shared directory (NFS, gcsfuse): checkpoints "
            "written by one host must be read by all of them on resume."
        )


def disagreeing(rows) -> list[int]:
    """The indices of the rows that differ from row 0 (one row per process)."""
    rows = np.asarray(rows)
    return [i for i in range(1, len(rows)) if not np.array_equal(rows[i], rows[0])]


def _me() -> int:
    return jax.process_index()


def _digest(text: str) -> np.ndarray:
    return np.frombuffer(hashlib.sha256(text.encode()).digest()[:8], np.uint32)


def _random_words() -> np.ndarray:
    return np.frombuffer(os.urandom(8), np.uint32)


def _allgather(row: np.ndarray) -> np.ndarray:
    """``(process_count, len(row))``: every process's `row`, in process order."""
    return np.asarray(multihost_utils.process_allgather(row)).reshape(jax.process_count(), -1)
