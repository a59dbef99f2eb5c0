"""Subprocess side of test_faults.py: ``jcnn train`` with one fault injected.

``python -m tests.train._fault_worker FAULT [jcnn arguments...]`` runs
``jcnn.cli.main(arguments)`` after arranging FAULT, one of

- ``none``: nothing;
- ``kill@N``: SIGKILL this process right after the call that runs step N is
  dispatched;
- ``kill-save@N``: SIGKILL it while saving checkpoint N, after every file is
  written to the temporary directory and before the commit rename;
- ``sigterm@N`` / ``sigint@N``: send it SIGTERM / SIGINT after that call;
- ``sigint2@N``: send it two SIGINTs after that call.

The signals go through the kernel (``os.kill``) to `fit`'s real handlers; the
injection only picks the moment, which makes the kill points deterministic.
Exits with `jcnn.cli.main`'s status.
"""

from __future__ import annotations

import os
import signal
import sys

from orbax.checkpoint._src.path import atomicity

from jcnn import cli
from jcnn.train import checkpoint, loop


def _after_step(n: int, action) -> None:
    add = loop._Meter.add

    def patched(self, step, epoch, metrics, *, flush, count=1):
        add(self, step, epoch, metrics, flush=flush, count=count)
        if step - count < n <= step:  # the call that ran step n (one of `count` steps)
            action()

    loop._Meter.add = patched


def _kill_during_save(n: int) -> None:
    save = checkpoint.Checkpointer.save
    finalize = atomicity.AtomicRenameTemporaryPath.finalize

    async def killed(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    def patched(self, step, state, **kwargs):
        atomicity.AtomicRenameTemporaryPath.finalize = killed if step == n else finalize
        return save(self, step, state, **kwargs)

    checkpoint.Checkpointer.save = patched


def _signal(*signals):
    def send():
        for sig in signals:
            os.kill(os.getpid(), sig)

    return send


def main(argv: list[str]) -> int:
    fault, args = argv[0], argv[1:]
    kind, _, at = fault.partition("@")
    actions = {
        "kill": _signal(signal.SIGKILL),
        "sigterm": _signal(signal.SIGTERM),
        "sigint": _signal(signal.SIGINT),
        "sigint2": _signal(signal.SIGINT, signal.SIGINT),
    }
    if kind == "kill-save":
        _kill_during_save(int(at))
    elif kind in actions:
        _after_step(int(at), actions[kind])
    elif kind != "none":
        raise SystemExit(f"unknown fault {fault!r}")
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
