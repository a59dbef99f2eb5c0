"""conv2d, conv_output_size, conv_param_count and receptive_field against
float64 loop references and hand-computed numbers."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax
from jax.test_util import check_grads

import jcnn.functional as F
from tests.util import normal, tol


def reference_pads(padding, n, k, s, d):
    """Per-axis (lo, hi) from the definitions, written independently of jcnn."""
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":  # TF/XLA: out = ceil(n / s), odd pixel at the end
        out = -(-n // s)
        total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
        return total // 2, total - total // 2
    if padding == "SAME_SYMMETRIC":  # PyTorch padding = d * (k - 1) // 2
        return d * (k - 1) // 2, d * (k - 1) // 2
    return padding


def naive_conv2d(x, k, b, stride, pads, dilation, groups):
    """Float64 convolution with explicit loops over outputs, taps and groups."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    (sh, sw), (dh, dw) = stride, dilation
    (pt, pb), (pl, pr) = pads
    n, h, w, c_in = x.shape
    kh, kw, cg, c_out = k.shape
    og = c_out // groups
    xp = np.zeros((n, h + pt + pb, w + pl + pr, c_in))
    xp[:, pt : pt + h, pl : pl + w] = x
    ho = (xp.shape[1] - dh * (kh - 1) - 1) // sh + 1
    wo = (xp.shape[2] - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, ho, wo, c_out))
    for i in range(ho):
        for j in range(wo):
            for u in range(kh):
                for v in range(kw):
                    patch = xp[:, i * sh + u * dh, j * sw + v * dw, :]  # (n, c_in)
                    for g in range(groups):
                        y[:, i, j, g * og : (g + 1) * og] += (
                            patch[:, g * cg : (g + 1) * cg] @ k[u, v, :, g * og : (g + 1) * og]
                        )
    return y if b is None else y + np.asarray(b, np.float64)


# (input HxW, kernel, stride, padding, dilation, groups, C_in, C_out)
CASES = [
    ((7, 7), (3, 3), 1, "SAME", 1, 1, 3, 4),
    ((8, 7), (3, 3), 2, "SAME", 1, 1, 2, 3),  # stride does not divide H
    ((8, 8), (4, 4), 2, "SAME", 1, 1, 2, 2),  # even kernel: asymmetric SAME pad
    ((9, 6), (2, 3), 3, "SAME", 2, 1, 2, 2),  # stride > 1 and dilation > 1
    ((7, 9), (3, 3), 2, "VALID", 1, 1, 3, 2),
    ((10, 10), (3, 2), 1, "VALID", (2, 3), 1, 2, 2),
    ((7, 7), (3, 3), 2, "SAME_SYMMETRIC", 1, 1, 2, 3),
    ((8, 8), (4, 4), 1, "SAME_SYMMETRIC", 1, 1, 2, 2),  # even kernel: output shrinks by 1
    ((9, 9), (3, 3), 1, "SAME_SYMMETRIC", 2, 2, 4, 6),
    ((6, 7), (3, 3), (2, 1), 2, 1, 2, 4, 4),  # int padding, anisotropic stride
    ((6, 6), (5, 3), 1, (2, 0), 1, 1, 2, 2),  # pair padding
    ((5, 6), (3, 3), 2, ((1, 2), (0, 3)), 1, 1, 2, 3),  # explicit padding
    ((7, 7), (3, 3), 1, "SAME", 1, 4, 4, 8),  # depthwise, multiplier 2
    ((6, 6), (1, 1), 1, "VALID", 1, 3, 6, 3),  # grouped 1x1
    # Depthwise (groups == C_in) takes the shifted-slices path on CPU.
    ((9, 8), (3, 3), 2, ((1, 2), (0, 1)), 2, 3, 3, 3),  # stride, dilation, explicit pads
    ((8, 8), (4, 2), (2, 1), "SAME", 1, 2, 2, 6),  # even kernel, multiplier 3
]


def _axis_pads(padding, hw, kernel, stride, dilation):
    stride = (stride, stride) if isinstance(stride, int) else stride
    dilation = (dilation, dilation) if isinstance(dilation, int) else dilation
    if isinstance(padding, str):
        per_axis = (padding, padding)
    elif isinstance(padding, int):
        per_axis = ((padding, padding), (padding, padding))
    elif isinstance(padding[0], int):
        per_axis = ((padding[0], padding[0]), (padding[1], padding[1]))
    else:
        per_axis = padding
    pads = tuple(
        reference_pads(p, n, k, s, d)
        for p, n, k, s, d in zip(per_axis, hw, kernel, stride, dilation, strict=True)
    )
    return pads, stride, dilation


@pytest.mark.parametrize("hw,kernel,stride,padding,dilation,groups,c_in,c_out", CASES)
def test_conv2d_matches_loop_reference(hw, kernel, stride, padding, dilation, groups, c_in, c_out):
    x = normal((2, *hw, c_in))
    k = normal((*kernel, c_in // groups, c_out), seed=1)
    b = normal((c_out,), seed=2)
    conv = functools.partial(
        F.conv2d, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    y = jax.jit(conv)(x, k, b)
    pads, s, d = _axis_pads(padding, hw, kernel, stride, dilation)
    expected = naive_conv2d(x, k, b, s, pads, d, groups)
    chex.assert_shape(y, expected.shape)
    np.testing.assert_allclose(y, expected, **tol(jnp.float32))
    # The formula predicts the real output shape, per axis.
    for axis, (n, kk, ss, dd, p) in enumerate(zip(hw, kernel, s, d, pads, strict=True)):
        assert F.conv_output_size(n, kk, stride=ss, padding=p, dilation=dd) == y.shape[1 + axis]


def test_conv2d_same_matches_xla_same_string():
    """Our SAME resolution equals XLA's own "SAME" (an independent implementation)."""
    x, k = normal((1, 8, 9, 2)), normal((4, 3, 2, 3), seed=1)
    for stride in [(1, 1), (2, 3), (3, 2)]:
        ours = F.conv2d(x, k, stride=stride, padding="SAME")
        xla = lax.conv_general_dilated(
            x, k, stride, "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        np.testing.assert_allclose(ours, xla, rtol=1e-6, atol=1e-6)
        assert ours.shape[1:3] == (-(-8 // stride[0]), -(-9 // stride[1]))


def test_grouped_conv_equals_concatenated_per_group_convs():
    x, k = normal((1, 6, 6, 6)), normal((3, 3, 2, 9), seed=1)
    y = F.conv2d(x, k, groups=3)
    parts = [F.conv2d(x[..., 2 * g : 2 * g + 2], k[..., 3 * g : 3 * g + 3]) for g in range(3)]
    np.testing.assert_allclose(y, jnp.concatenate(parts, -1), rtol=1e-6, atol=1e-6)


def test_depthwise_fast_path_equals_xla_grouped_conv_with_gradients():
    """The CPU depthwise formulation (strided slices) == XLA's grouped
    convolution: values and both gradients, multipliers 1 and 2."""
    for stride, dilation, padding, mult in ((1, 1, "SAME", 1), (2, 1, "VALID", 2), (2, 2, 1, 1)):
        x, k = normal((2, 9, 9, 4)), normal((3, 3, 1, 4 * mult), seed=1)
        shape = F.conv2d(x, k, stride=stride, dilation=dilation, padding=padding, groups=4).shape

        def ours(x, k, stride=stride, dilation=dilation, padding=padding):
            y = F.conv2d(x, k, stride=stride, dilation=dilation, padding=padding, groups=4)
            return jnp.sum(jnp.sin(y))

        def xla(x, k, stride=stride, dilation=dilation, padding=padding):
            pad = "SAME" if padding == "SAME" else "VALID" if padding == "VALID" else [(1, 1)] * 2
            y = lax.conv_general_dilated(
                x,
                k,
                (stride, stride),
                pad,
                rhs_dilation=(dilation, dilation),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=4,
            )
            return jnp.sum(jnp.sin(y))

        got = jax.value_and_grad(ours, argnums=(0, 1))(x, k)
        want = jax.value_and_grad(xla, argnums=(0, 1))(x, k)
        assert shape[-1] == 4 * mult
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(
    "hw,kernel,stride,padding,dilation",
    [
        ((2, 2), (3, 3), 1, "SAME", 1),  # a 3x3 conv on a 2x2 map (ResNet-18's last stage)
        ((4, 4), (3, 3), 2, "SAME_SYMMETRIC", 1),  # stride 2 down to 2x2
        ((3, 4), (3, 2), (2, 1), ((2, 1), (0, 1)), 1),  # explicit, asymmetric pads
        ((3, 3), (3, 3), 1, 2, 2),  # dilated window (5) larger than the output (3)
    ],
)
def test_small_map_matmul_path_equals_xla_conv_with_gradients(
    hw, kernel, stride, padding, dilation
):
    """On CPU, convs whose output is shorter than the window run as one matmul of
    the patch matrix; values and both gradients equal XLA's convolution."""
    from jcnn.functional import _conv

    x, k = normal((3, *hw, 4)), normal((*kernel, 4, 5), seed=1)
    pads, s, d = _axis_pads(padding, hw, kernel, stride, dilation)
    assert _conv._window_exceeds_output(x.shape, k.shape, s, pads, d)

    def ours(x, k):
        y = F.conv2d(x, k, stride=stride, padding=padding, dilation=dilation)
        return jnp.sum(jnp.sin(y)), y

    def xla(x, k):
        y = lax.conv_general_dilated(
            x, k, s, pads, rhs_dilation=d, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jnp.sum(jnp.sin(y)), y

    (_, y), grads = jax.value_and_grad(ours, argnums=(0, 1), has_aux=True)(x, k)
    (_, y_ref), grads_ref = jax.value_and_grad(xla, argnums=(0, 1), has_aux=True)(x, k)
    chex.assert_shape(y, y_ref.shape)
    np.testing.assert_allclose(y, y_ref, rtol=2e-5, atol=2e-5)
    for a, b in zip(grads, grads_ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


def test_small_map_path_is_taken_only_where_the_window_exceeds_the_output():
    from jcnn.functional import _conv

    same = ((1, 1), (1, 1))
    assert _conv._window_exceeds_output((8, 2, 2, 64), (3, 3, 64, 64), (1, 1), same, (1, 1))
    assert _conv._window_exceeds_output((8, 4, 4, 64), (3, 3, 64, 64), (2, 2), same, (1, 1))
    assert not _conv._window_exceeds_output((8, 4, 4, 64), (3, 3, 64, 64), (1, 1), same, (1, 1))
    assert not _conv._window_exceeds_output(
        (8, 1, 1, 64), (1, 1, 64, 64), (1, 1), ((0, 0),) * 2, (1, 1)
    )


def test_conv2d_gradients():
    x, k, b = normal((1, 5, 5, 2)), normal((3, 3, 1, 4), seed=1), normal((4,), seed=2)
    conv = functools.partial(F.conv2d, stride=2, padding="SAME_SYMMETRIC", dilation=1, groups=2)
    check_grads(conv, (x, k, b), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_conv2d_jit_and_vmap_equal_plain_call():
    x, k = normal((3, 6, 6, 2)), normal((3, 3, 2, 2), seed=1)
    plain = F.conv2d(x, k, stride=2)
    np.testing.assert_allclose(jax.jit(F.conv2d, static_argnames="stride")(x, k, stride=2), plain)
    per_example = jax.vmap(lambda xi: F.conv2d(xi[None], k, stride=2)[0])(x)
    np.testing.assert_allclose(per_example, plain, rtol=1e-6, atol=1e-6)


def test_conv2d_bf16_promotes_and_keeps_dtype():
    x, k = normal((1, 5, 5, 2), dtype=jnp.bfloat16), normal((3, 3, 2, 2), 1, jnp.bfloat16)
    y = F.conv2d(x, k)
    assert y.dtype == jnp.bfloat16
    pads, s, d = _axis_pads("SAME", (5, 5), (3, 3), 1, 1)
    expected = naive_conv2d(x.astype(jnp.float32), k.astype(jnp.float32), None, s, pads, d, 1)
    np.testing.assert_allclose(y.astype(jnp.float32), expected, rtol=5e-2, atol=5e-2)


@settings(deadline=None, max_examples=60)
@given(
    n=st.integers(1, 20),
    k=st.integers(1, 6),
    s=st.integers(1, 4),
    d=st.integers(1, 3),
    padding=st.one_of(
        st.sampled_from(["SAME", "VALID", "SAME_SYMMETRIC"]),
        st.integers(0, 3),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
    ),
)
def test_conv_output_size_equals_real_output_shape(n, k, s, d, padding):
    lo, hi = (
        reference_pads(padding, n, k, s, d)
        if isinstance(padding, str)
        else ((padding, padding) if isinstance(padding, int) else padding)
    )
    if n + lo + hi < d * (k - 1) + 1:
        with pytest.raises(ValueError, match="larger than"):
            F.conv_output_size(n, k, stride=s, padding=padding, dilation=d)
        return
    pad2d = padding if isinstance(padding, str) else (tuple((lo, hi) for _ in range(2)))
    shape = jax.eval_shape(
        functools.partial(F.conv2d, stride=s, padding=pad2d, dilation=d),
        jax.ShapeDtypeStruct((1, n, n, 1), jnp.float32),
        jax.ShapeDtypeStruct((k, k, 1, 1), jnp.float32),
    ).shape
    assert F.conv_output_size(n, k, stride=s, padding=padding, dilation=d) == shape[1]
    if padding == "SAME":
        assert shape[1] == -(-n // s)


def test_conv_output_size_textbook_values():
    # 28x28, 5x5 valid -> 24 (LeNet); 224, 7x7/2 pad 3 -> 112 (ResNet stem); 32, 3x3 d2 pad 2 -> 32
    assert F.conv_output_size(28, 5) == 24
    assert F.conv_output_size(224, 7, stride=2, padding=3) == 112
    assert F.conv_output_size(32, 3, padding=2, dilation=2) == 32
    assert F.conv_output_size(7, 3, stride=2, padding=(0, 1)) == 3


def test_conv_param_count():
    assert F.conv_param_count(3, 64, 128) == 3 * 3 * 64 * 128 + 128
    assert F.conv_param_count((3, 3), 32, 32, groups=32) == 3 * 3 * 1 * 32 + 32  # depthwise
    assert F.conv_param_count(1, 6, 4, groups=2, bias=False) == 12
    k = jnp.zeros((3, 3, 64 // 4, 32))
    assert F.conv_param_count(3, 64, 32, groups=4) == k.size + 32


def test_receptive_field_hand_computed():
    assert [r.size for r in F.receptive_field([(3, 1)] * 3)] == [3, 5, 7]
    conv_pool_conv = F.receptive_field([(3, 1), (2, 2), (3, 1)])
    assert conv_pool_conv[-1] == F.ReceptiveField(size=8, jump=2)
    # Dilation 2 on a 3x3 widens by 4 * jump; VGG-style 5 convs + 2 pools:
    assert F.receptive_field([(3, 1, 2)])[0].size == 5
    assert F.receptive_field([(7, 2), (3, 2), (3, 1)])[-1] == F.ReceptiveField(19, 4)


# --- bad input: each names the argument, the value and what was expected ---

BAD_CALLS = [
    (
        lambda: F.conv2d(jnp.ones((5, 5, 3)), jnp.ones((3, 3, 3, 2))),
        ValueError,
        r"`x` must be NHWC \(4-D\), got shape \(5, 5, 3\)",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3))),
        ValueError,
        r"`kernel` must be HWIO \(4-D\)",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 4, 2))),
        ValueError,
        r"has 3 channels .* expects 4",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 4)), jnp.ones((3, 3, 2, 3)), groups=2),
        ValueError,
        r"3 output channels, which groups=2 does not divide",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 1, 3)), groups=2),
        ValueError,
        r"3 channels, which groups=2 does not divide",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 2)), padding="FULL"),
        ValueError,
        r"unknown `padding` 'FULL'",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 2)), stride=0),
        ValueError,
        r"`stride` must be an int >= 1, got 0",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 2)), stride=(1, -2)),
        ValueError,
        r"`stride` must be ints >= 1, got \(1, -2\)",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 2)), dilation=0),
        ValueError,
        r"`dilation` must be an int >= 1, got 0",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 2)), stride=1.5),
        TypeError,
        r"`stride` must be an int or a pair",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 2)), padding=-1),
        ValueError,
        r"`padding` must be non-negative, got -1",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 2)), groups=0),
        ValueError,
        r"`groups` must be an int >= 1, got 0",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 4, 4, 1)), jnp.ones((5, 5, 1, 1)), padding="VALID"),
        ValueError,
        r"dilated kernel \(5 along H\) is larger than the padded input \(4 \+ 0 \+ 0 = 4\)",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 2), jnp.int32)),
        TypeError,
        r"`kernel` must have a floating-point dtype, got int32",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3), jnp.int8), jnp.ones((3, 3, 3, 2))),
        TypeError,
        r"`x` must have a floating-point dtype, got int8",
    ),
    (
        lambda: F.conv2d(jnp.ones((1, 5, 5, 3)), jnp.ones((3, 3, 3, 2)), jnp.ones((3,))),
        ValueError,
        r"`bias` must have shape \(2,\), got \(3,\)",
    ),
    (lambda: F.conv_output_size(0, 3), ValueError, r"`n` must be an int >= 1, got 0"),
    (
        lambda: F.conv_output_size(5, 3, stride=0),
        ValueError,
        r"`stride` must be an int >= 1, got 0",
    ),
    (
        lambda: F.conv_output_size(5, 3, padding="same-ish"),
        ValueError,
        r"unknown `padding` 'same-ish'",
    ),
    (
        lambda: F.conv_output_size(5, 3, padding=1.5),
        TypeError,
        r"`padding` must be a string or ints, got 1.5",
    ),
    (
        lambda: F.conv_param_count(3, 6, 4, groups=4),
        ValueError,
        r"groups=4 must divide in_channels=6",
    ),
    (
        lambda: F.receptive_field([(3, 1), "conv"]),
        TypeError,
        r"`layers\[1\]` must be \(kernel, stride\)",
    ),
    (
        lambda: F.receptive_field([(3, 0)]),
        ValueError,
        r"`layers\[0\] stride` must be an int >= 1, got 0",
    ),
]


@pytest.mark.parametrize("call,error,message", BAD_CALLS)
def test_bad_input_raises_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
