"""Every ``experiments/<name>/run.py`` runs end to end in smoke mode (so none can rot).

Each script is imported from its path and its ``main(["--smoke", "--out",
tmp])`` runs in this process, so the experiments share one JAX runtime and
the compiled steps of `experiments/_common.py`. The check is the contract of
the experiments' README: the run writes ``results.json`` (with the keys
`_common.write_results` documents and one row per arm), ``results.md`` (a
markdown table) and at least one PNG.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SCRIPTS = sorted(EXPERIMENTS.glob("*/run.py"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(script: Path):
    name = f"experiment_{script.parent.name}"
    spec = importlib.util.spec_from_file_location(name, script)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses (Flax modules) defined in a script
    # look their module up in sys.modules to resolve string annotations.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_experiments_are_found():
    # The glob must see the studies this suite exists for (a moved folder would
    # otherwise make the parametrised test below silently empty).
    names = {s.parent.name for s in SCRIPTS}
    assert {"activations", "initialization", "selu"} <= names, names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.parent.name)
def test_smoke_run_writes_table_and_plot(script, tmp_path):
    module = _load(script)
    assert callable(getattr(module, "main", None)), f"{script} must define main(argv=None)"
    module.main(["--smoke", "--out", str(tmp_path)])

    record = json.loads((tmp_path / "results.json").read_text())
    assert {"experiment", "date", "machine", "wall_s", "meta", "rows"} <= set(record)
    assert record["experiment"] == script.parent.name
    assert record["meta"]["smoke"] is True
    assert isinstance(record["rows"], list) and record["rows"], "no rows"
    assert all(isinstance(row, dict) and row for row in record["rows"])

    table = (tmp_path / "results.md").read_text()
    assert "| --- |" in table, "results.md holds no markdown table"

    pngs = sorted(tmp_path.glob("*.png"))
    assert pngs, "no PNG written"
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC, f"{png.name} is not a PNG"
