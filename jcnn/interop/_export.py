"""``jcnn export``: a trained run's eval-mode forward pass as one portable file."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jcnn.interop._loader import write_artifact
from jcnn.interop._trained import Trained, load_trained

FORMAT_VERSION = 1
# StableHLO is lowered once per platform into the same module; the caller's
# backend picks its lowering. Only "cpu" is exercised by the tests here.
DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")


def _check_platforms(platforms) -> tuple[str, ...]:
    known = ("cpu", "cuda", "rocm", "tpu")
    platforms = tuple(platforms)
    bad = [p for p in platforms if p not in known]
    if not platforms or bad:
        raise ValueError(
            f"export_workdir: `platforms` must be a non-empty subset of {known}, got {platforms!r}."
        )
    return platforms


def export_trained(trained: Trained, out, *, platforms=DEFAULT_PLATFORMS) -> Path:
    """Writes `trained`'s forward pass to `out` (see `jcnn.interop._loader` for the format).

    The function exported is `Trained.logits` with the variables as
    constants: float32 ``(b, H, W, C)`` normalised images -> float32 ``(b,
    classes)`` logits, ``b`` symbolic (`jax.export.symbolic_shape`), with the
    flip test-time augmentation when the run's config uses it, so the file
    reproduces ``jcnn eval``. The header holds the preprocessing (mean, std,
    input shape), the class names and the run's provenance.
    """
    from jax import export

    from jcnn.train import params_sha256

    platforms = _check_platforms(platforms)
    h, w, c = trained.input_shape
    spec = jax.ShapeDtypeStruct(export.symbolic_shape(f"b, {h}, {w}, {c}"), jnp.float32)
    exported = export.export(jax.jit(trained.logits), platforms=platforms)(spec)
    header = {
        "format": "jcnn-export",
        "format_version": FORMAT_VERSION,
        "model": trained.config.model.name,
        "dataset": trained.dataset,
        "step": trained.step,
        "params_sha256": params_sha256(trained.variables["params"]),
        "input_shape": [h, w, c],
        "input": "float32 NHWC, (pixels / 255 - mean) / std",
        "mean": np.asarray(trained.mean).tolist(),
        "std": np.asarray(trained.std).tolist(),
        "class_names": list(trained.class_names),
        "flip_tta": trained.flip_tta,
        "platforms": list(platforms),
        "jax_version": jax.__version__,
    }
    return write_artifact(out, header, bytes(exported.serialize()))


def export_workdir(workdir, out, *, platforms=DEFAULT_PLATFORMS) -> Path:
    """Exports the latest checkpoint of the run in `workdir` to `out` (`export_trained`)."""
    return export_trained(load_trained(workdir), out, platforms=platforms)
