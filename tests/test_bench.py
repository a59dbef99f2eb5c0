"""`jcnn bench`: one JSON line of throughput figures for a config."""

from __future__ import annotations

import json
import time

import pytest

from jcnn import bench, cli
from tests.train._smoke import needs_fashion, smoke


@needs_fashion
def test_bench_times_the_configs_own_step(capsys):
    start = time.perf_counter()
    assert cli.main(["bench", "--config=default:smoke", "--steps=2"]) == 0
    wall = time.perf_counter() - start
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model"] == "cnn_small" and result["batch"] == 32
    # fit's calls: 4 steps each on one device, so 2 steps round up to one call of 4.
    assert result["steps_per_call"] == 4 and result["steps"] == 4
    # Throughput and time of the same steps: img/s == batch / (ms per step / 1000).
    assert result["img_s"] == pytest.approx(32 / (result["ms_per_step"] / 1e3))
    assert result["first_step_s"] > 0 and result["eval_img_s"] > 0
    # The timed steps and the first call happen inside the command: a clock
    # outside it bounds their sum (a unit slip of 1000x in either would break it).
    timed = result["steps"] * result["ms_per_step"] / 1e3
    assert 0 < timed + result["first_step_s"] < wall
    assert result["peak_rss_mib"] > 100  # a process that ran JAX holds more than 100 MiB


@needs_fashion
def test_bench_rejects_bad_steps_and_tiny_datasets(capsys):
    assert cli.main(["bench", "--config=default:smoke", "--steps=0"]) == 2
    assert "--steps must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"bench: `steps` must be"):
        bench.bench(smoke(), steps=-1)
    with pytest.raises(ValueError, match=r"bench: the training set \(32 images\) holds fewer"):
        bench.bench(smoke(**{"data.train_subset": 32}), steps=1)
