"""Random regularisers on activations: `Dropout`, `DropBlock`, `Disout`.

Each draws its key from the ``"dropout"`` RNG collection
(``rngs={"dropout": key}`` in `apply`) and is the identity when
``train=False`` or ``rate == 0``, drawing nothing. The arguments (rate, block
size, ``alpha``) and the input's rank are checked in both modes, so a bad
setting fails in evaluation too.
"""

from __future__ import annotations

import flax.errors
from flax import linen as nn

import jcnn.functional as F
from jcnn.functional._checks import check_int, check_ndim, check_rate
from jcnn.functional._regularization import check_alpha


def active(module, train: bool, fn: str) -> bool:
    """Checks `rate` and `train`; whether the random layer draws this call."""
    rate = check_rate(module.rate, fn)
    if not isinstance(train, bool):
        raise TypeError(
            f"{fn}: `train` must be a Python bool (True while training), got {train!r} "
            f"({type(train).__name__})."
        )
    return train and rate > 0.0


class MissingDropoutKeyError(flax.errors.InvalidRngError, ValueError):
    """A random layer ran with ``train=True`` but `apply` got no ``"dropout"`` key.

    A ValueError like every jcnn argument error, and still the InvalidRngError
    that Flax raises for a missing stream, for code that catches that.
    """


def dropout_key(module, fn: str):
    """A key from the ``"dropout"`` collection, or a clear error when `apply` gave none."""
    # Flax falls back to the "params" stream (so `init` needs no "dropout" key).
    if not (module.has_rng("dropout") or module.has_rng("params")):
        raise MissingDropoutKeyError(
            f'{fn} needs PRNG for "dropout": train=True with rate={module.rate} draws a '
            "random mask; pass rngs={'dropout': key} to apply (or call with train=False). "
            f"({_FLAX_RNG_ERRORS})"
        )
    return module.make_rng("dropout")


_FLAX_RNG_ERRORS = (
    "https://flax.readthedocs.io/en/latest/api_reference/flax.errors.html"
    "#flax.errors.InvalidRngError"
)


class Dropout(nn.Module):
    """Inverted dropout of each element with probability `rate`; see `jcnn.functional.dropout`.

    References:
      Srivastava et al., *Dropout*, JMLR 2014.
    """

    rate: float = 0.5

    @nn.compact
    def __call__(self, x, *, train: bool):
        if not active(self, train, "Dropout"):
            return x
        return F.dropout(dropout_key(self, "Dropout"), x, self.rate)


class DropBlock(nn.Module):
    """Drops ``block_size`` squares of NHWC maps; see `jcnn.functional.dropblock`.

    Default `block_size` 7, the paper's best on ImageNet ResNet-50 (it is
    clamped to the map size).

    References:
      Ghiasi, Lin & Le, *DropBlock*, NeurIPS 2018.
    """

    rate: float = 0.1
    block_size: int = 7
    per_channel: bool = False

    @nn.compact
    def __call__(self, x, *, train: bool):
        block_size = check_int(self.block_size, "block_size", "DropBlock")
        check_ndim(x, 4, "x", "DropBlock", "NHWC")
        if not active(self, train, "DropBlock"):
            return x
        return F.dropblock(
            dropout_key(self, "DropBlock"),
            x,
            self.rate,
            block_size=block_size,
            per_channel=self.per_channel,
        )


class Disout(nn.Module):
    """Replaces random blocks of NHWC maps with noise; see `jcnn.functional.disout`.

    Defaults: `block_size` 6 and `alpha` 1.0, the defaults of the authors'
    code (huawei-noah/Disout); `alpha` is the noise scale in units of the
    sample's standard deviation.

    References:
      Tang et al., *Beyond Dropout: Feature Map Distortion to Regularize Deep
      Neural Networks*, AAAI 2020.
    """

    rate: float = 0.1
    block_size: int = 6
    alpha: float = 1.0

    @nn.compact
    def __call__(self, x, *, train: bool):
        block_size = check_int(self.block_size, "block_size", "Disout")
        check_alpha(self.alpha, "Disout")
        check_ndim(x, 4, "x", "Disout", "NHWC")
        if not active(self, train, "Disout"):
            return x
        return F.disout(
            dropout_key(self, "Disout"), x, self.rate, block_size=block_size, alpha=self.alpha
        )
