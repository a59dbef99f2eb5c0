"""Train-step and eval throughput of jcnn models against plain Flax and PyTorch.

    python benchmarks/models.py [--models lenet5,cnn_small,resnet20] [--steps 5]
        [--repeats 3] [--rounds 2] [--batch N] [--variants ...] [--breakdown] [--quick]

Variants (each in its own subprocess, alternated over `rounds`):

* ``jcnn``: `jcnn.models.create` + `jcnn.train.step.make_train_step`, jitted
  with the state donated, with the XLA:CPU flags ``jcnn train`` sets (`jcnn._xla`:
  YNNPACK for elementwise, reduce and dot fusions, not for convolutions);
* ``jcnn ynn-on``: the same with jaxlib's default XLA flags;
* ``flax``: the anchor: the same architecture written here in plain
  ``flax.linen`` the way a Flax user writes it (``nn.Conv``, ``nn.BatchNorm``,
  ``nn.max_pool`` ...), a ``flax.training.train_state`` step with
  ``optax.sgd(momentum=0.9)`` under a plain ``jax.jit``, jaxlib defaults;
* ``flax ynn-off``: the anchor with YNNPACK off (separates flag from formulation);
* ``torch``: PyTorch eager, channels_last, 2 threads, ``torch.optim.SGD``;
* ``torch.compile``: the same model through ``torch.compile`` (default mode).

Every variant trains the same architecture (parameter counts are printed and
must agree) with SGD momentum 0.9 on a fixed random batch, softmax cross
entropy, 10 classes, no augmentation. Reported per variant: parameters; train
img/s (median over rounds x repeats of `steps` steps, the compiling first step
and one more excluded); the train step's GFLOP/s (3x the forward conv + dense
FLOPs of `jcnn.summary`) and its share of the float32 matmul ceiling measured
in the same run; eval img/s (a jitted / ``no_grad`` forward, eval mode); the
first step's time (JAX: trace+lower, XLA compile, and the first run; torch:
the first call, inductor's compile in it, with a fresh cache dir so it is cold)
and the worker's peak RSS. ``--breakdown`` adds, for the JAX variants, the
forward (train mode) and forward+backward times of the loss, so the step's
time splits into forward, backward and optimiser update.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H

from jcnn._xla import YNN_FLAG as JCNN_FLAGS  # what `jcnn train` sets

NUM_CLASSES = 10
LR, MOMENTUM = 0.05, 0.9
# input (H, W, C) and default batch of each model.
MODELS = {
    "lenet5": ((28, 28, 1), 128),
    "cnn_small": ((28, 28, 1), 128),
    "resnet20": ((32, 32, 3), 128),
    "resnet18": ((64, 64, 3), 32),
    "resnet50": ((64, 64, 3), 32),
}
DEFAULT_MODELS = ("lenet5", "cnn_small", "resnet20")
# variant -> (framework, XLA_FLAGS)
VARIANTS = {
    "jcnn": ("jcnn", JCNN_FLAGS),
    "jcnn ynn-on": ("jcnn", ""),
    "flax": ("flax", ""),
    "flax ynn-off": ("flax", H.YNN_OFF),
    "torch": ("torch", ""),
    "torch.compile": ("torch.compile", ""),
}
ANCHOR = "flax"


# --- the Flax anchor: plain flax.linen, as a Flax user writes it -------------


def flax_anchor(name: str, num_classes: int = NUM_CLASSES):
    """The architecture `name` in plain ``flax.linen`` (jcnn-free)."""
    from functools import partial

    import flax.linen as nn
    import jax.numpy as jnp

    def norm(train):
        return partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)

    class LeNet5(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            x = nn.avg_pool(nn.tanh(nn.Conv(6, (5, 5), padding=2)(x)), (2, 2), (2, 2))
            x = nn.avg_pool(nn.tanh(nn.Conv(16, (5, 5), padding="VALID")(x)), (2, 2), (2, 2))
            x = x.reshape(x.shape[0], -1)
            x = nn.tanh(nn.Dense(120)(x))
            x = nn.tanh(nn.Dense(84)(x))
            return nn.Dense(num_classes)(x)

    class SmallCNN(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            for features in (32, 64):
                for _ in range(2):
                    x = nn.Conv(features, (3, 3), use_bias=False)(x)
                    x = nn.relu(norm(train)()(x))
                x = nn.max_pool(x, (2, 2), (2, 2))
            x = x.reshape(x.shape[0], -1)
            x = nn.relu(nn.Dense(128)(x))
            return nn.Dense(num_classes)(x)

    class CifarBlock(nn.Module):
        features: int
        stride: int

        @nn.compact
        def __call__(self, x, train: bool):
            y = nn.Conv(self.features, (3, 3), self.stride, use_bias=False)(x)
            y = nn.relu(norm(train)()(y))
            y = norm(train)()(nn.Conv(self.features, (3, 3), use_bias=False)(y))
            if x.shape[-1] != self.features:  # option A: subsample, zero-pad channels
                x = x[:, :: self.stride, :: self.stride]
                x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, self.features - x.shape[-1])))
            return nn.relu(y + x)

    class ResNet20(nn.Module):
        @nn.compact
        def __call__(self, x, train: bool):
            x = nn.relu(norm(train)()(nn.Conv(16, (3, 3), use_bias=False)(x)))
            for stage, features in enumerate((16, 32, 64)):
                for i in range(3):
                    x = CifarBlock(features, 2 if stage and not i else 1)(x, train)
            return nn.Dense(num_classes)(x.mean(axis=(1, 2)))

    class Basic(nn.Module):
        features: int
        stride: int

        @nn.compact
        def __call__(self, x, train: bool):
            y = nn.Conv(self.features, (3, 3), self.stride, use_bias=False)(x)
            y = nn.relu(norm(train)()(y))
            y = norm(train)()(nn.Conv(self.features, (3, 3), use_bias=False)(y))
            if x.shape != y.shape:
                x = nn.Conv(self.features, (1, 1), self.stride, use_bias=False)(x)
                x = norm(train)()(x)
            return nn.relu(y + x)

    class Bottleneck(nn.Module):
        features: int
        stride: int

        @nn.compact
        def __call__(self, x, train: bool):
            y = nn.relu(norm(train)()(nn.Conv(self.features, (1, 1), use_bias=False)(x)))
            y = nn.Conv(self.features, (3, 3), self.stride, use_bias=False)(y)
            y = nn.relu(norm(train)()(y))
            y = norm(train)()(nn.Conv(4 * self.features, (1, 1), use_bias=False)(y))
            if x.shape != y.shape:
                x = nn.Conv(4 * self.features, (1, 1), self.stride, use_bias=False)(x)
                x = norm(train)()(x)
            return nn.relu(y + x)

    class ResNet(nn.Module):
        stages: tuple
        block: type

        @nn.compact
        def __call__(self, x, train: bool):
            x = nn.Conv(64, (7, 7), 2, padding=[(3, 3), (3, 3)], use_bias=False)(x)
            x = nn.relu(norm(train)()(x))
            x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
            for stage, blocks in enumerate(self.stages):
                for i in range(blocks):
                    x = self.block(64 * 2**stage, 2 if stage and not i else 1)(x, train)
            return nn.Dense(num_classes)(x.mean(axis=(1, 2)))

    return {
        "lenet5": LeNet5,
        "cnn_small": SmallCNN,
        "resnet20": ResNet20,
        "resnet18": lambda: ResNet((2, 2, 2, 2), Basic),
        "resnet50": lambda: ResNet((3, 4, 6, 3), Bottleneck),
    }[name]()


# --- the PyTorch peers -------------------------------------------------------


def torch_model(name: str, num_classes: int = NUM_CLASSES):
    """The architecture `name` in plain PyTorch (NCHW modules; run channels_last)."""
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride=1):
        return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]

    class CifarBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.branch = nn.Sequential(
                *conv_bn(cin, cout, 3, stride), nn.ReLU(inplace=True), *conv_bn(cout, cout, 3)
            )
            self.stride, self.pad = stride, cout - cin

        def forward(self, x):
            y = self.branch(x)
            if self.pad:
                x = x[:, :, :: self.stride, :: self.stride]
                x = torch.cat([x, x.new_zeros(x.shape[0], self.pad, *x.shape[2:])], 1)
            return torch.relu(y + x)

    class Basic(nn.Module):
        expansion = 1

        def __init__(self, cin, planes, stride):
            super().__init__()
            self.branch = nn.Sequential(
                *conv_bn(cin, planes, 3, stride), nn.ReLU(inplace=True), *conv_bn(planes, planes, 3)
            )
            self.down = (
                nn.Sequential(*conv_bn(cin, planes, 1, stride))
                if stride != 1 or cin != planes
                else nn.Identity()
            )

        def forward(self, x):
            return torch.relu(self.branch(x) + self.down(x))

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, planes, stride):
            super().__init__()
            self.branch = nn.Sequential(
                *conv_bn(cin, planes, 1),
                nn.ReLU(inplace=True),
                *conv_bn(planes, planes, 3, stride),
                nn.ReLU(inplace=True),
                *conv_bn(planes, 4 * planes, 1),
            )
            self.down = (
                nn.Sequential(*conv_bn(cin, 4 * planes, 1, stride))
                if stride != 1 or cin != 4 * planes
                else nn.Identity()
            )

        def forward(self, x):
            return torch.relu(self.branch(x) + self.down(x))

    def resnet(block, stages):
        layers, cin = [*conv_bn(3, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)], 64
        for stage, blocks in enumerate(stages):
            for i in range(blocks):
                layers.append(block(cin, 64 * 2**stage, 2 if stage and not i else 1))
                cin = 64 * 2**stage * block.expansion
        return nn.Sequential(
            *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)
        )

    def cifar_resnet20():
        layers, cin = [*conv_bn(3, 16, 3), nn.ReLU(inplace=True)], 16
        for stage, features in enumerate((16, 32, 64)):
            for i in range(3):
                layers.append(CifarBlock(cin, features, 2 if stage and not i else 1))
                cin = features
        return nn.Sequential(
            *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)
        )

    def small_cnn():
        layers, cin = [], 1
        for features in (32, 64):
            for _ in range(2):
                layers += [*conv_bn(cin, features, 3), nn.ReLU(inplace=True)]
                cin = features
            layers.append(nn.MaxPool2d(2))
        return nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )

    def lenet5():
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.Tanh(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.Tanh(),
            nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.Tanh(),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    builders = {
        "lenet5": lenet5,
        "cnn_small": small_cnn,
        "resnet20": cifar_resnet20,
        "resnet18": lambda: resnet(Basic, (2, 2, 2, 2)),
        "resnet50": lambda: resnet(Bottleneck, (3, 4, 6, 3)),
    }
    return builders[name]()


def param_count(framework: str, name: str) -> int:
    """Trainable parameters of `name` as `framework` builds it (JAX: no compile)."""
    if framework.startswith("torch"):
        return sum(p.numel() for p in torch_model(name).parameters())
    import jax
    import jax.numpy as jnp

    shape = (1, *MODELS[name][0])
    model = jcnn_model(name) if framework == "jcnn" else flax_anchor(name)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))
    return sum(int(v.size) for v in jax.tree.leaves(variables["params"]))


def jcnn_model(name: str):
    import jcnn.models

    return jcnn.models.create(name, num_classes=NUM_CLASSES)


# --- workers -----------------------------------------------------------------


def _batch(spec: dict):
    import numpy as np

    rng = np.random.default_rng(0)
    (h, w, c), n = MODELS[spec["model"]][0], spec["batch"]
    images = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    labels = rng.integers(0, NUM_CLASSES, n).astype(np.int32)
    return images, labels


def _time_steps(step, steps: int, repeats: int) -> list[float]:
    """Seconds per step: `repeats` samples of `steps` steps each (`step()` blocks)."""
    return [
        s / steps for s in H.time_calls(lambda: [step() for _ in range(steps)], repeats=repeats)
    ]


def jax_worker(spec: dict) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    images_u8, labels_np = _batch(spec)
    mean, std = 0.5, 0.25
    tx = optax.sgd(LR, momentum=MOMENTUM)
    labels = jnp.asarray(labels_np)
    x = jnp.asarray((images_u8 / 255.0 - mean) / std, jnp.float32)
    key = jax.random.key(0)
    if spec["framework"] == "jcnn":
        from jcnn.train.state import create_state
        from jcnn.train.step import cross_entropy, eval_logits, make_train_step

        model = jcnn_model(spec["model"])
        state = create_state(model, tx, key, MODELS[spec["model"]][0])
        step_fn = jax.jit(
            make_train_step(model, tx, num_classes=NUM_CLASSES, mean=mean, std=std),
            donate_argnums=0,
        )
        step_args = (jnp.asarray(images_u8), labels)
        variables = lambda s: s.variables  # noqa: E731

        def predict(v, x):
            return eval_logits(model, v, x)

        def loss(params, batch_stats, x, y):
            logits, _ = model.apply(
                {"params": params, "batch_stats": batch_stats},
                x,
                train=True,
                mutable=["batch_stats"],
            )
            return cross_entropy(logits, y, num_classes=NUM_CLASSES)

    else:
        from flax.training import train_state

        model = flax_anchor(spec["model"])

        class TrainState(train_state.TrainState):
            batch_stats: dict

        v = model.init(key, x[:1], train=False)
        state = TrainState.create(
            apply_fn=model.apply,
            params=v["params"],
            batch_stats=v.get("batch_stats", {}),
            tx=tx,
        )

        def loss(params, batch_stats, x, y):
            logits, _ = model.apply(
                {"params": params, "batch_stats": batch_stats},
                x,
                train=True,
                mutable=["batch_stats"],
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        @jax.jit
        def step_fn(state, x, y):
            def loss_fn(params):
                logits, updates = state.apply_fn(
                    {"params": params, "batch_stats": state.batch_stats},
                    x,
                    train=True,
                    mutable=["batch_stats"],
                )
                loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
                return loss, updates

            (loss_value, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
            state = state.apply_gradients(grads=grads)
            return state.replace(batch_stats=updates.get("batch_stats", {})), loss_value

        step_args = (x, labels)

        def variables(s):
            return {"params": s.params, "batch_stats": s.batch_stats}

        def predict(v, x):
            return model.apply(v, x, train=False)

    t0 = time.perf_counter()
    lowered = step_fn.lower(state, *step_args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    state, out = compiled(state, *step_args)
    jax.block_until_ready(out)
    t3 = time.perf_counter()
    state, out = compiled(state, *step_args)  # warm-up
    jax.block_until_ready(out)

    def train_step():
        nonlocal state
        state, out = compiled(state, *step_args)
        jax.block_until_ready(out)

    result = {
        "train_s": _time_steps(train_step, spec["steps"], spec["repeats"]),
        "trace_s": t1 - t0,
        "compile_s": t2 - t1,
        "first_step_s": t3 - t0,
    }
    eval_fn = jax.jit(predict)
    v = variables(state)
    jax.block_until_ready(eval_fn(v, x))
    result["eval_s"] = _time_steps(
        lambda: jax.block_until_ready(eval_fn(v, x)), spec["steps"], spec["repeats"]
    )
    if spec.get("breakdown"):
        p, bs = state.params, state.batch_stats
        fwd, grad = jax.jit(loss), jax.jit(jax.grad(loss))
        for name, fn in (("fwd_s", fwd), ("fwd_bwd_s", grad)):
            jax.block_until_ready(fn(p, bs, x, labels))
            result[name] = _time_steps(
                lambda fn=fn: jax.block_until_ready(fn(p, bs, x, labels)),
                spec["steps"],
                spec["repeats"],
            )
    del np
    result["peak_rss_mib"] = H.peak_rss_mib()
    return result


def torch_worker(spec: dict) -> dict:
    # A fresh inductor cache, so that the first step's time is a cold compile.
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="jcnn-bench-inductor-")
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    images_u8, labels_np = _batch(spec)
    x = torch.from_numpy((images_u8 / 255.0 - 0.5) / 0.25).float().permute(0, 3, 1, 2)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(labels_np).long()
    model = torch_model(spec["model"]).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    forward = torch.compile(model) if spec["framework"] == "torch.compile" else model

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        opt.step()

    model.train()
    t0 = time.perf_counter()
    train_step()
    first = time.perf_counter() - t0
    train_step()
    result = {
        "train_s": _time_steps(train_step, spec["steps"], spec["repeats"]),
        "first_step_s": first,
    }
    model.eval()
    with torch.no_grad():
        forward(x)  # compiles the eval graph under torch.compile
        result["eval_s"] = _time_steps(lambda: forward(x), spec["steps"], spec["repeats"])
    result["peak_rss_mib"] = H.peak_rss_mib()
    return result


def ceiling_worker(spec: dict) -> dict:
    """float32 matmul GFLOP/s, jnp.dot (and torch.mm when torch is installed)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    n = spec["n"]
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, a))
    flops = 2 * n**3
    out = {"jax": flops / H.median(H.time_calls(lambda: dot(a, a).block_until_ready(), repeats=7))}
    if H.torch_available():
        import torch

        torch.set_num_threads(2)
        t = torch.from_numpy(np.asarray(a))
        torch.mm(t, t)
        out["torch"] = flops / H.median(H.time_calls(lambda: torch.mm(t, t), repeats=7))
    return {k: v / 1e9 for k, v in out.items()}


def worker(spec: dict) -> dict:
    if spec["framework"] == "ceiling":
        return ceiling_worker(spec)
    if spec["framework"].startswith("torch"):
        return torch_worker(spec)
    return jax_worker(spec)


# --- the parent --------------------------------------------------------------


def _forward_flops(name: str) -> int:
    """Forward FLOPs per image (2 per multiply-add of convs and dense layers)."""
    import jcnn.summary

    return jcnn.summary.summarize(jcnn_model(name), MODELS[name][0]).total_flops


def run(models, variants, *, batch, steps, repeats, rounds, breakdown, quick) -> str:
    runs = {(m, v): [] for m in models for v in variants}
    ceilings = []
    n = 256 if quick else 2048
    for _ in range(rounds):
        jax = [v for v in variants if not VARIANTS[v][0].startswith("torch")]
        jax_flags = sorted({VARIANTS[v][1] for v in jax})
        for flags in jax_flags[:1] if quick else jax_flags:  # quick: one ceiling worker
            spec = {"framework": "ceiling", "n": n}
            ceilings.append(H.run_worker(__file__, ["--worker", json.dumps(spec)], xla_flags=flags))
        for m in models:
            for v in variants:
                framework, flags = VARIANTS[v]
                spec = {
                    "framework": framework,
                    "model": m,
                    "batch": batch or MODELS[m][1],
                    "steps": steps,
                    "repeats": repeats,
                    "breakdown": breakdown and framework in ("jcnn", "flax"),
                }
                runs[m, v].append(
                    H.run_worker(__file__, ["--worker", json.dumps(spec)], xla_flags=flags)
                )
    ceiling = max((max(c.values()) for c in ceilings), default=float("nan"))
    measured = "; ".join(", ".join(f"{k} {v:.0f}" for k, v in c.items()) for c in ceilings)
    lines = [
        f"float32 matmul ceiling ({n}x{n}, median of 7 per worker): {measured} "
        f"-> ceiling {ceiling:.0f} GFLOP/s"
    ]
    for m in models:
        b = batch or MODELS[m][1]
        train_flops = 3 * _forward_flops(m)
        lines += [
            "",
            f"### {m}: input {MODELS[m][0]}, batch {b}, {train_flops / 3e6:.1f} MFLOP fwd/img",
        ]
        lines.append(f"load average after: {H.loadavg()}")
        base = None
        if ANCHOR in variants:
            base = b / H.median([t for r in runs[m, ANCHOR] for t in r["train_s"]])
        rows = []
        for v in variants:
            rs = runs[m, v]
            img_s = b / H.median([t for r in rs for t in r["train_s"]])
            eval_img_s = b / H.median([t for r in rs for t in r["eval_s"]])
            gflops = img_s * train_flops / 1e9
            params = param_count(VARIANTS[v][0], m)
            first = H.median([r["first_step_s"] for r in rs])
            compile_s = (
                f"{H.median([r['compile_s'] for r in rs]):.2f}" if "compile_s" in rs[0] else "-"
            )
            rows.append(
                [
                    v,
                    f"{params:,}",
                    img_s,
                    f"x{img_s / base:.2f}" if base else "-",
                    gflops,
                    f"{100 * gflops / ceiling:.0f}%",
                    eval_img_s,
                    first,
                    compile_s,
                    max(r["peak_rss_mib"] for r in rs),
                ]
            )
        cols = [
            "variant",
            "params",
            "train img/s",
            "vs flax",
            "GFLOP/s",
            "of ceiling",
            "eval img/s",
            "first step s",
            "XLA compile s",
            "peak RSS MiB",
        ]
        lines.append(H.markdown_table(cols, rows))
        if breakdown:
            lines.append("")
            lines.append(_breakdown_table(runs, m, variants, b))
    return "\n".join(lines)


def _breakdown_table(runs, m, variants, b) -> str:
    rows = []
    for v in variants:
        rs = runs[m, v]
        if "fwd_s" not in rs[0]:
            continue
        ms = {
            k: 1e3 * H.median([t for r in rs for t in r[k]])
            for k in ("fwd_s", "fwd_bwd_s", "train_s")
        }
        rows.append(
            [
                v,
                ms["fwd_s"],
                ms["fwd_bwd_s"] - ms["fwd_s"],
                ms["train_s"] - ms["fwd_bwd_s"],
                ms["train_s"],
            ]
        )
    cols = ["variant", "forward ms", "+ backward ms", "+ update etc. ms", "train step ms"]
    return f"step breakdown ({m}, batch {b}):\n" + H.markdown_table(cols, rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batch", type=int, default=None, help="default: per model")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed sample")
    parser.add_argument("--repeats", type=int, default=3, help="timed samples per worker")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--quick", action="store_true", help="tiny settings, for a test")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    models = [m for m in args.models.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]
    for name, known in (("model", MODELS), ("variant", VARIANTS)):
        bad = [x for x in (models if name == "model" else variants) if x not in known]
        if bad:
            parser.error(f"unknown {name}(s) {bad}; known: {', '.join(known)}")
    if not H.torch_available():
        skipped = [v for v in variants if v.startswith("torch")]
        variants = [v for v in variants if not v.startswith("torch")]
        if skipped:
            print(f"torch is not installed: skipping {', '.join(skipped)}")
    if args.quick:
        args.batch, args.steps, args.repeats, args.rounds = args.batch or 4, 1, 1, 1
    print(H.header("python " + " ".join(sys.argv)))
    print()
    print(
        run(
            models,
            variants,
            batch=args.batch,
            steps=args.steps,
            repeats=args.repeats,
            rounds=args.rounds,
            breakdown=args.breakdown,
            quick=args.quick,
        )
    )


if __name__ == "__main__":
    main()
