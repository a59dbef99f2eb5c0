"""One trained `default:smoke` run per test session, shared by the export and viz
tests (and by the pytest-xdist workers of one run, through a file lock)."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path


def smoke_workdir(tmp_path_factory) -> Path:
    """A workdir holding a finished ``default:smoke`` run (2 epochs of 512 images).

    Trained by the first caller of the session; the others wait on the lock
    and reuse it. Under xdist the workers share ``basetemp.parent`` and
    ``PYTEST_XDIST_TESTRUNUID`` names this run, so a run is never reused by a
    later session.
    """
    from jcnn import configs, train

    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    root = tmp_path_factory.getbasetemp()
    if uid is not None:
        root = root.parent / f"jcnn_smoke_{uid}"
        root.mkdir(exist_ok=True)
    workdir, done = root / "smoke_run", root / "smoke_run.done"
    with (root / "smoke_run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(workdir, ignore_errors=True)  # a half-written run of a failed caller
            config = configs.get("default:smoke")
            config.unlock()
            config.progress = False
            config.lock()
            train.fit(config, workdir)
            done.touch()
    return workdir
