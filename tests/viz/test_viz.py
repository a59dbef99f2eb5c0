"""`jcnn viz`: every figure is a PNG of the stated size that is not blank."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from jcnn import cli, viz
from jcnn.viz import confusion_matrix
from tests.interop.smoke_run import smoke_workdir

# A blank (single-colour) figure has variance 0; a figure with axes, lines
# and text on white has an RGB variance of order 1e-2 (values in [0, 1]).
VARIANCE_FLOOR = 1e-3


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return smoke_workdir(tmp_path_factory)


def _check_png(path, width, height):
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (height, width), image.shape
    assert float(image[:, :, :3].var()) > VARIANCE_FLOOR


# (argv after "viz", width x height in pixels: the documented default figsize x 100 dpi)
COMMANDS = {
    "activations": ([], (1200, 450)),
    "conv": (["--n=5", "--k=3", "--p=1", "--s=2", "--d=1"], (1280, 340)),
    "filters": (["--workdir={w}"], (800, 450)),
    "features": (["--workdir={w}", "--index=3"], (1000, 700)),
    "schedule": (["--config=default:smoke"], (1000, 380)),
    "curves": (["{w}", "{w}"], (1300, 380)),
    "confusion": (["--workdir={w}"], (750, 650)),
}


@pytest.mark.parametrize("figure", sorted(COMMANDS))
def test_viz_command_writes_the_figure(figure, workdir, tmp_path, capsys):
    args, (width, height) = COMMANDS[figure]
    out = tmp_path / f"{figure}.png"
    argv = ["viz", figure, *(a.format(w=workdir) for a in args), f"--out={out}"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    _check_png(out, width, height)


def test_size_follows_figsize_and_dpi(tmp_path):
    out = viz.plot_activations(
        tmp_path / "a.png", names=("sigmoid", "tanh"), figsize=(5, 3), dpi=40
    )
    _check_png(out, 200, 120)
    out = viz.plot_conv_arithmetic(tmp_path / "c.png", n=4, k=2, s=2, figsize=(6, 3), dpi=30)
    _check_png(out, 180, 90)


def test_confusion_matrix_counts():
    # Hand-counted: true 0 -> predicted 0, 1; true 1 -> 1; true 2 -> 0, 0.
    got = confusion_matrix([0, 0, 1, 2, 2], [0, 1, 1, 0, 0], 3)
    np.testing.assert_array_equal(got, [[1, 1, 0], [0, 1, 0], [2, 0, 0]])


def test_bad_arguments(tmp_path, workdir, capsys):
    with pytest.raises(ValueError, match=r"the dilated kernel spans 7 pixels .* n \+ 2p = 5"):
        viz.plot_conv_arithmetic(tmp_path / "c.png", n=5, k=4, d=2)
    with pytest.raises(TypeError, match=r"plot_conv_arithmetic: `s` must be an int, got 1.5"):
        viz.plot_conv_arithmetic(tmp_path / "c.png", n=5, k=3, s=1.5)
    with pytest.raises(
        ValueError, match=r"`names` must be a non-empty subset of .* \('softmax',\)"
    ):
        viz.plot_activations(tmp_path / "a.png", names=("softmax",))
    with pytest.raises(ValueError, match=r"`figsize` must be \(width, height\) inches > 0"):
        viz.plot_activations(tmp_path / "a.png", figsize=(0, 3))
    with pytest.raises(ValueError, match=r"`index` must be < 500 \(the test images\), got 500"):
        viz.plot_feature_maps(workdir, tmp_path / "f.png", index=500)
    with pytest.raises(FileNotFoundError, match=r"no metrics\.jsonl in "):
        viz.plot_training_curves([tmp_path], tmp_path / "t.png")
    for argv in (
        ["viz", "conv", "--n=3", "--k=5", f"--out={tmp_path / 'c.png'}"],
        ["viz", "filters", f"--workdir={tmp_path / 'none'}", f"--out={tmp_path / 'f.png'}"],
    ):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("jcnn viz: error: "), err
