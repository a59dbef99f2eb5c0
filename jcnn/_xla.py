"""XLA:CPU settings chosen by measurement, applied by the `jcnn` command.

jaxlib 0.10's CPU backend hands some fusions to the YNNPACK library; which
kinds is set by ``--xla_cpu_experimental_ynn_fusion_type`` (a comma-separated
subset of ``eltwise, reduce, dot, individual_dot, individual_convolution``).
Measured on this project's 2-core CPU machine (`python benchmarks/train_step.py
--ynn ...` and `python benchmarks/primitives.py`, quiet, 2026-11-30): YNNPACK
convolutions are slower than XLA's own (3x3 conv fwd+bwd 29.4 against 13 ms),
while its reductions make BatchNorm's forward+backward ~8x faster
(128x32x32x32: 6.6 against 52 ms with YNNPACK off). jcnn therefore
keeps YNNPACK for elementwise, reduce and dot fusions and leaves convolutions
to XLA (`YNN_FLAG`); see the README's benchmark section for the train-step
figures. XLA aborts the process on a flag it does not know, so the flag is
only added for the jaxlib versions it was measured on, and never when the
user already set it or sets ``JCNN_KEEP_XLA_FLAGS=1``. It must run before the
first computation (the backend reads ``XLA_FLAGS`` when it starts).
"""

from __future__ import annotations

import os
from importlib import metadata

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type=eltwise,reduce,dot"
MEASURED_JAXLIB = ("0.10.",)


def cpu_flags_to_add() -> list[str]:
    """The flags `configure` would add to ``XLA_FLAGS`` in this environment."""
    if os.environ.get("JCNN_KEEP_XLA_FLAGS"):
        return []
    try:
        version = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return []
    if not version.startswith(MEASURED_JAXLIB):
        return []
    if "ynn_fusion_type" in os.environ.get("XLA_FLAGS", ""):
        return []
    return [YNN_FLAG]


def configure() -> None:
    """Adds the measured XLA:CPU flags to ``XLA_FLAGS`` (call before computing anything)."""
    flags = cpu_flags_to_add()
    if flags:
        os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()
