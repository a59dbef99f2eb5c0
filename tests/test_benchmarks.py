"""The benchmark scripts run, and compare like with like.

The parameter-count check is the independent part: the plain-Flax anchor and
the PyTorch peer are written from the architectures' definitions inside
benchmarks/models.py, without jcnn, and must have exactly jcnn's parameters
(and, where the paper or torchvision states it, the published count).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
_spec = importlib.util.spec_from_file_location(
    "jcnn_benchmarks_models", os.path.join(BENCH, "models.py")
)
bench_models = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench_models  # flax's dataclass transform looks the module up
_spec.loader.exec_module(bench_models)

HAS_TORCH = importlib.util.find_spec("torch") is not None

# Published counts with 10 classes: LeNet-5 61,706 (jcnn.models.LeNet5's
# docstring, from the layer sizes); ResNet-20 0.27 M (He et al. 2016, Table 6);
# torchvision's ResNet-18/50 have 11,689,512 / 25,557,032 with 1000 classes,
# whose head (512 or 2048 inputs, + bias) becomes a 10-class one here.
PUBLISHED = {
    "lenet5": 61_706,
    "resnet18": 11_689_512 - 1000 * 513 + 10 * 513,
    "resnet50": 25_557_032 - 1000 * 2049 + 10 * 2049,
}


@pytest.mark.parametrize("name", list(bench_models.MODELS))
def test_anchor_peer_and_jcnn_have_equal_parameter_counts(name):
    frameworks = ["jcnn", "flax"] + (["torch"] if HAS_TORCH else [])
    counts = {f: bench_models.param_count(f, name) for f in frameworks}
    assert len(set(counts.values())) == 1, counts
    if name in PUBLISHED:
        assert counts["jcnn"] == PUBLISHED[name]
    if name == "resnet20":
        assert round(counts["jcnn"] / 1e6, 2) == 0.27


def _run(script, *args):
    env = dict(os.environ, JCNN_KEEP_XLA_FLAGS="1")
    out = subprocess.run(
        [sys.executable, os.path.join(BENCH, script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_models_benchmark_quick_run_prints_a_table_per_model():
    variants = "jcnn,flax"  # the torch workers are exercised by the full run; they import slowly
    out = _run("models.py", "--quick", "--models", "lenet5", "--variants", variants)
    assert "### lenet5" in out
    assert "load average" in out and "jaxlib" in out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(variants.split(","))  # header + one row per variant
    assert all("61,706" in row for row in rows[1:])


def test_primitives_benchmark_quick_run_covers_every_op():
    out = _run("primitives.py", "--quick")
    for op in ("conv 3x3", "conv 1x1", "depthwise 3x3", "max pool", "batch norm", "group norm"):
        assert f"| {op}" in out
    assert "float32 matmul" in out


def _conv_profile():
    spec = importlib.util.spec_from_file_location(
        "jcnn_benchmarks_conv_profile", os.path.join(BENCH, "conv_profile.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_conv_profile_finds_every_resnet20_convolution():
    # He et al. 2016 (CIFAR ResNets, 6n+2 layers, n=3): one 3x3 conv on the image, then
    # 18 in the blocks; option-A shortcuts add none. MACs from the layer sizes:
    # 32*32*16*3*9 + 6 * 32*32*16*16*9 + 32*32/4*32*16*9 + 5 * 16*16*32*32*9
    # + 16*16/4*64*32*9 + 5 * 8*8*64*64*9 = 40,550,400 per image.
    profile = _conv_profile()
    convs = profile._convs("resnet20", 2)
    assert sum(c["count"] for c in convs) == 19
    assert [c["count"] for c in convs if c["first"]] == [1]
    assert sum(c["count"] * profile._flops(c) for c in convs) == 2 * 2 * 40_550_400
    strided = [profile._nchw(c) for c in convs if profile._nchw(c)["stride"] == [2, 2]]
    assert [(t["c"], t["o"], t["padding"]) for t in strided] == [(16, 32, [1, 1]), (32, 64, [1, 1])]


def test_conv_profile_quick_run_prints_the_split():
    out = _run("conv_profile.py", "--quick", "--model", "lenet5", "--frameworks", "jcnn")
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    # LeNet-5: conv 5x5 on the 28x28 image (padded), conv 5x5 6 -> 16; then the step table.
    assert sum("(first)" in r for r in rows) == 1
    assert any("5x5" in r and "-> 16" in r for r in rows)
    assert any(r.startswith("| jcnn |") for r in rows)
