"""XLA:CPU settings chosen by measurement, applied by the `jcnn` command.

jaxlib 0.10's CPU backend routes convolution fusions through YNNPACK. On the
2-core CPU machines this project runs on, switching that off
(``--xla_cpu_experimental_ynn_fusion_type=``) made the default model's train
step ~40% faster (440 -> 630 img/s, `python benchmarks/train_step.py`), and
jaxlib 0.10.2 has open YNNPACK crash and hang reports. XLA aborts the
process on a flag it does not know, so the flag is only added for the jaxlib
versions it was measured on, and never when the user already set it or sets
``JCNN_KEEP_XLA_FLAGS=1``. It must run before the first computation (the
backend reads ``XLA_FLAGS`` when it starts).
"""

from __future__ import annotations

import os
from importlib import metadata

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type="
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
