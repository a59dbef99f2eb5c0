"""End-to-end training on real Fashion-MNIST images: the CLI smoke run learns,
a stopped and resumed run is bit-identical to an uninterrupted one, and the
workdir holds what DESIGN §7 promises."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from jcnn import cli, configs, train
from jcnn.train.plot import read_metrics
from tests.train._smoke import needs_fashion
from tests.train._smoke import smoke as _smoke


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One CLI run of `default:smoke` (2 epochs of 512 images, 32 steps)."""
    workdir = tmp_path_factory.mktemp("smoke")
    status = cli.main(
        ["train", "--config=default:smoke", f"--workdir={workdir}", "--config.progress=False"]
    )
    assert status == 0
    return workdir


@needs_fashion
def test_cli_smoke_run_learns(smoke_run, capsys):
    train_lines, eval_lines = read_metrics(smoke_run / "metrics.jsonl")
    assert [r["epoch"] for r in eval_lines] == [1, 2]
    # 500 test images: at chance (10%) the accuracy has std sqrt(.1*.9/500) = 1.3%,
    # so 40% is > 20 sigma above chance; the run reaches ~70% (seeds 0 and 1).
    assert eval_lines[-1]["test_accuracy"] > 0.40
    assert train_lines[-1]["step"] == 32
    assert all(np.isfinite(r["train_loss"]) for r in train_lines)
    assert (smoke_run / "curves.png").stat().st_size > 10_000
    saved = json.loads((smoke_run / "config.json").read_text())
    assert saved["model"]["name"] == "cnn_small" and saved["data"]["train_subset"] == 512

    capsys.readouterr()
    assert cli.main(["eval", f"--workdir={smoke_run}"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 32
    assert result["test_accuracy"] == pytest.approx(eval_lines[-1]["test_accuracy"])
    assert len(result["params_sha256"]) == 64


@needs_fashion
def test_resume_is_bit_identical(smoke_run, tmp_path):
    """Stopped mid-epoch and resumed == the uninterrupted CLI run. The smoke run
    makes 4 steps per call, so stop_at_step=6 stops at the end of the call (step 8)."""
    workdir = tmp_path / "resumed"
    stopped = train.fit(_smoke(stop_at_step=6), workdir)
    assert int(stopped.step) == 8
    resumed = train.fit(_smoke(), workdir)
    assert int(resumed.step) == 32
    reference = train.load(smoke_run)
    same = jax.tree.map(
        lambda a, b: np.array_equal(np.asarray(a), np.asarray(b)),
        (resumed.params, resumed.batch_stats, resumed.opt_state),
        (reference.params, reference.batch_stats, reference.opt_state),
    )
    assert all(jax.tree.leaves(same))
    assert train.params_sha256(resumed.params) == train.params_sha256(reference.params)


@needs_fashion
def test_single_step_calls_stop_exactly_and_resume_bit_identically(smoke_run, tmp_path):
    """With one step per call a run stops at any step (13, mid-epoch) and resumes
    exactly; it computes the same function as the 4-step calls of the smoke run
    (same losses to float rounding; the bits may differ, see compiled_train_chunk)."""
    stopped = train.fit(_smoke(steps_per_call=1, stop_at_step=13), tmp_path / "a")
    assert int(stopped.step) == 13
    resumed = train.fit(_smoke(steps_per_call=1), tmp_path / "a")
    single = train.fit(_smoke(steps_per_call=1), tmp_path / "b")
    assert train.params_sha256(resumed.params) == train.params_sha256(single.params)
    lines = [read_metrics(w / "metrics.jsonl")[0] for w in (tmp_path / "b", smoke_run)]
    assert [r["step"] for r in lines[0]] == [r["step"] for r in lines[1]]
    np.testing.assert_allclose(
        [r["train_loss"] for r in lines[0]], [r["train_loss"] for r in lines[1]], rtol=2e-3
    )
    with pytest.raises(ValueError, match="`steps_per_call` must be an int >= 1 or None, got 0"):
        configs.validate(_smoke(steps_per_call=0))


@needs_fashion
def test_a_different_config_does_not_resume_a_run(smoke_run, tmp_path):
    """A finished run asked to continue under another learning rate or model
    raises before writing anything; keys that only steer the run may change."""
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(smoke_run, workdir)

    def files():  # the run's files; .lock names the process that last held the workdir
        return {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file() and p.name != ".lock"}

    before = files()
    with pytest.raises(
        ValueError,
        match=r"fit: .*copy holds a run \(saved at step 32\) of a different config: "
        r"optim\.lr: 0\.01 -> 0\.1\. To resume it, repeat its config",
    ):
        train.fit(_smoke(**{"optim.lr": 0.1}), workdir)
    with pytest.raises(ValueError, match=r"model\.name: 'cnn_small' -> 'lenet5'"):
        train.fit(_smoke(**{"model.name": "lenet5"}), workdir)
    assert files() == before
    # Logging, evaluation and execution settings: the run resumes (here: is done).
    state = train.fit(_smoke(log_every_steps=3, eval_batch_size=7, steps_per_call=1), workdir)
    assert int(state.step) == 32
    assert json.loads((workdir / "config.json").read_text())["log_every_steps"] == 3


@needs_fashion
def test_a_workdir_in_use_is_refused(smoke_run, tmp_path, capsys):
    """The same command started twice: the second fit stops before writing."""
    import shutil

    from jcnn.train.loop import WorkdirLock

    workdir = tmp_path / "copy"
    shutil.copytree(smoke_run, workdir)
    before = (workdir / "config.json").read_bytes()
    with WorkdirLock(workdir):
        with pytest.raises(train.WorkdirInUseError, match=r"copy is in use by process \d+ on "):
            train.fit(_smoke(), workdir)
        capsys.readouterr()
        argv = ["train", "--config=default:smoke", f"--workdir={workdir}"]
        assert cli.main([*argv, "--config.progress=False"]) == 1
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and "is in use by process" in err, err
    assert (workdir / "config.json").read_bytes() == before
    assert int(train.fit(_smoke(), workdir).step) == 32  # released: the finished run loads


def test_cli_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    cases = [
        (["train", "--config=defualt", f"--workdir={tmp_path}"], "Did you mean 'default'"),
        (
            ["train", "--config=default", f"--workdir={tmp_path}", "--config.num_epoch=3"],
            "unknown key `num_epoch`",
        ),
        (["summary", "lenet5", "--input-shape=32,32"], "--input-shape must be H,W,C"),
        (["eval", f"--workdir={tmp_path / 'nothing'}"], "no run in"),
        (
            ["train", "--config=default:smoke", "--workdir=gs://bucket/run"],
            "fit: `workdir` must be a local or mounted directory, got the URL 'gs://bucket/run'",
        ),
        (["eval", "--workdir=gs://bucket/run"], "evaluate: `workdir` must be a local"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err


def test_config_validation_names_the_key():
    with pytest.raises(ValueError, match=r"`data.batch_size` must be an int >= 1, got 0"):
        configs.validate({"data": {"batch_size": 0}})
    with pytest.raises(ValueError, match=r"unknown key `data.augmnt`. Did you mean 'augment'"):
        configs.validate({"data": {"augmnt": ()}})
    with pytest.raises(ValueError, match=r"`data.augment` has unknown ops \['rotate'\]"):
        configs.validate({"data": {"augment": ("rotate",)}})
    # Caught here, before a workdir exists, not by the first traced step.
    with pytest.raises(ValueError, match=r"contains 'cutout' but `data.cutout_size` is None"):
        configs.validate({"data": {"augment": ("crop", "cutout")}})
    with pytest.raises(ValueError, match=r"`seed` must be an int in \[0, 2\*\*32\)"):
        configs.validate({"seed": 2**32})
    assert configs.validate({"seed": 2**32 - 1}).seed == 2**32 - 1
    for name in configs.NAMES:
        assert configs.get(f"{name}:smoke").num_epochs >= 1


def test_cli_overrides_parse_literals_and_comma_separated_tuples():
    config = cli.apply_overrides(
        configs.get("default"),
        [
            "--config.data.augment=crop",
            "--config.optim.lr=0.1",
            "--config.flip_tta=False",
            "--config.optim.schedule=cosine",
        ],
    )
    assert config.data.augment == ("crop",)
    assert config.optim.lr == 0.1 and config.flip_tta is False
    assert config.optim.schedule == "cosine"
    assert cli.apply_overrides(configs.get("default"), ["--config.data.augment=crop,flip,cutout"])[
        "data"
    ]["augment"] == ("crop", "flip", "cutout")
    assert (
        cli.apply_overrides(configs.get("default"), ["--config.data.augment="]).data.augment == ()
    )
    assert cli.apply_overrides(
        configs.get("default"), ["--config.data.augment=['flip']"]
    ).data.augment == ("flip",)


def test_without_fashion_mnist_the_run_trains_on_digits_with_their_settings(
    tmp_path, monkeypatch, capsys
):
    from jcnn.data import datasets

    for var, place in (("JCNN_DATA_DIR", "env"), ("HOME", "home")):
        monkeypatch.setenv(var, str(tmp_path / place))
    monkeypatch.setattr(datasets, "SYSTEM_DATA_DIR", tmp_path / "system")
    workdir = tmp_path / "run"
    state = train.fit(_smoke(num_epochs=1), workdir)
    out = capsys.readouterr().out
    assert "Fashion-MNIST not found" in out
    assert "training on 'digits' with its settings: data.augment=('crop',)" in out
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["data"]["name"] == "digits" and saved["data"]["augment"] == ["crop"]
    assert saved["data"]["batch_size"] == 32 and saved["flip_tta"] is False
    # 512 of the 1,437 training digits in batches of 32: 16 steps.
    assert int(state.step) == 16
    assert train.evaluate(workdir)["step"] == 16


def test_steps_per_call_default_and_the_pmap_error():
    from types import SimpleNamespace

    from jcnn.train import loop

    def run(k, trivial, parallel="shard_map"):
        config = SimpleNamespace(get=lambda key: k, parallel=parallel)
        return SimpleNamespace(config=config, plan=SimpleNamespace(trivial=trivial))

    assert loop.steps_per_call(run(None, True)) == 4
    assert loop.steps_per_call(run(None, False)) == 1
    assert loop.steps_per_call(run(1, False)) == 1
    assert loop.steps_per_call(run(2, False, "jit")) == 2
    assert loop.steps_per_call(run(2, False, "shard_map")) == 2
    assert loop.steps_per_call(run(1, False, "pmap")) == 1
    with pytest.raises(ValueError, match=r"`steps_per_call`=2 runs several steps in one call"):
        loop.steps_per_call(run(2, False, "pmap"))
