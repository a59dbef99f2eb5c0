"""Training configs as Python files: ``get("default")``, ``get("resnet20:smoke")``,
``get("path/to/config.py:arg")``.

Each config module defines ``get_config(arg: str = "") -> ConfigDict`` built
on `base` (which lists every key a run reads, with its default); the text
after ``:`` is passed as `arg` (``"smoke"`` gives a seconds-long variant).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
from pathlib import Path

import ml_collections

from jcnn.configs._base import base as base
from jcnn.configs._base import validate as validate

NAMES = ("default", "resnet20", "best")


def _load_module(name_or_path: str):
    if name_or_path.endswith(".py") or "/" in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"configs.get: config file {str(path)!r} does not exist.")
        spec = importlib.util.spec_from_file_location(f"jcnn_config_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    if name_or_path not in NAMES:
        close = difflib.get_close_matches(name_or_path, NAMES, n=2)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"configs.get: unknown config {name_or_path!r}.{hint} Known: {', '.join(NAMES)} "
            "(or a path to a .py file defining get_config)."
        )
    return importlib.import_module(f"jcnn.configs.{name_or_path}")


def get(name_or_path: str) -> ml_collections.ConfigDict:
    """The config `name_or_path` (a known name or a .py path), ``":arg"`` picking a variant."""
    if not isinstance(name_or_path, str) or not name_or_path:
        raise TypeError(f"configs.get: expected a config name or path, got {name_or_path!r}.")
    name, _, arg = name_or_path.partition(":")
    module = _load_module(name)
    if not hasattr(module, "get_config"):
        raise ValueError(f"configs.get: {name!r} defines no get_config(arg) function.")
    return validate(module.get_config(arg))


def from_json(text: str) -> ml_collections.ConfigDict:
    """A config back from the ``config.json`` a run wrote."""
    return validate(ml_collections.ConfigDict(json.loads(text)))
