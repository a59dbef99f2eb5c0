"""Data-parallel and multi-host training (`jcnn.train.parallel`) and bfloat16 compute.

The device count is fixed when JAX starts, so the multi-device checks run in
subprocesses (`_parallel_worker.py`) on fake CPU devices
(``--xla_force_host_platform_device_count``), and the multi-host check runs
two real processes joined by `jax.distributed.initialize` on a localhost
coordinator, with gloo CPU collectives. The subprocesses compile at XLA's
backend optimisation level 0: compiling, not running, is their cost (the
init of the tiny model compiles in ~1 s instead of ~7 s), and every result
they compare was compiled the same way.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import flax.linen
import jax
import numpy as np
import pytest

from jcnn import configs, models, train
from jcnn import nn as jnn
from jcnn.train import parallel

ROOT = Path(__file__).resolve().parents[2]
WORKER = "tests.train._parallel_worker"
TIMEOUT = 300
# Normwise relative error allowed between runs that differ only in the order of
# float32 reductions (see _parallel_worker.RTOL).
RTOL = 1e-4


def _start(args, cache: Path, *, devices: int = 1, env: dict | None = None) -> subprocess.Popen:
    flags = f"--xla_force_host_platform_device_count={devices} --xla_backend_optimization_level=0"
    full_env = {
        **os.environ,
        "XLA_FLAGS": (os.environ.get("XLA_FLAGS", "") + " " + flags).strip(),
        "JAX_PLATFORMS": "cpu",
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "PYTHONPATH": str(ROOT),
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", WORKER, *map(str, args)],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _STARTED.append(proc)
    return proc


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _kill_leftover_workers():
    """No worker outlives its test (a lone distributed worker would wait for its peer)."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if proc.stdout is not None:  # a process waited for but never read: no unclosed pipe
            proc.stdout.close()


def _finish(*procs) -> list[str]:
    """Waits for every process; fails with their output if any failed."""
    outs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, f"{' '.join(p.args)} failed:\n{out[-6000:]}"
    return outs


def _records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"mode"')]


def _state(path: Path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _assert_close(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for k in expected:
        err = np.max(np.abs(actual[k] - expected[k])) / np.max(np.abs(expected[k]))
        assert err < RTOL, f"{k}: normwise relative error {err:.2g}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


# --- on 8 fake devices ---


def test_jit_shard_map_and_pmap_on_8_devices_equal_one_device(xla_cache):
    """3 steps of each mode, and 3 steps in one chunk call of jit and shard_map,
    == 3 steps on one device (params, BN stats, optimiser state, losses); pmap
    refuses a chunk; unsynced BN differs; a batch of 30 is refused."""
    (out,) = _finish(_start(["modes"], xla_cache, devices=8))
    assert "FAIL" not in out
    assert out.count("ok  ") == 3 * 6 + 2 * 4 + 1 + 2, out


def test_checkpoint_saved_on_8_devices_resumes_on_1_device(tmp_path, xla_cache):
    """Stopped at step 5 on 8 devices (shard_map), resumed to step 16 on one
    device == 16 steps on one device."""
    eight = _start(["fit", tmp_path / "run", "shard_map@5"], xla_cache, devices=8)
    reference = _start(["fit", tmp_path / "reference", "jit"], xla_cache)
    _finish(eight)
    saved = tmp_path / "run" / "shard_map" / "checkpoints"
    assert sorted(p.name for p in saved.iterdir()) == ["5"]
    # The resumed run is a plain one-device `jit` run reading the same workdir.
    (tmp_path / "run" / "shard_map").rename(tmp_path / "run" / "jit")
    resumed_out, _ = _finish(_start(["fit", tmp_path / "run", "jit"], xla_cache), reference)
    assert "resumed from step 5" in resumed_out
    (record,) = _records(resumed_out)
    assert record["step"] == 16 and record["devices"] == 1
    _assert_close(
        _state(tmp_path / "run" / "jit" / "state-0.npz"),
        _state(tmp_path / "reference" / "jit" / "state-0.npz"),
    )


def test_chunked_calls_on_8_devices_resume_bit_identically(tmp_path, xla_cache):
    """4 steps per call under jit on 8 devices: stopped (at the end of the call
    reaching step 5, i.e. step 8) and resumed == uninterrupted, bit for bit;
    and == one step per call within float32 reduction-order error."""
    stopped = _start(["fit", tmp_path / "a", "jit:4@5,jit:4"], xla_cache, devices=8)
    whole = _start(["fit", tmp_path / "b", "jit:4"], xla_cache, devices=8)
    single = _start(["fit", tmp_path / "c", "jit:1"], xla_cache, devices=8)
    outs = _finish(stopped, whole, single)
    first, resumed = _records(outs[0])
    (reference,) = _records(outs[1])
    assert (first["step"], resumed["step"], reference["step"]) == (8, 16, 16)
    assert first["devices"] == 8 and "resumed from step 8" in outs[0]
    assert resumed["params_sha256"] == reference["params_sha256"]
    _assert_close(
        _state(tmp_path / "b" / "jit" / "state-0.npz"),
        _state(tmp_path / "c" / "jit" / "state-0.npz"),
    )


# --- two processes ---


def test_two_processes_train_like_one(tmp_path, xla_cache):
    """Two processes of 2 CPU devices each: `jit` stopped at step 5, resumed from
    the checkpoint both wrote, then `pmap`, then `shard_map` at 4 steps per
    call: identical params on both processes, equal to the one-process run;
    only process 0 writes metrics; the checkpoint loads in this one-device
    process."""
    env = {
        parallel.COORDINATOR_ENV: f"localhost:{_free_port()}",
        parallel.NUM_PROCESSES_ENV: "2",
    }
    workers = [
        _start(
            ["fit", tmp_path / "multi", "jit@5,jit,pmap,shard_map:4"],
            xla_cache,
            devices=2,
            env={**env, parallel.PROCESS_ID_ENV: str(i)},
        )
        for i in range(2)
    ]
    reference = _start(["fit", tmp_path / "reference", "jit"], xla_cache)
    outs = _finish(*workers, reference)
    assert all("resumed from step 5" not in out for out in outs[1:])  # process 0 prints
    assert "resumed from step 5" in outs[0]
    expected = _state(tmp_path / "reference" / "jit" / "state-0.npz")
    reference_lines = (tmp_path / "reference" / "jit" / "metrics.jsonl").read_text().splitlines()
    sha256 = {}
    for mode in ("jit", "pmap", "shard_map"):
        records = [r for out in outs[:2] for r in _records(out) if r["mode"] == mode]
        records = [r for r in records if r["step"] == 16]
        assert [(r["process"], r["processes"], r["devices"]) for r in records] == [
            (0, 2, 4),
            (1, 2, 4),
        ]
        assert records[0]["params_sha256"] == records[1]["params_sha256"]
        sha256[mode] = records[0]["params_sha256"]
        run = tmp_path / "multi" / mode
        _assert_close(_state(run / "state-0.npz"), expected)
        _assert_close(_state(run / "state-1.npz"), expected)
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()]
        # Written once (process 0); the run stopped at step 5 also logged the steps before it.
        extra = [5] if mode == "jit" else []
        assert sorted(steps) == sorted([json.loads(x)["step"] for x in reference_lines] + extra)
    # Both processes saved and pruned together: the last 2 steps are left.
    assert sorted(p.name for p in (tmp_path / "multi" / "jit" / "checkpoints").iterdir()) == [
        "16",
        "8",
    ]
    # The state is replicated over both processes: every leaf has its checksum,
    # and the restore below verifies them.
    sums = json.loads(
        (tmp_path / "multi" / "jit" / "checkpoints/16/checksums/metadata").read_text()
    )
    leaves = sums["sha256"]["leaves"]
    assert "params/conv1/kernel" in leaves and all(leaves.values()), leaves
    # The checkpoint of 2 processes x 2 devices, read by 1 process on 1 device.
    loaded = train.load(tmp_path / "multi" / "jit")
    assert int(loaded.step) == 16
    assert train.params_sha256(loaded.params) == sha256["jit"]


def test_processes_on_other_data_or_unshared_workdirs_stop_together(tmp_path, xla_cache):
    """Two processes where one loaded other data, then two that each got a workdir
    of their own: each check stops both processes with one error, before a step."""

    def launch(workdirs, overrides):
        env = {
            parallel.COORDINATOR_ENV: f"localhost:{_free_port()}",
            parallel.NUM_PROCESSES_ENV: "2",
        }
        workers = [
            _start(
                ["fit", workdirs[i], "jit"],
                xla_cache,
                env={
                    **env,
                    parallel.PROCESS_ID_ENV: str(i),
                    "WORKER_OVERRIDES": json.dumps(overrides[i]),
                },
            )
            for i in range(2)
        ]
        outs = [p.communicate(timeout=TIMEOUT)[0] for p in workers]
        assert all(p.returncode != 0 for p in workers), outs
        return outs

    # Process 1 trains on 224 of the 256 images: another train shape.
    shared = tmp_path / "shared"
    outs = launch([shared, shared], [{}, {"data.train_subset": 224}])
    for i, out in enumerate(outs):
        assert "ValueError: fit: the processes loaded different data: processes [1]" in out
        assert f"this is process {i}, with digits: train ({256 - 32 * i}, 8, 8, 1)" in out
    assert not shared.exists()  # stopped before the workdir was made

    # The same data, but each process writes into a directory of its own.
    outs = launch([tmp_path / "own0", tmp_path / "own1"], [{}, {}])
    for out in outs:
        assert "is not one directory shared by every host: processes [1] do not see" in out
    assert not (tmp_path / "own0" / "jit" / "checkpoints").exists()


# --- bfloat16 ---


def test_bfloat16_compute_keeps_float32_state_and_loss(xla_cache):
    (out,) = _finish(_start(["bf16"], xla_cache))
    assert "FAIL" not in out and out.count("ok  ") == 8, out


# --- in this process: plans and errors ---


def test_one_device_jit_is_the_plain_path():
    plan = parallel.DataParallel("jit")
    assert jax.device_count() == 1 and plan.trivial
    assert not parallel.DataParallel("shard_map").trivial
    assert plan.eval_batch_size(1000) == 1000


def test_batch_the_devices_do_not_divide_is_refused():
    with pytest.raises(ValueError, match=r"global batch size 30 is not divisible by the 8 devices"):
        parallel.check_batch_size(30, 8, "fit")
    assert parallel.check_batch_size(32, 8) == 4


def test_bad_mode_and_config_values_are_refused():
    with pytest.raises(ValueError, match=r"`mode` must be one of \('jit', 'shard_map', 'pmap'\)"):
        parallel.DataParallel("dp")
    with pytest.raises(ValueError, match=r"`parallel` must be one of .* got 'pjit'"):
        configs.validate({"parallel": "pjit"})
    with pytest.raises(ValueError, match=r"`dtype` must be one of .* got 'float16'"):
        configs.validate({"dtype": "float16"})
    base = configs.base()
    assert (base.parallel, base.distributed, base.dtype) == ("jit", False, "float32")


def test_with_bn_axis_reaches_every_batch_norm():
    model = models.create("resnet20", num_classes=10)
    synced = parallel.with_bn_axis(model, "data")
    assert synced.parts.bn_axis_name == "data" and model.parts.bn_axis_name is None
    # Every BatchNorm the model calls carries the axis.
    x = np.zeros((1, 8, 8, 3), np.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    seen = []

    def record(next_fun, args, kwargs, context):
        if isinstance(context.module, jnn.BatchNorm) and context.method_name == "__call__":
            seen.append(context.module.axis_name)
        return next_fun(*args, **kwargs)

    with flax.linen.intercept_methods(record):
        jax.eval_shape(lambda v: synced.apply(v, x, train=False), variables)
    # ResNet-20 (He et al. 2016, 6n+2 with n=3): 19 convs, each followed by a BatchNorm.
    num_batch_norms = len(jax.tree.leaves(variables["batch_stats"])) // 2  # mean, var
    assert len(seen) == num_batch_norms == 19 and set(seen) == {"data"}, seen

    grouped = models.create("cnn_small", num_classes=10, norm="group")
    assert parallel.with_bn_axis(grouped, "data") is grouped
    with pytest.raises(ValueError, match=r"Dense has no `parts.bn_axis_name`"):
        parallel.with_bn_axis(flax.linen.Dense(3), "data")
    with pytest.raises(TypeError, match=r"`bn_axis_name` must be None or an axis name"):
        models.create("cnn_small", num_classes=10, bn_axis_name=1)


def test_distributed_starts_only_when_asked(monkeypatch):
    monkeypatch.delenv(parallel.COORDINATOR_ENV, raising=False)
    assert parallel.initialize_distributed(False) is False
    monkeypatch.setenv(parallel.COORDINATOR_ENV, "localhost:1")
    monkeypatch.setenv(parallel.NUM_PROCESSES_ENV, "two")
    with pytest.raises(ValueError, match=r"JAX_NUM_PROCESSES must be an int, got 'two'"):
        parallel.initialize_distributed(False)


# --- launch scripts (tpu/) ---

TPU = ROOT / "tpu"
SCRIPTS = sorted(p.name for p in TPU.glob("*.sh"))


def test_launch_scripts_pass_shellcheck():
    assert {"setup.sh", "run.sh", "gpu_single_host.sh", "gpu_multi_host.sh"} <= set(SCRIPTS)
    for name in SCRIPTS:
        syntax = subprocess.run(["bash", "-n", name], cwd=TPU, capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck); bash -n passed")
    proc = subprocess.run([shellcheck, "-x", *SCRIPTS], cwd=TPU, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.fixture
def dry_run(tmp_path):
    """Runs a script of tpu/ with --dry-run; gcloud, ssh, scp, make and pip on PATH are
    fakes that record any call, so a dry run that ran something is caught."""
    fake_bin, calls = tmp_path / "bin", tmp_path / "calls.log"
    fake_bin.mkdir()
    for tool in ("gcloud", "ssh", "scp", "make", "pip"):
        path = fake_bin / tool
        path.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n')
        path.chmod(0o755)

    def run(script, *args, dry_run_last=False, **env):
        full_env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", **env}
        for name in ("TPU_NAME", "ZONE", "PROJECT", "HOSTS", "WORKDIR", "DRY_RUN"):
            if name not in env:
                full_env.pop(name, None)
        proc = subprocess.run(
            ["bash", str(TPU / script), *args, "--dry-run"]
            if dry_run_last
            else ["bash", str(TPU / script), "--dry-run", *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert not calls.exists(), f"dry run ran: {calls.read_text()}"
        # Each printed command ("+ " starts one; a quoted remote script spans lines),
        # split as the shell would.
        chunks = re.split(r"^\+ ", proc.stdout, flags=re.MULTILINE)[1:]
        commands = [shlex.split(chunk) for chunk in chunks]
        return proc, commands

    return run


@pytest.mark.parametrize(
    "script, args, env",
    [
        ("run.sh", ("--config.num_epochs=3",), dict(TPU_NAME="t", ZONE="z", WORKDIR="/w")),
        ("setup.sh", (), dict(TPU_NAME="t", ZONE="z")),
        ("gpu_single_host.sh", ("run", "--config.num_epochs=3"), dict(WORKDIR="/w")),
        ("gpu_multi_host.sh", ("run", "--config.num_epochs=3"), dict(HOSTS="a b", WORKDIR="/w")),
    ],
)
def test_dry_run_is_taken_anywhere_on_the_command_line(dry_run, script, args, env):
    first, first_commands = dry_run(script, *args, **env)
    last, last_commands = dry_run(script, *args, dry_run_last=True, **env)
    assert first.returncode == last.returncode == 0, (first.stderr, last.stderr)

    def same_pid(commands):  # setup.sh names its tarball after the shell's PID
        return [[re.sub(r"jcnn-\d+\.tar", "jcnn-PID.tar", w) for w in c] for c in commands]

    assert first_commands and same_pid(last_commands) == same_pid(first_commands)
    assert all("--dry-run" not in c for c in last_commands)


def test_tpu_scripts_dry_run_print_gcloud_commands(dry_run):
    proc, commands = dry_run("setup.sh", TPU_NAME="my-tpu", ZONE="us-central2-b")
    assert proc.returncode == 0, proc.stderr
    assert [c[:5] for c in commands if c[0] == "gcloud"] == [
        ["gcloud", "compute", "tpus", "tpu-vm", "scp"],
        ["gcloud", "compute", "tpus", "tpu-vm", "ssh"],
    ]
    ssh = next(c for c in commands if c[:5] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh"])
    assert ssh[5:8] == ["my-tpu", "--worker=all", "--zone=us-central2-b"]
    remote = ssh[-1].removeprefix("--command=")
    assert "install -q -e ./jcnn 'jax[tpu]>=0.10,<0.13'" in remote
    assert "dataset-fashion-mnist" in remote

    proc, commands = dry_run(
        "run.sh",
        "--config.num_epochs=3",
        "--config.data.augment=('crop', 'flip')",
        TPU_NAME="my-tpu",
        ZONE="us-central2-b",
        PROJECT="proj",
        WORKDIR="/mnt/shared/r1",
        PARALLEL="shard_map",
    )
    assert proc.returncode == 0, proc.stderr
    (ssh,) = commands
    assert ssh[:9] == [
        *("gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-tpu"),
        *("--worker=all", "--zone=us-central2-b", "--project=proj"),
    ]
    remote = shlex.split(ssh[9].removeprefix("--command="))
    assert remote[:3] == ["cd", "~/jcnn", "&&"]
    assert remote[3:] == [
        "$HOME/jcnn-venv/bin/jcnn",
        "train",
        "--config=default",
        "--workdir=/mnt/shared/r1",
        "--config.parallel=shard_map",
        "--config.dtype=bfloat16",
        "--config.distributed=True",
        "--config.num_epochs=3",
        "--config.data.augment=('crop', 'flip')",
    ]

    proc, _ = dry_run("run.sh", ZONE="us-central2-b")
    assert proc.returncode == 2 and "set TPU_NAME" in proc.stderr


def test_gpu_scripts_dry_run_print_their_commands(dry_run):
    proc, commands = dry_run("gpu_single_host.sh", "setup")
    assert proc.returncode == 0, proc.stderr
    assert commands[1][1:] == ["install", "-q", "jax[cuda12]>=0.10,<0.13"]
    proc, commands = dry_run("gpu_single_host.sh", "run", "--config.seed=3", PARALLEL="pmap")
    assert proc.returncode == 0, proc.stderr
    assert commands == [
        [
            str(ROOT / ".venv/bin/jcnn"),
            *("train", "--config=default", "--workdir=runs/gpu", "--config.parallel=pmap"),
            *("--config.dtype=bfloat16", "--config.seed=3"),
        ]
    ]

    proc, commands = dry_run("gpu_multi_host.sh", "run", HOSTS="gpu-a gpu-b", WORKDIR="/shared/r")
    assert proc.returncode == 0, proc.stderr
    assert [c[:2] for c in commands] == [["ssh", "gpu-a"], ["ssh", "gpu-b"]]
    for i, command in enumerate(commands):
        remote = shlex.split(command[2])
        assert remote[3:7] == [
            "env",
            f"{parallel.COORDINATOR_ENV}=gpu-a:12345",
            f"{parallel.NUM_PROCESSES_ENV}=2",
            f"{parallel.PROCESS_ID_ENV}={i}",
        ]
        assert remote[7:10] == ["$HOME/jcnn-venv/bin/jcnn", "train", "--config=default"]
    proc, commands = dry_run("gpu_multi_host.sh", "setup", HOSTS="gpu-a", SCP="scp -P 2222")
    assert proc.returncode == 0, proc.stderr
    assert commands[1][:3] == ["scp", "-P", "2222"]
    assert "jax[cuda12]>=0.10,<0.13" in commands[2][-1]
    proc, _ = dry_run("gpu_multi_host.sh", "run", HOSTS="gpu-a")
    assert proc.returncode == 2 and "set WORKDIR" in proc.stderr
