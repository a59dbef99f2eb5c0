"""`jcnn export` / `jcnn predict`: the exported file reproduces the checkpoint's
logits in a process that cannot import jcnn, and predicts saved PNGs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import jax
import matplotlib.image
import numpy as np
import pytest

from jcnn import cli, configs, models, train
from jcnn import data as jdata
from jcnn.interop import _loader, export_workdir, load_exported
from tests.interop.smoke_run import smoke_workdir

BATCH_SIZES = (1, 3, 8)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The trained smoke run, its export, and reference logits computed here
    from the checkpoint with the model and the formulas written out."""
    workdir = smoke_workdir(tmp_path_factory)
    out = export_workdir(workdir, tmp_path_factory.mktemp("export") / "model.jax")
    config = configs.from_json((workdir / "config.json").read_text())
    assert config.flip_tta  # the smoke config evaluates with mirror test-time augmentation
    dataset = jdata.resolve_dataset(config.data.name, fallback=config.data.fallback)
    names = jdata.class_names(dataset)
    model = models.create(config.model.name, num_classes=len(names))
    variables = train.load(workdir).variables
    mean, std = jdata.pixel_stats(dataset)
    images, labels = jdata.load(dataset, "test")

    apply = jax.jit(lambda x: model.apply(variables, x, train=False))

    def reference(u8):
        x = (u8.astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
        return 0.5 * (np.asarray(apply(x)) + np.asarray(apply(x[:, :, ::-1])))

    return dict(
        workdir=workdir,
        out=out,
        names=names,
        images=images,
        labels=labels,
        reference=reference,
        mean=mean,
        std=std,
    )


def test_header_holds_the_preprocessing(run):
    header, payload = _loader.read_artifact(run["out"])
    h, w, c = run["images"].shape[1:]
    assert header["input_shape"] == [h, w, c]
    assert header["class_names"] == list(run["names"])
    assert (header["mean"], header["std"]) == (run["mean"], run["std"])
    # The hash `jcnn eval` prints for this checkpoint.
    assert header["params_sha256"] == train.params_sha256(train.load(run["workdir"]).params)
    assert payload  # the serialized StableHLO


STANDALONE = textwrap.dedent(
    """
    import importlib.abc, importlib.util, sys
    import numpy as np

    class NoJcnn(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "jcnn" or name.startswith("jcnn."):
                raise ImportError(f"jcnn is blocked in this process: {name}")

    sys.meta_path.insert(0, NoJcnn())
    loader_path, model_path, folder = sys.argv[1:]
    spec = importlib.util.spec_from_file_location("standalone_loader", loader_path)
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    model = loader.load_exported(model_path)
    for n in SIZES:
        np.save(f"{folder}/logits_{n}.npy", model.logits(np.load(f"{folder}/x_{n}.npy")))
    print(sorted(m for m in sys.modules if m.startswith("jcnn")))
    """
)


def test_exported_logits_equal_checkpoint_without_jcnn(run, tmp_path):
    images = run["images"][: max(BATCH_SIZES)]
    mean, std = np.float32(run["mean"]), np.float32(run["std"])
    for n in BATCH_SIZES:
        np.save(tmp_path / f"x_{n}.npy", (images[:n].astype(np.float32) / 255 - mean) / std)
    script = STANDALONE.replace("SIZES", repr(BATCH_SIZES))
    result = subprocess.run(
        [sys.executable, "-c", script, _loader.__file__, str(run["out"]), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"  # no jcnn module was loaded
    for n in BATCH_SIZES:
        got = np.load(tmp_path / f"logits_{n}.npy")
        # The same float32 computation compiled separately (other fusions and
        # summation orders): measured max difference 1.7e-6 on logits of order 1-10.
        np.testing.assert_allclose(got, run["reference"](images[:n]), rtol=1e-5, atol=1e-5)


def _confident_image(run) -> int:
    """The first of the first 50 test images whose true class gets p > 0.9."""
    logits = run["reference"](run["images"][:50]).astype(np.float64)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    true_p = probs[np.arange(50), run["labels"][:50]]
    candidates = np.flatnonzero(true_p > 0.9)
    assert candidates.size, f"no test image among the first 50 has p(true) > 0.9: {true_p}"
    return int(candidates[0])


def test_predict_prints_the_true_class_first(run, tmp_path, capsys):
    i = _confident_image(run)
    png = tmp_path / f"test_{i}.png"
    matplotlib.image.imsave(png, run["images"][i, :, :, 0], cmap="gray", vmin=0, vmax=255)
    true_name = run["names"][run["labels"][i]]
    assert cli.main(["predict", f"--model={run['out']}", "--json", str(png)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["image"] == str(png)
    assert record["top"][0]["class"] == true_name
    assert len(record["top"]) == 3 and record["top"][0]["probability"] > 0.9
    assert cli.main(["predict", f"--model={run['out']}", "--top-k=1", str(png)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(png) and lines[1].split()[:2] == ["1.", true_name.split()[0]]


def test_preprocess_converts_colour_and_size(run):
    model = load_exported(run["out"])
    h, w, _ = model.input_shape
    grey = run["images"][0, :, :, 0]
    expected = (grey.astype(np.float32) / 255 - model.mean) / model.std
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])
    # BT.601 weights sum to 1: grey RGB(A) stays grey (up to float rounding).
    np.testing.assert_allclose(model.preprocess(rgba)[:, :, 0], expected, atol=1e-5)
    np.testing.assert_allclose(model.preprocess(grey)[:, :, 0], expected, atol=1e-6)
    # Resizing a constant image of any size gives the constant.
    flat = model.preprocess(np.full((3 * h + 1, 2 * w, 3), 0.25, np.float32))
    np.testing.assert_allclose(flat, (0.25 - model.mean) / model.std, atol=1e-5)


def test_loader_errors(run, tmp_path):
    model = load_exported(run["out"])
    with pytest.raises(ValueError, match=r"`x` must be \(N, \d+, \d+, 1\) with N >= 1, got shape"):
        model.logits(np.zeros((2, 5, 5, 1)))
    bad = tmp_path / "bad.jax"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match=r"is not a jcnn exported model"):
        load_exported(bad)
    cut = tmp_path / "cut.jax"
    cut.write_bytes(run["out"].read_bytes()[:100])
    with pytest.raises(ValueError, match=r"is truncated: the header needs \d+ bytes"):
        load_exported(cut)
    with pytest.raises(ValueError, match=r"an image must be \(h, w\) or \(h, w, 1\|2\|3\|4\)"):
        model.preprocess(np.zeros((4, 4, 5)))


def test_cli_errors_exit_2_with_one_line(run, tmp_path, capsys):
    cases = [
        ["export", f"--workdir={tmp_path / 'none'}", f"--out={tmp_path / 'm.jax'}"],
        ["export", f"--workdir={run['workdir']}", f"--out={tmp_path / 'm.jax'}", "--platforms=gpu"],
        ["predict", f"--model={run['out']}", "--top-k=0", "x.png"],
        ["predict", f"--model={run['out']}", str(run["out"])],  # not an image
    ]
    for argv in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"jcnn {argv[0]}: error: "), err
