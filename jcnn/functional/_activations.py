r"""Element-wise activations and maxout.

Every activation is a pure function of its input that works under `jit`,
`vmap` and `grad`. Where the function has a kink, the derivative chosen there
is stated in its docstring (the one PyTorch and `jax.nn` use, so that
gradients agree with both):

==============  ============================  ===========================
function        derivative                    at the kink
==============  ============================  ===========================
relu            1 (x > 0), 0 (x < 0)          relu'(0) = 0
relu6           1 on (0, 6), 0 outside        0 at x = 0 and x = 6
leaky_relu      1 (x > 0), a (x < 0)          a at x = 0
prelu           1 (x > 0), a_c (x < 0)        a_c at x = 0
elu             1 (x > 0), alpha e^x (x < 0)  alpha at x = 0
maxout          1 for the arg-max piece       ties share the gradient equally
==============  ============================  ===========================

Functions whose value is not an integer for integer input (sigmoid, tanh,
elu, selu, leaky_relu, prelu, swish) require a floating-point `x`; relu, relu6
and maxout are exact on integers and accept any real dtype. NaN propagates
through every activation.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp

from jcnn.functional._checks import check_floating, check_int

# Klambauer et al. (2017), eq. (14): the solution of the fixed-point equations
# for (mean, variance) = (0, 1), to the digits the paper prints.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _check_real(value, name: str, fn: str) -> float:
    """A static, finite Python number (not an array, not a bool)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(
            f"{fn}: `{name}` must be a Python float, got {value!r} ({type(value).__name__})."
        )
    if not math.isfinite(value):
        raise ValueError(f"{fn}: `{name}` must be finite, got {value!r}.")
    return float(value)


def _channel_param(x, param, name: str, fn: str):
    """A float per-channel parameter of shape (), (1,) or (C,), C = x.shape[-1].

    Returns it with shape () or (C,), so that broadcasting keeps ``x.shape``.
    """
    param = jnp.asarray(param)
    check_floating(param, name, fn)
    shape = tuple(param.shape)
    if shape in ((), (1,)):
        return param.reshape(())
    channels = x.shape[-1] if x.ndim else None
    if shape != (channels,):
        expected = f"(), (1,) or ({channels},)" if channels is not None else "() or (1,)"
        raise ValueError(
            f"{fn}: `{name}` must have shape {expected} (scalar or one value per channel "
            f"of the last axis of `x` of shape {tuple(x.shape)}), got shape {shape}."
        )
    return param


def sigmoid(x):
    r"""Logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    Derivative :math:`\sigma'(x) = \sigma(x)(1 - \sigma(x)) \le 1/4`, with its
    maximum at 0; it decays like :math:`e^{-|x|}`, so it vanishes for large
    :math:`|x|` (saturation: :math:`\sigma'(\pm 20) \approx 2 \cdot 10^{-9}`).
    Evaluated as `lax.logistic`, which does not overflow for any float input
    (:math:`\sigma(\pm 10^4)` is exactly 1 and 0 in float32).
    """
    x = jnp.asarray(x)
    check_floating(x, "x", "sigmoid")
    return jax.nn.sigmoid(x)


def tanh(x):
    r"""Hyperbolic tangent :math:`\tanh(x) = (e^x - e^{-x}) / (e^x + e^{-x})`.

    Derivative :math:`1 - \tanh^2(x) \le 1` (equality at 0); it vanishes like
    :math:`4 e^{-2|x|}` for large :math:`|x|`. Zero-centred, unlike `sigmoid`:
    :math:`\tanh(x) = 2\sigma(2x) - 1`.
    """
    x = jnp.asarray(x)
    check_floating(x, "x", "tanh")
    return jnp.tanh(x)


def relu(x):
    r"""Rectified linear unit :math:`\max(x, 0)`.

    Derivative 1 for :math:`x > 0` and 0 for :math:`x < 0`; at the kink we take
    the subgradient :math:`\mathrm{relu}'(0) = 0`. Does not saturate for
    :math:`x > 0`; a unit with :math:`x < 0` on every input gets no gradient
    ("dying ReLU").

    References:
      Nair & Hinton, *Rectified Linear Units Improve Restricted Boltzmann
      Machines*, ICML 2010.
    """
    x = jnp.asarray(x)
    return jnp.where(x <= 0, jnp.zeros_like(x), x)


def relu6(x):
    r"""ReLU clipped at 6: :math:`\min(\max(x, 0), 6)`.

    Derivative 1 on the open interval :math:`(0, 6)` and 0 outside it; at
    both kinks (x = 0 and x = 6) we take the subgradient 0. Saturates (zero
    gradient) for :math:`x \ge 6` as well as :math:`x \le 0`.

    References:
      Krizhevsky, *Convolutional Deep Belief Networks on CIFAR-10*, 2010.
    """
    x = jnp.asarray(x)
    clipped_high = jnp.where(x >= 6, jnp.full_like(x, 6), x)
    return jnp.where(x <= 0, jnp.zeros_like(x), clipped_high)


def elu(x, alpha=1.0):
    r"""Exponential linear unit.

    .. math::
        \mathrm{elu}(x) = x \text{ for } x > 0, \quad
        \alpha (e^x - 1) \text{ for } x \le 0.

    Derivative 1 for :math:`x > 0` and :math:`\alpha e^x = \mathrm{elu}(x) +
    \alpha` for :math:`x \le 0`; we take :math:`\alpha` at 0 (differentiable
    there only when :math:`\alpha = 1`). Saturates to :math:`-\alpha` for
    :math:`x \to -\infty`, where the derivative vanishes like :math:`e^{x}`.
    The negative branch sees 0 in place of any :math:`x > 0`, so that a large positive
    :math:`x` never evaluates an overflowing :math:`e^x` whose infinite
    derivative would turn the masked gradient into NaN.

    Args:
      x: floating-point input.
      alpha: the saturation value for negative inputs, a Python float > 0.

    References:
      Clevert, Unterthiner & Hochreiter, *Fast and Accurate Deep Network
      Learning by Exponential Linear Units (ELUs)*, ICLR 2016.
    """
    x = jnp.asarray(x)
    check_floating(x, "x", "elu")
    alpha = _check_real(alpha, "alpha", "elu")
    if alpha <= 0:
        raise ValueError(f"elu: `alpha` must be > 0, got {alpha!r}.")
    return _elu(x, alpha)


def _elu(x, alpha: float):
    # where, not minimum: jnp.minimum splits the gradient 1/2-1/2 at x = 0.
    negative = alpha * jnp.expm1(jnp.where(x > 0, jnp.zeros_like(x), x))
    return jnp.where(x > 0, x, negative)


def selu(x):
    r"""Scaled exponential linear unit: :math:`\lambda\, \mathrm{elu}(x, \alpha)`.

    With :math:`\alpha \approx 1.6732632423543772848170429916717` and
    :math:`\lambda \approx 1.0507009873554804934193349852946` (`SELU_ALPHA`,
    `SELU_SCALE`), chosen so that for :math:`x \sim N(0, 1)` the output again
    has mean 0 and variance 1: the fixed point that makes deep SELU networks
    self-normalising. Derivative :math:`\lambda` for :math:`x > 0` (so it is
    > 1 there) and :math:`\lambda \alpha e^x` for :math:`x \le 0`, with
    :math:`\lambda \alpha` taken at 0; saturates to
    :math:`-\lambda\alpha \approx -1.7581` for :math:`x \to -\infty`.

    References:
      Klambauer, Unterthiner, Mayr & Hochreiter, *Self-Normalizing Neural
      Networks*, NeurIPS 2017.
    """
    x = jnp.asarray(x)
    check_floating(x, "x", "selu")
    return SELU_SCALE * _elu(x, SELU_ALPHA)


def leaky_relu(x, negative_slope=0.01):
    r"""Leaky ReLU: :math:`x` for :math:`x > 0`, :math:`a x` for :math:`x \le 0`.

    Derivative 1 for :math:`x > 0` and :math:`a` (`negative_slope`) for
    :math:`x < 0`; we take :math:`a` at 0, so that ``negative_slope=0`` is
    exactly `relu`, gradient included. Never saturates when :math:`a \ne 0`.

    Args:
      x: floating-point input.
      negative_slope: :math:`a`, a Python float.

    References:
      Maas, Hannun & Ng, *Rectifier Nonlinearities Improve Neural Network
      Acoustic Models*, ICML 2013.
    """
    x = jnp.asarray(x)
    check_floating(x, "x", "leaky_relu")
    a = _check_real(negative_slope, "negative_slope", "leaky_relu")
    return jnp.where(x > 0, x, a * x)


def prelu(x, slope):
    r"""Parametric ReLU: leaky ReLU with a learnt slope, one per channel.

    :math:`y_{\dots c} = x_{\dots c}` for :math:`x > 0` and
    :math:`a_c\, x_{\dots c}` for :math:`x \le 0`, where `slope` is a scalar
    (shape ``()`` or ``(1,)``, shared) or has shape ``(C,)``, broadcast over
    the last (channel) axis. Derivatives: :math:`\partial y / \partial x` is 1
    for :math:`x > 0` and :math:`a_c` for :math:`x \le 0` (:math:`a_c` at the
    kink, as in `leaky_relu`); :math:`\partial y / \partial a_c = \min(x, 0)`.

    Returns:
      ``x.shape``, in the promoted dtype of `x` and `slope`.

    References:
      He, Zhang, Ren & Sun, *Delving Deep into Rectifiers: Surpassing
      Human-Level Performance on ImageNet Classification*, ICCV 2015.
    """
    fn = "prelu"
    x = jnp.asarray(x)
    check_floating(x, "x", fn)
    slope = _channel_param(x, slope, "slope", fn)
    return jnp.where(x > 0, x, slope * x)


def swish(x, beta=1.0):
    r"""Swish (SiLU for :math:`\beta = 1`): :math:`x\, \sigma(\beta x)`.

    Derivative :math:`\sigma(\beta x) + \beta x\, \sigma(\beta x)(1 -
    \sigma(\beta x))`, smooth everywhere; for :math:`\beta > 0` it tends to 1
    for :math:`x \to +\infty` (no saturation) and to 0 for :math:`x \to
    -\infty`, where the output tends to 0 from below (minimum
    :math:`\approx -0.2785 / \beta`). :math:`\beta = 0` gives :math:`x / 2`;
    :math:`\beta \to \infty` tends to `relu`. Uses the overflow-free sigmoid,
    so :math:`|x| \sim 10^4` is exact in float32.

    Args:
      x: floating-point input.
      beta: a Python float or a float array of shape ``()``, ``(1,)`` or
        ``(C,)`` (learnable, per channel of the last axis).

    Returns:
      ``x.shape``; the dtype of `x` for a Python `beta`, else the promoted one.

    References:
      Ramachandran, Zoph & Le, *Searching for Activation Functions*, 2017;
      Elfwing, Uchibe & Doya, *Sigmoid-Weighted Linear Units*, 2018.
    """
    fn = "swish"
    x = jnp.asarray(x)
    check_floating(x, "x", fn)
    if isinstance(beta, numbers.Real) and not isinstance(beta, bool):
        beta = _check_real(beta, "beta", fn)
    else:
        beta = _channel_param(x, beta, "beta", fn)
    return x * jax.nn.sigmoid(beta * x)


def maxout(x, num_pieces):
    r"""Maxout over groups of the last (channel) axis.

    The ``C`` channels are split into ``C / k`` groups of ``k = num_pieces``
    *contiguous* channels, and each output channel is the maximum of its
    group: :math:`y_{\dots j} = \max_{0 \le i < k} x_{\dots,\, j k + i}`, i.e.
    ``x.reshape(..., C // k, k).max(-1)`` (the convention of Goodfellow et al.
    and of most implementations). ``(..., C) -> (..., C // k)``.

    The derivative is 1 for the channel that attains the maximum and 0 for
    the others; on a tie the gradient is shared equally among the tied
    channels (JAX's rule for `max`).

    Args:
      x: array of shape ``(..., C)``, any real dtype.
      num_pieces: ``k``, an int >= 1 dividing ``C``.

    References:
      Goodfellow, Warde-Farley, Mirza, Courville & Bengio, *Maxout Networks*,
      ICML 2013.
    """
    fn = "maxout"
    x = jnp.asarray(x)
    k = check_int(num_pieces, "num_pieces", fn)
    if x.ndim < 1:
        raise ValueError(f"{fn}: `x` must have a channel axis (ndim >= 1), got shape {x.shape}.")
    channels = x.shape[-1]
    if channels % k:
        raise ValueError(
            f"{fn}: `num_pieces`={k} must divide the {channels} channels of `x` "
            f"(shape {tuple(x.shape)})."
        )
    if k == 2:
        # The same function and gradient as the reshape + max below (JAX's `maximum`
        # also splits a tie's gradient equally), several times faster on XLA:CPU
        # (benchmarks/RESULTS.md): a max over a trailing axis of 2 is a slow reduction.
        return jnp.maximum(x[..., 0::2], x[..., 1::2])
    return x.reshape(*x.shape[:-1], channels // k, k).max(axis=-1)
