"""Read and run a model exported by ``jcnn export``, with nothing but jax and numpy.

This file imports nothing of jcnn: copy it next to a ``model.jax`` and run
``python _loader.py model.jax image.png`` on any machine with jax (and
matplotlib to read images). It uses only the stable `jax.export` API
(``deserialize``, ``Exported.call``), unchanged from jax 0.10 to 0.11: a file
loads in the jax that wrote it and in later ones within jax's compatibility
window (jax >= 0.11.1 refuses files older than that window, about six months:
export again). Checked with jax 0.10.2 here; jax 0.11 needs Python >= 3.12.

File format (little-endian, no pickle)::

    b"JCNNXPT1"                 8 bytes, magic and format version
    header length, header       uint64, UTF-8 JSON (see `write_artifact`)
    payload length, payload     uint64, `jax.export.Exported.serialize()` bytes

The exported function maps a float32 ``(b, H, W, C)`` batch, already
normalised as ``(pixels / 255 - mean) / std``, to float32 ``(b, classes)``
logits, for any batch size ``b`` (a symbolic dimension).
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

MAGIC = b"JCNNXPT1"
_U64 = struct.Struct("<Q")
# ITU-R BT.601 luma, as Pillow's "L" mode: the weights sum to 1, so grey RGB stays grey.
LUMA = (0.299, 0.587, 0.114)


def write_artifact(path, header: dict, payload: bytes) -> Path:
    """Writes `header` (JSON-serialisable) and `payload` in the format above."""
    text = json.dumps(header, indent=1).encode()
    path = Path(path)
    with path.open("wb") as f:
        f.write(MAGIC)
        f.write(_U64.pack(len(text)))
        f.write(text)
        f.write(_U64.pack(len(payload)))
        f.write(payload)
    return path


def read_artifact(path) -> tuple[dict, bytes]:
    """``(header, payload)`` of an exported file; ValueError if it is not one."""
    data = Path(path).read_bytes()
    fn = "load_exported"
    if data[: len(MAGIC)] != MAGIC:
        raise ValueError(
            f"{fn}: {str(path)!r} is not a jcnn exported model (expected the magic bytes "
            f"{MAGIC!r}, got {data[: len(MAGIC)]!r}); write one with `jcnn export`."
        )
    at = len(MAGIC)
    parts = []
    for what in ("header", "payload"):
        if len(data) < at + _U64.size:
            raise ValueError(f"{fn}: {str(path)!r} is truncated before the {what} length.")
        (size,) = _U64.unpack_from(data, at)
        at += _U64.size
        if len(data) < at + size:
            raise ValueError(
                f"{fn}: {str(path)!r} is truncated: the {what} needs {size} bytes, "
                f"{len(data) - at} remain."
            )
        parts.append(data[at : at + size])
        at += size
    return json.loads(parts[0].decode()), parts[1]


class ExportedModel:
    """An exported jcnn model: `logits` of normalised batches, `predict` of raw images.

    Attributes (from the header): ``input_shape`` ``(H, W, C)``, ``mean`` and
    ``std`` (in [0, 1] pixel units, scalars or per channel), ``class_names``,
    and ``header`` itself (model, dataset, step, params_sha256, ...).
    """

    def __init__(self, header: dict, payload: bytes):
        import jax
        from jax import export

        self.header = header
        self.input_shape = tuple(int(v) for v in header["input_shape"])
        self.mean = np.asarray(header["mean"], np.float32)
        self.std = np.asarray(header["std"], np.float32)
        self.class_names = tuple(header["class_names"])
        self.exported = export.deserialize(bytearray(payload))
        self._call = jax.jit(self.exported.call)

    def logits(self, x) -> np.ndarray:
        """Logits ``(N, classes)`` of a normalised float32 batch ``(N, H, W, C)``."""
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or x.shape[1:] != self.input_shape or x.shape[0] < 1:
            raise ValueError(
                f"ExportedModel.logits: `x` must be (N, {', '.join(map(str, self.input_shape))}) "
                f"with N >= 1, got shape {x.shape}."
            )
        return np.asarray(self._call(x))

    def preprocess(self, image) -> np.ndarray:
        """One image ``(h, w)``, ``(h, w, 1|3|4)`` -> normalised ``(H, W, C)`` float32.

        Integer pixels are scaled by their dtype's maximum, floats taken as
        [0, 1]; alpha is dropped; RGB becomes grey by BT.601 luma (`LUMA`)
        when the model takes one channel, grey is repeated when it takes
        three; a different size is resized with `jax.image.resize`
        (``"linear"``, antialiased: a triangle filter widened by the scale
        factor when shrinking, so it averages like an area filter); then
        ``(x - mean) / std``.
        """
        img = np.asarray(image)
        if np.issubdtype(img.dtype, np.integer):
            img = img.astype(np.float32) / np.iinfo(img.dtype).max
        img = img.astype(np.float32)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
            raise ValueError(
                f"ExportedModel.preprocess: an image must be (h, w) or (h, w, 1|2|3|4), "
                f"got shape {img.shape}."
            )
        if img.shape[2] in (2, 4):  # grey+alpha, RGBA
            img = img[:, :, :-1]
        height, width, channels = self.input_shape
        if channels == 1 and img.shape[2] == 3:
            img = img @ np.asarray(LUMA, np.float32)[:, None]
        elif channels == 3 and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        elif img.shape[2] != channels:
            raise ValueError(
                f"ExportedModel.preprocess: the model takes {channels} channels; an image "
                f"with {img.shape[2]} cannot be converted."
            )
        if img.shape[:2] != (height, width):
            import jax

            img = np.asarray(
                jax.image.resize(img, (height, width, channels), "linear", antialias=True)
            )
        return (img - self.mean) / self.std

    def predict(self, images, top_k: int = 3) -> list[list[tuple[int, str, float]]]:
        """For each image, the `top_k` ``(class index, class name, probability)``."""
        x = np.stack([self.preprocess(img) for img in images])
        logits = self.logits(x).astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        k = max(1, min(int(top_k), probs.shape[1]))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            [(int(i), self.class_names[i], float(p[i])) for i in row]
            for row, p in zip(order, probs, strict=True)
        ]


def load_exported(path) -> ExportedModel:
    """The `ExportedModel` in file `path` (written by ``jcnn export``)."""
    return ExportedModel(*read_artifact(path))


def read_image(path) -> np.ndarray:
    """An image file (PNG; JPEG and others through Pillow) as a NumPy array."""
    import matplotlib.image

    try:
        return matplotlib.image.imread(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"read_image: no image file {str(path)!r}.") from err
    except (OSError, ValueError, SyntaxError) as err:  # Pillow's and matplotlib's "not an image"
        raise ValueError(f"read_image: cannot read {str(path)!r} as an image: {err}") from err


def format_predictions(path, top: list[tuple[int, str, float]]) -> str:
    lines = [str(path)]
    lines += [f"  {r}. {name:<16} {p:8.4f}" for r, (_, name, p) in enumerate(top, start=1)]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python _loader.py MODEL IMAGE...``: the top-3 classes of each image."""
    if len(argv) < 2:
        print("usage: python _loader.py MODEL IMAGE...", file=sys.stderr)
        return 2
    model = load_exported(argv[0])
    images = [read_image(p) for p in argv[1:]]
    for path, top in zip(argv[1:], model.predict(images), strict=True):
        print(format_predictions(path, top))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
