"""Batch norm with `axis_name` on 8 fake CPU devices equals it on the global batch.

The device count must be fixed before jax initialises, and this pytest process
already runs jax on one device, so the check runs in a subprocess
(`_sync_bn_worker.py`); it prints each comparison and exits non-zero on failure.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_synced_batch_norm_on_8_devices_equals_global_batch():
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    env = {**os.environ, "XLA_FLAGS": flags.strip(), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.functional._sync_bn_worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"worker failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert proc.stdout.count("ok  ") == 12, proc.stdout
