"""Preemption: SIGTERM or a first SIGINT asks `fit` to stop at the next call boundary.

Schedulers and TPU VMs send SIGTERM some seconds before they kill a job; a
user presses Ctrl-C. Either way `fit` finishes the compiled call in flight (one
step, or ``steps_per_call`` of them), saves a
checkpoint and returns (``jcnn train`` then exits 0), and the same command
resumes the run. A second SIGINT raises `KeyboardInterrupt` at once (the
atomic checkpoint saves make that safe too: a save cut short is never the
latest checkpoint).

Handlers can only be installed from the main thread; elsewhere (a `fit`
called from a worker thread) the signals keep their previous behaviour.
In a multi-process run the processes agree, at each log flush, to stop when
any of them was signalled, so that all of them save the same step.
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preemption:
    """A context manager that turns SIGTERM/SIGINT into a stop request.

    ``received`` is the name of the first signal (``"SIGTERM"``, ``"SIGINT"``)
    or None; `should_stop` says whether the loop should stop now.
    """

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.received == "SIGINT":
            raise KeyboardInterrupt("second SIGINT: stopping without a checkpoint")
        if self.received is None:
            self.received = signal.Signals(signum).name

    def should_stop(self, *, sync_point: bool) -> bool:
        """Whether to stop now. With several processes only a `sync_point`
        (a step every process reaches together) can say yes."""
        if jax.process_count() == 1:
            return self.received is not None
        if not sync_point:
            return False
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.int32(self.received is not None))
        if np.max(flags) and self.received is None:
            self.received = "a signal to another process"
        return bool(np.max(flags))
