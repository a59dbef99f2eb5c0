"""`make train` until the training loop lands: build a small CNN from
`jcnn.functional` and `jcnn.init`, print its per-layer shapes, parameters,
FLOPs and receptive field, and time its jitted forward and backward pass.

Run: `python -m jcnn.demo`.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

import jcnn.functional as F
from jcnn import init

# (name, kind, kernel, stride, out_channels)
LAYERS = [
    ("conv1", "conv", 3, 1, 32),
    ("conv2", "conv", 3, 1, 32),
    ("pool1", "max", 2, 2, None),
    ("conv3", "conv", 3, 1, 64),
    ("conv4", "conv", 3, 1, 64),
    ("pool2", "max", 2, 2, None),
]


def init_params(key, in_shape=(28, 28, 1), num_classes=10):
    params, c = {}, in_shape[-1]
    for name, kind, k, _, out in LAYERS:
        if kind == "conv":
            key, sub = jax.random.split(key)
            params[name] = (init.he_normal()(sub, (k, k, c, out)), jnp.zeros((out,)))
            c = out
    key, sub = jax.random.split(key)
    params["head"] = (init.xavier_uniform()(sub, (c, num_classes)), jnp.zeros((num_classes,)))
    return params


def forward(params, x):
    for name, kind, k, s, _ in LAYERS:
        if kind == "conv":
            x = F.relu(F.conv2d(x, *params[name], stride=s, padding="SAME"))
        else:
            x = F.max_pool2d(x, k, stride=s)
    return F.dense(F.global_avg_pool(x), *params["head"])


def main() -> None:
    h, w, c = 28, 28, 1
    params = init_params(jax.random.key(0), (h, w, c))
    print(f"jcnn demo CNN on {h}x{w}x1 inputs (jax {jax.__version__}, {jax.devices()[0]})")
    print(f"{'layer':<8}{'output':>14}{'params':>10}{'MFLOPs':>10}{'RF':>5}{'jump':>6}")
    rf = F.receptive_field([(k, s) for _, _, k, s, _ in LAYERS])
    size, total_params, total_flops = h, 0, 0
    for (name, kind, k, s, out), field in zip(LAYERS, rf, strict=True):
        size = F.conv_output_size(size, k, stride=s, padding="SAME" if kind == "conv" else 0)
        if kind == "conv":
            n_params = F.conv_param_count(k, c, out)
            flops = 2 * k * k * c * out * size * size
            c = out
        else:
            n_params, flops = 0, c * size * size * k * k
        total_params, total_flops = total_params + n_params, total_flops + flops
        shape = f"{size}x{size}x{c}"
        row = f"{name:<8}{shape:>14}{n_params:>10,}{flops / 1e6:>10.2f}"
        print(f"{row}{field.size:>5}{field.jump:>6}")
    head = params["head"][0].size + params["head"][1].size
    total_params += head
    print(f"{'head':<8}{'10':>14}{head:>10,}")
    actual = sum(p.size for p in jax.tree_util.tree_leaves(params))
    print(f"total params {total_params:,} (initialised: {actual:,}); ", end="")
    print(f"forward {total_flops / 1e6:.1f} MFLOPs")

    x = jax.random.normal(jax.random.key(1), (128, h, w, 1))
    y = jax.random.randint(jax.random.key(2), (128,), 0, 10)

    def loss(p):
        logp = jax.nn.log_softmax(forward(p, x))
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], 1))

    step = jax.jit(jax.value_and_grad(loss))
    jax.block_until_ready(step(params))
    start = time.perf_counter()
    for _ in range(5):
        jax.block_until_ready(step(params))
    dt = (time.perf_counter() - start) / 5
    print(f"forward+backward, batch 128: {dt * 1e3:.1f} ms ({128 / dt:,.0f} img/s)")


if __name__ == "__main__":
    main()
