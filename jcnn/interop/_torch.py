"""PyTorch weights in: a torchvision-style ``state_dict`` as jcnn variables.

Nothing here imports torch: a state_dict may hold torch tensors (converted
with ``.detach().cpu().numpy()``, duck-typed) or NumPy arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jcnn import models
from jcnn.functional._checks import check_int
from jcnn.models.vgg import CONFIGS as VGG_STAGES

FN = "from_torch_state_dict"
SUPPORTED = ("lenet5", "resnet18", "resnet34", "resnet50", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn")

# The input the expected variable tree is traced on (no compile): every
# supported model takes 32x32, and neither the ResNets (global pool) nor VGG
# (adaptive pool to 7x7) nor LeNet-5 (32x32 field) change parameter shapes with it.
_TRACE_HW = 32
# (jcnn leaf name, collection) -> torch parameter/buffer name, per kind of module.
_NORM_LEAVES = {
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}
_LAYER_LEAVES = {("params", "kernel"): "weight", ("params", "bias"): "bias"}


def _resnet_module(path: tuple[str, ...]) -> str:
    """jcnn module path -> torchvision module name (``layer2_0/downsample_conv`` ->
    ``layer2.0.downsample.0``)."""
    names = []
    for part in path:
        if part.startswith("layer") and "_" in part:
            stage, _, block = part.partition("_")
            names.append(f"{stage}.{block}")
        elif part.startswith("norm"):
            names.append("bn" + part[len("norm") :])
        elif part == "downsample_conv":
            names.append("downsample.0")
        elif part == "downsample_norm":
            names.append("downsample.1")
        else:
            names.append(part)
    return ".".join(names)


def _vgg_modules(model_name: str) -> dict[str, str]:
    """jcnn module name -> torchvision ``features.i`` / ``classifier.i``.

    torchvision numbers every layer of ``features`` (conv, [BatchNorm,] ReLU,
    and a max pool closing each stage) and of ``classifier`` (Linear, ReLU,
    Dropout, Linear, ReLU, Dropout, Linear).
    """
    depth = int(model_name[3:5])
    bn = model_name.endswith("_bn")
    names, index, layer = {}, 0, 0
    for widths in VGG_STAGES[depth]:
        for _ in widths:
            layer += 1
            names[f"conv{layer}"] = f"features.{index}"
            if bn:
                names[f"norm{layer}"] = f"features.{index + 1}"
            index += 3 if bn else 2
        index += 1  # the stage's max pool
    names.update({"fc1": "classifier.0", "fc2": "classifier.3", "fc3": "classifier.6"})
    return names


def _torch_module(model_name: str, path: tuple[str, ...]) -> str:
    if model_name.startswith("resnet"):
        return _resnet_module(path)
    if model_name.startswith("vgg"):
        return _vgg_modules(model_name)[path[0]]
    return ".".join(path)  # lenet5: conv1, conv2, fc1, fc2, fc3


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()  # NumPy has no bfloat16
        value = value.numpy()
    return np.asarray(value)


@dataclasses.dataclass
class _Slot:
    """One jcnn leaf: where it goes, the torch key it comes from, and how."""

    collection: str
    path: tuple[str, ...]
    leaf: str
    shape: tuple[int, ...]
    torch_key: str
    kind: str  # "conv", "dense", "dense_flat" or "copy"
    grid: tuple[int, int, int] | None = None  # (H, W, C) flattened into a "dense_flat"

    @property
    def torch_shape(self) -> tuple[int, ...]:
        if self.kind == "conv":  # HWIO -> OIHW
            h, w, i, o = self.shape
            return (o, i, h, w)
        if self.kind in ("dense", "dense_flat"):  # (in, out) -> (out, in)
            return self.shape[::-1]
        return self.shape

    def convert(self, value: np.ndarray) -> np.ndarray:
        if self.kind == "conv":
            return value.transpose(2, 3, 1, 0)
        if self.kind == "dense":
            return value.T
        if self.kind == "dense_flat":
            # torch flattens (C, H, W), jcnn (H, W, C): reorder the input rows.
            h, w, c = self.grid
            out = value.shape[0]
            return value.reshape(out, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, out)
        return value


def _slots(model_name: str, num_classes: int, in_channels: int) -> list[_Slot]:
    model = models.create(model_name, num_classes=num_classes)
    x = jax.ShapeDtypeStruct((1, _TRACE_HW, _TRACE_HW, in_channels), jnp.float32)
    tree = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)
    slots = []
    for key_path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        collection, *path, name = (k.key for k in key_path)
        path = tuple(path)
        shape = tuple(leaf.shape)
        module = path[-1]
        if module.startswith(("norm", "downsample_norm")):
            torch_leaf = _NORM_LEAVES[(collection, name)]
            kind = "copy"
        else:
            torch_leaf = _LAYER_LEAVES[(collection, name)]
            kind = {4: "conv", 2: "dense"}.get(len(shape), "copy")
        if kind == "dense" and module == "fc1" and not model_name.startswith("resnet"):
            kind = "dense_flat"  # VGG's and LeNet's first dense layer reads the flattened map
        key = f"{_torch_module(model_name, path)}.{torch_leaf}"
        slots.append(_Slot(collection, path, name, shape, key, kind))
    for s in slots:
        if s.kind == "dense_flat":
            # The flatten follows the last conv (conv1 < conv2 < ... by number).
            convs = [c for c in slots if c.kind == "conv"]
            channels = max(convs, key=lambda c: int(c.path[-1][len("conv") :])).shape[3]
            # VGG: 7x7 (adaptive pool); LeNet-5: 5x5 on the traced 32x32 field.
            side = round((s.shape[0] // channels) ** 0.5)
            s.grid = (side, side, channels)
    return slots


def _first_conv_key(model_name: str) -> str:
    return "features.0.weight" if model_name.startswith("vgg") else "conv1.weight"


def _listing(title: str, items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"{len(items)} {title}{'s' if len(items) != 1 else ''}: {shown}{more}"


def _check_model(model_name, num_classes) -> int:
    if model_name not in SUPPORTED:
        raise ValueError(
            f"{FN}: no PyTorch layout for model {model_name!r}; supported: {', '.join(SUPPORTED)}."
        )
    return check_int(num_classes, "num_classes", FN)


def torch_state_dict_shapes(
    model_name: str, *, num_classes: int, in_channels: int | None = None
) -> dict[str, tuple[int, ...]]:
    """The keys `from_torch_state_dict` expects for `model_name` and their torch shapes.

    ``num_batches_tracked`` buffers are not listed (they are accepted and
    ignored). `in_channels` defaults to 3 (1 for ``lenet5``). Traced with
    `jax.eval_shape`: nothing is computed.
    """
    num_classes = _check_model(model_name, num_classes)
    if in_channels is None:
        in_channels = 1 if model_name == "lenet5" else 3
    in_channels = check_int(in_channels, "in_channels", "torch_state_dict_shapes")
    return {s.torch_key: s.torch_shape for s in _slots(model_name, num_classes, in_channels)}


def from_torch_state_dict(model_name: str, state_dict: Mapping, *, num_classes: int) -> dict:
    r"""jcnn variables of `model_name` from a PyTorch ``state_dict``.

    `state_dict` maps torchvision's names to tensors or NumPy arrays: for
    ``resnet18/34/50`` and ``vgg11/16`` (and ``vgg11_bn/16_bn``) exactly the
    keys of ``torchvision.models.<name>(num_classes=num_classes).state_dict()``.
    LeNet-5 has no torchvision model; the expected keys are those of::

        class LeNet5(torch.nn.Module):          # input 1x32x32, or 28x28 with padding=2
            conv1 = Conv2d(in_channels, 6, 5)   # conv1.weight (6, C, 5, 5), conv1.bias (6,)
            conv2 = Conv2d(6, 16, 5)            # conv2.weight (16, 6, 5, 5), conv2.bias
            fc1 = Linear(16 * 5 * 5, 120)       # fc1.weight (120, 400) on the NCHW flatten
            fc2 = Linear(120, 84)               # fc2.weight, fc2.bias
            fc3 = Linear(84, num_classes)       # fc3.weight, fc3.bias
            # tanh after conv1, conv2, fc1, fc2; 2x2/2 average pool after each conv

    Conversions: conv weights OIHW -> HWIO (:math:`k[u,v,c,o] = W[o,c,u,v]`);
    linear weights transposed (torch computes :math:`xW^T`); the first linear
    layer after the convs (VGG's ``classifier.0``, LeNet's ``fc1``) also has
    its input rows reordered, because torch flattens the (C, H, W) map and
    jcnn the (H, W, C) one: :math:`K[(hW + w)C + c, o] = W[o, (cH + h)W + w]`.
    BatchNorm ``weight``/``bias`` become ``scale``/``bias`` and
    ``running_mean``/``running_var`` the ``batch_stats`` ``mean``/``var``
    (eval mode normalises with them in both; torch's running variance is an
    estimate of the unbiased batch variance, used as it is);
    ``num_batches_tracked`` is ignored. The input channel count is read from
    the first conv's weight. Paddings agree: jcnn's ResNets and VGGs pad like
    torch (``"SAME_SYMMETRIC"``, ``k // 2`` on both sides), so stride-2 layers
    see the same pixels, and BatchNorm's eps is 1e-5 in both.

    The result, ``{"params": ..., "batch_stats": ...}`` (no ``batch_stats``
    without BatchNorm), goes into ``models.create(model_name,
    num_classes=num_classes).apply(variables, x_nhwc, train=False)``, which
    gives the torch model's eval-mode logits on ``x_nchw.transpose(0, 2, 3, 1)``.

    Raises:
      ValueError: an unsupported `model_name`, or a `state_dict` with missing,
        unexpected or mis-shaped keys (all listed in one message).
      TypeError: `state_dict` is not a mapping.
    """
    num_classes = _check_model(model_name, num_classes)
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{FN}: `state_dict` must be a mapping of names to tensors or arrays, "
            f"got {type(state_dict).__name__}."
        )
    arrays = {str(k): _to_numpy(v) for k, v in state_dict.items()}
    first = arrays.get(_first_conv_key(model_name))
    in_channels = first.shape[1] if first is not None and first.ndim == 4 else None
    if in_channels is None or in_channels < 1:
        in_channels = 1 if model_name == "lenet5" else 3
    slots = _slots(model_name, num_classes, int(in_channels))

    expected = {s.torch_key for s in slots}
    norm_modules = {s.torch_key.rsplit(".", 1)[0] for s in slots if s.leaf == "mean"}
    ignored = {f"{m}.num_batches_tracked" for m in norm_modules}
    missing = [s.torch_key for s in slots if s.torch_key not in arrays]
    unexpected = sorted(k for k in arrays if k not in expected and k not in ignored)
    wrong = [
        f"{s.torch_key} {arrays[s.torch_key].shape} (expected {s.torch_shape})"
        for s in slots
        if s.torch_key in arrays and arrays[s.torch_key].shape != s.torch_shape
    ]
    problems = [
        _listing(title, items)
        for title, items in (
            ("missing key", missing),
            ("wrong shape", wrong),
            ("unexpected key", unexpected),
        )
        if items
    ]
    if problems:
        raise ValueError(
            f"{FN}: the state_dict does not fit {model_name} (num_classes={num_classes}, "
            f"in_channels={in_channels}): " + "; ".join(problems) + "."
        )

    variables: dict = {}
    for s in slots:
        value = s.convert(arrays[s.torch_key].astype(np.float32, copy=False))
        node = variables.setdefault(s.collection, {})
        for part in s.path:
            node = node.setdefault(part, {})
        node[s.leaf] = jnp.asarray(value)
    return variables
