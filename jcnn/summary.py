"""Per-layer table of a model: output shape, parameters, FLOPs, receptive field.

`summarize(model, (H, W, C))` traces ``model.init`` on one ``(1, H, W, C)``
image with `jax.eval_shape` (nothing is allocated or compiled, so ResNet-50
at 224x224 takes a fraction of a second) while a Flax method interceptor
records every *leaf* layer call (a module that calls no other module).

Conventions:

* **FLOPs** are 2 per multiply-add of the layers that have a kernel: a conv
  costs ``2 kh kw (C_in / groups) C_out H_out W_out``, a dense layer
  ``2 in out`` (per position of any leading non-batch axes). Bias additions,
  normalisations, activations, pooling, dropout and residual additions are
  not counted: that is the convention of the published figures (ResNet-50
  4.1 G multiply-adds at 224x224, i.e. 8.2 GFLOPs here).
* **Receptive field and jump** per spatial axis, along the main path, with
  the arithmetic of `jcnn.functional.receptive_field` (``r += d (k - 1) j``,
  ``j *= s``). Each layer extends the chain of the array it reads. An input
  that no layer produced (a residual sum, a reshaped or padded array) takes
  the chain of the recorded array of the same height and width with the
  largest receptive field, which for a residual block is the branch, not the
  shortcut: the sum of two paths sees what the wider one sees. An input of a
  height and width no recorded array has (made by a function between layers,
  such as ``jcnn.functional.max_pool2d``) has an unknown field: None from
  there on. Convs (``jcnn.nn.Conv2d`` and ``flax.linen.Conv``) and
  fixed-window pools extend the chain; norms, activations, regularisers and
  dense layers (jcnn's and Flax's) keep it; adaptive pooling with a whole
  number of input pixels per bin is a pool with that window, otherwise (and
  after global pooling or flatten) the output has no spatial grid and the
  field is None. Any other layer's window is not known here: None.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import linen as nn

import jcnn.functional as F
from jcnn import nn as jnn
from jcnn.functional._checks import _is_int, pair
from jcnn.nn._types import takes_train

Chain = tuple[tuple[int, int, int], ...]  # (kernel, stride, dilation) per layer, one axis


@dataclasses.dataclass(frozen=True)
class Row:
    """One leaf layer call.

    Attributes:
      name: the module path, ``"layer1_0/conv1"``.
      layer: the module's class name.
      output_shape: shape of its output (batch 1 included).
      params: number of parameters it owns (0 for a repeated call).
      flops: forward FLOPs, 2 per multiply-add (see the module docstring).
      receptive_field: ``(rh, rw)`` in input pixels, or None without a grid.
      jump: ``(jh, jw)``, input pixels between adjacent outputs, or None.
    """

    name: str
    layer: str
    output_shape: tuple[int, ...]
    params: int
    flops: int
    receptive_field: tuple[int, int] | None
    jump: tuple[int, int] | None


@dataclasses.dataclass(frozen=True)
class Summary:
    """`rows` in call order and the totals; ``str(summary)`` is the table.

    `total_params` counts the ``params`` collection of the initialised
    variables, `total_state` the other collections (BatchNorm statistics).
    """

    input_shape: tuple[int, int, int]
    rows: tuple[Row, ...]
    total_params: int
    total_state: int
    total_flops: int

    def __str__(self) -> str:
        header = ("layer", "type", "output shape", "params", "FLOPs", "RF", "jump")
        lines = [
            (
                r.name,
                r.layer,
                "x".join(map(str, r.output_shape)),
                f"{r.params:,}",
                f"{r.flops:,}",
                _pair_str(r.receptive_field),
                _pair_str(r.jump),
            )
            for r in self.rows
        ]
        widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]
        right = (False, False, False, True, True, True, True)

        def fmt(line):
            cells = (
                c.rjust(w) if r else c.ljust(w) for c, w, r in zip(line, widths, right, strict=True)
            )
            return "  ".join(cells).rstrip()

        rule = "-" * len(fmt(header))
        h, w, c = self.input_shape
        return "\n".join(
            [
                f"input {h}x{w}x{c} (batch 1)",
                fmt(header),
                rule,
                *map(fmt, lines),
                rule,
                f"total params: {self.total_params:,}   state (batch stats): {self.total_state:,}",
                f"total FLOPs: {self.total_flops:,} ({self.total_flops / 1e9:.3f} G; "
                "2 per multiply-add of conv and dense layers)",
            ]
        )


def _pair_str(value) -> str:
    if value is None:
        return "-"
    return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"


def _size(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _subtree(variables: dict, path: tuple[str, ...]):
    node = variables
    for name in path:
        if not isinstance(node, dict) or name not in node:
            return {}
        node = node[name]
    return node


def _flops(params: dict, out) -> int:
    """2 x multiply-adds of a layer with a kernel: conv (HWIO) or dense (in, out)."""
    kernel = params.get("kernel") if isinstance(params, dict) else None
    if kernel is None or not hasattr(out, "shape"):
        return 0
    positions = math.prod(out.shape[1:-1])  # output pixels, or leading axes of a dense
    return 2 * math.prod(kernel.shape) * positions


def _windows(module, x, out):
    """Per-axis ``(kernel, stride, dilation)`` of the layer, ``()`` for no change, or
    None when the output has no spatial grid."""
    if not (hasattr(out, "ndim") and out.ndim == 4 and getattr(x, "ndim", 0) == 4):
        return None
    if isinstance(module, jnn.Conv2d | jnn.DropConnectConv2d):
        k = pair(module.kernel_size, "kernel_size", "summarize")
        s = pair(module.stride, "stride", "summarize")
        d = pair(module.dilation, "dilation", "summarize")
        return tuple(zip(k, s, d, strict=True))
    if isinstance(module, jnn.MaxPool2d | jnn.AvgPool2d):
        k = pair(module.window, "window", "summarize")
        s = k if module.stride is None else pair(module.stride, "stride", "summarize")
        return tuple((ki, si, 1) for ki, si in zip(k, s, strict=True))
    if isinstance(module, nn.Conv):
        if module.input_dilation not in (None, 1, (1, 1)):
            return None
        k = pair(tuple(module.kernel_size), "kernel_size", "summarize")
        s = pair(1 if module.strides is None else module.strides, "strides", "summarize")
        d = pair(module.kernel_dilation or 1, "kernel_dilation", "summarize")
        return tuple(zip(k, s, d, strict=True))
    if isinstance(module, jnn.AdaptiveAvgPool2d | jnn.AdaptiveMaxPool2d):
        sizes = tuple(zip(x.shape[1:3], out.shape[1:3], strict=True))
        if all(n % o == 0 for n, o in sizes):
            return tuple((n // o, n // o, 1) for n, o in sizes)
        return None
    if isinstance(module, _POINTWISE) and x.shape[1:3] == out.shape[1:3]:
        return ()
    return None  # a layer whose window is not known here: no field claimed


# Leaf layers without a spatial window: per position, per channel or per map.
_POINTWISE = (
    jnn.Dense,
    jnn.DropConnectDense,
    jnn.BatchNorm,
    jnn.GroupNorm,
    jnn.InstanceNorm,
    jnn.LayerNorm,
    jnn.Dropout,
    jnn.DropBlock,
    jnn.Disout,
    jnn.ELU,
    jnn.SELU,
    jnn.LeakyReLU,
    jnn.Maxout,
    jnn.PReLU,
    jnn.ReLU,
    jnn.ReLU6,
    jnn.Sigmoid,
    jnn.Swish,
    jnn.Tanh,
    nn.Dense,
    nn.BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.Dropout,
)


class _Recorder:
    """A `flax.linen` method interceptor that records the leaf layer calls."""

    def __init__(self):
        self.calls = []  # (module, path, output, chains)
        self.chains = {}  # id(array) -> (array, chains); the array is kept alive
        self.stack = []

    def seed(self, x):
        self.chains[id(x)] = (x, ((), ()))

    def _input_chains(self, x):
        if id(x) in self.chains:
            return self.chains[id(x)][1]
        if getattr(x, "ndim", 0) != 4:
            return None
        best, best_rf = None, -1  # no array of its size: made by an op not recorded
        for array, chains in self.chains.values():
            if chains is None or array.ndim != 4 or array.shape[1:3] != x.shape[1:3]:
                continue
            rf = sum(_field(c).size for c in chains)
            if rf > best_rf:
                best, best_rf = chains, rf
        return best

    def __call__(self, next_fun, args, kwargs, context):
        if context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        if self.stack:
            self.stack[-1][0] = True
        self.stack.append([False])
        try:
            out = next_fun(*args, **kwargs)
        finally:
            has_children = self.stack.pop()[0]
        if not has_children:
            x = args[0] if args else None
            chains = self._input_chains(x)
            windows = None if chains is None else _windows(context.module, x, out)
            if windows is None:
                chains = None
            elif windows:
                chains = tuple((*c, w) for c, w in zip(chains, windows, strict=True))
            if hasattr(out, "shape"):
                self.chains[id(out)] = (out, chains)
            self.calls.append((context.module, tuple(context.module.path), out, chains))
        return out


def _field(chain: Chain) -> F.ReceptiveField:
    return F.receptive_field(chain)[-1] if chain else F.ReceptiveField(1, 1)


def summarize(model: nn.Module, input_shape) -> Summary:
    """Traces `model` on a ``(1, *input_shape)`` float32 input; see the module docstring.

    Args:
      model: a Flax module called as ``model(x)`` or ``model(x, train=False)``.
      input_shape: ``(H, W, C)`` of one image.

    Returns:
      A `Summary`: one `Row` per leaf layer call, the parameter and state
      counts of the initialised variables and the total FLOPs.
    """
    if (
        isinstance(input_shape, str)
        or not hasattr(input_shape, "__len__")
        or len(input_shape) != 3
        or not all(_is_int(v) and v >= 1 for v in input_shape)
    ):
        raise ValueError(
            f"summarize: `input_shape` must be (H, W, C), three ints >= 1, got {input_shape!r}."
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"summarize: `model` must be a flax.linen.Module, got {model!r}.")
    input_shape = tuple(int(v) for v in input_shape)
    recorder = _Recorder()
    kwargs = {"train": False} if takes_train(model) else {}

    def init(x):
        recorder.seed(x)
        key = jax.random.key(0)
        with nn.intercept_methods(recorder):
            return model.init({"params": key, "dropout": key}, x, **kwargs)

    variables = jax.eval_shape(init, jax.ShapeDtypeStruct((1, *input_shape), jnp.float32))
    params = variables.get("params", {})
    rows, seen = [], set()
    for module, path, out, chains in recorder.calls:
        own = _subtree(params, path) if path not in seen else {}
        seen.add(path)
        fields = None if chains is None else [_field(c) for c in chains]
        rows.append(
            Row(
                name="/".join(path) or type(module).__name__,
                layer=type(module).__name__,
                output_shape=tuple(getattr(out, "shape", ())),
                params=_size(own),
                flops=_flops(_subtree(params, path), out),
                receptive_field=None if fields is None else tuple(f.size for f in fields),
                jump=None if fields is None else tuple(f.jump for f in fields),
            )
        )
    return Summary(
        input_shape=input_shape,
        rows=tuple(rows),
        total_params=_size(params),
        total_state=_size({k: v for k, v in variables.items() if k != "params"}),
        total_flops=sum(r.flops for r in rows),
    )
