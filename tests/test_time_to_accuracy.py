"""benchmarks/time_to_accuracy.py: jcnn's default recipe against its PyTorch twin.

The PyTorch script is checked against jcnn independently: its parameter
shapes against jcnn's cnn_small (and both against the count worked out from
the layer sizes), its schedule against `jcnn.optim.make_schedule`, its
initialiser against the He-normal definition, its augmentation against the
definition of a crop of the padded image and a mirror. The quick run then
runs both for real.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcnn import models, optim, summary
from tests.train._smoke import needs_fashion

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
    "jcnn_benchmarks_tta", os.path.join(ROOT, "benchmarks", "time_to_accuracy.py")
)
tta = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = tta
_spec.loader.exec_module(tta)

torch = pytest.importorskip("torch")

# cnn_small from its layer sizes: convs 9*(1*32 + 32*32 + 32*64 + 64*64) = 64,800;
# BN scale+offset 2*(32+32+64+64) = 384; fc1 (64*7*7)*128 + 128 = 401,536;
# fc2 128*10 + 10 = 1,290. Decayed (kernels only): 64,800 + 401,408 + 1,280.
CNN_SMALL_PARAMS = 64_800 + 384 + 401_536 + 1_290
CNN_SMALL_DECAYED = 64_800 + 401_408 + 1_280


def _jcnn_params():
    model = models.create("cnn_small", num_classes=10)
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)
    )
    return model, shapes["params"]


def test_torch_model_has_the_shapes_of_jcnn_cnn_small():
    model, params = _jcnn_params()
    net = tta.torch_model()
    # torch stores conv weights OIHW and dense weights (out, in); jcnn HWIO and (in, out).
    to_jcnn = {4: (2, 3, 1, 0), 2: (1, 0), 1: (0,)}
    torch_shapes = sorted(tuple(p.shape[i] for i in to_jcnn[p.ndim]) for p in net.parameters())
    assert torch_shapes == sorted(tuple(p.shape) for p in jax.tree.leaves(params))
    total = sum(p.numel() for p in net.parameters())
    assert total == summary.summarize(model, (28, 28, 1)).total_params == CNN_SMALL_PARAMS
    mask = jax.tree.leaves(optim.default_decay_mask(params))
    jcnn_decayed = sum(p.size for p, m in zip(jax.tree.leaves(params), mask, strict=True) if m)
    assert sum(p.numel() for p in tta.decayed(net)) == jcnn_decayed == CNN_SMALL_DECAYED


def test_torch_init_is_truncated_he_normal_with_zero_biases():
    torch.manual_seed(0)
    w = tta.torch_model().fc1.weight.detach().double().numpy().ravel()
    std = math.sqrt(2.0 / 3136)  # He: variance 2 / fan_in
    # n = 401,408 draws; the sample std's relative standard error is
    # sqrt((kurtosis - 1) / 4n) < sqrt(2 / 4n) = 1.1e-3 (a 2-sigma truncated
    # normal has kurtosis < 3), so 1e-2 is more than 8 sigma.
    assert w.std() == pytest.approx(std, rel=1e-2)
    assert np.abs(w).max() <= 2 * std / 0.8796 * (1 + 1e-6)  # truncated at 2 (rescaled) sigma
    net = tta.torch_model()
    assert not net.fc1.bias.any() and not net.fc2.bias.any()


@pytest.mark.parametrize("quick", [False, True])
def test_torch_schedule_equals_jcnn_make_schedule(quick):
    config = tta.make_config([*tta.QUICK_OVERRIDES, "--config.num_epochs=1"] if quick else [])
    spe = (1024 if quick else 60_000) // config["data"]["batch_size"]
    total = spe * config["num_epochs"]
    warmup = round(config["optim"]["warmup_epochs"] * spe)
    jcnn_lr = optim.make_schedule(
        config["optim"], steps_per_epoch=spe, num_epochs=config["num_epochs"]
    )
    torch_lr = tta.schedule_of(config, spe)
    for step in (0, 1, warmup - 1, warmup, (warmup + total) // 2, total - 1, total):
        assert torch_lr(step) == pytest.approx(float(jcnn_lr(step)), rel=1e-6, abs=1e-9), step


def test_augment_crops_the_padded_image_and_mirrors_it():
    n, h, w, p = 2000, 5, 6, 2
    images = torch.arange(n * h * w, dtype=torch.int32).reshape(n, h, w, 1) % 251 + 1
    images = images.to(torch.uint8)
    out = tta.augment(images, ["crop", "flip"], p, torch.Generator().manual_seed(0))
    seen = set()
    for x, y in zip(images.numpy()[..., 0], out.numpy()[..., 0], strict=True):
        padded = np.pad(x, p)
        found = [
            (oy, ox, f)
            for oy in range(2 * p + 1)
            for ox in range(2 * p + 1)
            for f in (0, 1)
            if np.array_equal(y, padded[oy : oy + h, ox : ox + w][:, :: 1 - 2 * f])
        ]
        assert found, "an output is no crop of the padded image, mirrored or not"
        seen.update(found)
    # Each of the 50 (offset, flip) cases has probability 1/50 per example: one
    # missing from 2000 examples has probability 50 * (49/50)**2000 < 1e-15.
    assert len(seen) == 50


def test_torch_script_refuses_a_recipe_it_does_not_implement():
    config = tta.make_config(["--config.optim.name=adam"])
    with pytest.raises(ValueError, match=r"does not implement \{'optim.name': 'adam'\}"):
        tta.check_recipe(config)


@needs_fashion
def test_quick_run_times_jcnn_and_torch(capsys):
    # One torch thread: on a loaded machine two OpenMP threads wait for each other
    # at every op (700 ms against 37 ms per step measured at load 6 on 2 cores).
    assert tta.main(["--quick", "--threads=1"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["quick"] and record["target"] == tta.QUICK_TARGET and record["epochs"] == 1
    assert record["runs"][1]["threads"] == 1
    assert [r["run"] for r in record["runs"]] == ["jcnn", "torch"]
    for r in record["runs"]:
        assert r["params"] == CNN_SMALL_PARAMS and r["decayed_params"] == CNN_SMALL_DECAYED
        assert [e["epoch"] for e in r["evals"]] == [1]
        assert 0.0 <= r["final_accuracy"] <= 1.0
        assert 0.0 < r["evals"][0]["t_s"] <= r["total_s"]
        # One epoch of 32 steps reaches 0.70-0.73 here, well above the 0.5 target.
        assert r["time_to_target_s"] == r["evals"][0]["t_s"] and r["target_epoch"] == 1
    assert record["torch_over_jcnn"] > 0
