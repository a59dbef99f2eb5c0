"""Test-session settings.

`jcnn.cli.main` adds measured XLA:CPU flags to ``XLA_FLAGS`` for the process
it runs in (`jcnn._xla`). Tests call it in-process, where the backend has
already started, and the flag would then only leak into the environment of
the subprocesses later tests start (changing their conv kernels). Keep the
environment as it is for the whole session; tests/test_xla.py checks the
flag logic itself.
"""

import os

os.environ.setdefault("JCNN_KEEP_XLA_FLAGS", "1")
