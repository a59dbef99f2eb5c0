"""`Sequential`: a chain of layers that hands `train` to the layers that take it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flax import linen as nn

from jcnn.nn._types import takes_train


class Sequential(nn.Module):
    """Applies `layers` in order: ``x -> layers[-1](... layers[0](x))``.

    A layer whose ``__call__`` has a ``train`` argument (`Dropout`,
    `BatchNorm`, a nested `Sequential`, ...) is called with ``train=train``;
    the others with ``x`` alone. `train` may be left out only when no layer
    takes it. Layers are named ``layers_0``, ``layers_1``, ... in the
    variables, as in `flax.linen.Sequential`.
    """

    layers: Sequence[Callable]

    @nn.compact
    def __call__(self, x, *, train: bool | None = None):
        if not isinstance(self.layers, Sequence) or not self.layers:
            raise ValueError(f"Sequential: `layers` must be a non-empty list, got {self.layers!r}.")
        for i, layer in enumerate(self.layers):
            if not callable(layer):
                raise TypeError(f"Sequential: `layers[{i}]` is not callable, got {layer!r}.")
            if takes_train(layer):
                if train is None:
                    raise ValueError(
                        f"Sequential: `layers[{i}]` ({type(layer).__name__}) behaves "
                        "differently in training and evaluation; pass train=True or "
                        "train=False."
                    )
                x = layer(x, train=train)
            else:
                x = layer(x)
        return x
