"""What every benchmark shares: subprocess workers, timing, memory, the header.

A benchmark variant whose XLA flags or framework differ runs in its own
subprocess (XLA reads ``XLA_FLAGS`` once, when the backend starts; torch
and jax should not share a process's threads). The parent calls `run_worker`
once per variant and round, alternating the variants so that load from other
processes falls on all of them alike; each worker prints one JSON line.

This module imports neither jax nor torch, so the parent process starts no
backend of its own.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata

YNN_OFF = "--xla_cpu_experimental_ynn_fusion_type="
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "torch")


def run_worker(script: str, args: Sequence[str], *, xla_flags: str = "", timeout=None) -> dict:
    """Runs ``python script *args`` with exactly `xla_flags` and returns its last stdout line
    parsed as JSON. ``JCNN_KEEP_XLA_FLAGS=1`` stops jcnn from adding flags of its own."""
    env = dict(os.environ, XLA_FLAGS=xla_flags, JCNN_KEEP_XLA_FLAGS="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {script} {' '.join(args)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_calls(fn: Callable[[], object], *, repeats: int, number: int = 1) -> list[float]:
    """Seconds per call of `fn` (which must block until its result is ready), `repeats`
    samples of `number` calls each; call it warm (compilation and a first run excluded)."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return samples


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loadavg() -> str:
    """``/proc/loadavg``'s three load averages, as text."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def header(command: str) -> str:
    """Markdown lines: date, machine, versions, the command and the load now."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cores = len(os.sched_getaffinity(0))
    vers = ", ".join(f"{k} {v}" for k, v in versions().items())
    return "\n".join(
        [
            f"- date: {now}",
            f"- machine: {cpu_model()}, {cores} cores usable",
            f"- versions: {vers}",
            f"- command: `{command}`",
            f"- load average at start: {loadavg()}",
        ]
    )


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; floats get 3 significant figures (or no decimals from 1000)."""

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def torch_available() -> bool:
    try:
        metadata.version("torch")
    except metadata.PackageNotFoundError:
        return False
    return True
