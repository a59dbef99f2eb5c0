"""Fixtures shared by the training tests that start subprocesses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def xla_cache(tmp_path_factory) -> Path:
    """One persistent compilation cache for this run's workers (shared by the
    pytest-xdist workers too): the one-device runs of several tests compile the
    same programs."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, above each worker's own
    cache = base / "jcnn-xla-cache"
    cache.mkdir(exist_ok=True)
    return cache
