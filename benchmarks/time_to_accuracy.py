"""Time to accuracy: ``jcnn train --config=default`` against the same recipe in PyTorch.

    python benchmarks/time_to_accuracy.py [--target 0.92] [--epochs 5] [--compile]
        [--only jcnn|torch] [--threads 2] [--workdir DIR] [--quick]

Runs, one after the other on the same machine, each in its own process:

* ``jcnn``: the real command, ``jcnn train --config=default --workdir=...``, with
  the XLA flags ``jcnn train`` chooses itself (`jcnn._xla`; ``XLA_FLAGS`` and
  ``JCNN_KEEP_XLA_FLAGS`` are removed from its environment);
* ``torch``: the recipe of that config written in plain PyTorch below (eager,
  channels_last, ``torch.set_num_threads(threads)``), the kind of script a
  PyTorch user writes: data as tensors in memory, indexed batches;
* ``torch.compile`` (``--compile``): the same script with ``torch.compile(model)``,
  compiling cold (a fresh inductor cache).

Both read the data with ``jcnn.data.load("fashion_mnist", ...)`` and take every
hyper-parameter from the same validated config (the torch script refuses a
config whose recipe it does not implement). The recipe, item by item:
``cnn_small`` (conv32-conv32-pool-conv64-conv64-pool-fc128-fc10, 3x3 convs padded
1 each side without bias, BatchNorm momentum 0.9 in jcnn's convention = 0.1 in
PyTorch's, eps 1e-5, ReLU, 2x2 max pools, NHWC flatten); He-normal weights
(fan in, truncated at 2 std and rescaled to variance 2 / fan_in), zero biases,
BN scale 1 and offset 0; SGD with Nesterov momentum 0.9 (``v = mu v + g``,
``step = lr (g + mu v)``, optax's and PyTorch's form); L2 weight decay 5e-4 added
to the gradient before momentum, on conv and dense kernels only
(`jcnn.optim.default_decay_mask`); learning rate linear from 0 to 0.05 over one
epoch of steps, then cosine to 5e-5 at the last step, per step; softmax cross
entropy with label smoothing 0.1; a random crop of the zero-padded (2 px)
image, then a horizontal flip with probability 1/2, per example, on the uint8
pixels, then ``(x / 255 - mean) / std`` with the dataset's pixel statistics;
batches of 128 from a fresh permutation each epoch, remainder dropped; after
each epoch the test accuracy with flip test-time augmentation (mean of the
logits of the image and its mirror), in batches of 1000, and a checkpoint.

Timing: the clock starts just before the process is launched, so it includes
the interpreter's start, imports, data loading and compilation; the parent
polls each run's ``metrics.jsonl`` every 50 ms and stamps each evaluation line
when it appears. Reported per run: the time to the end of the first epoch
whose test accuracy reaches `target`, the epoch, the final accuracy and the
total wall time (to the process's exit). The torch script imports jcnn (and so
jax) to read the data: that cost (~1 s) is in its time, and reported as
``data_s`` with the loading. A markdown table and one JSON line are printed.

Run it on a quiet machine and check the load averages it records: torch's
OpenMP threads wait for each other at every op, so on a busy machine two
threads can be far slower than one (700 ms against 37 ms per step of 32
images, measured at load 6 on 2 cores), while XLA's thread pool degrades
gracefully.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _harness as H

ROOT = Path(__file__).resolve().parent.parent
DATASET = "fashion_mnist"
RUNS = ("jcnn", "torch", "torch.compile")
POLL_S = 0.05
# --quick: 1 epoch of 1,024 images (32 steps of 32) evaluated on 500; a small
# batch and rate so that so few steps learn something (cf. `default:smoke`).
QUICK_OVERRIDES = (
    "--config.data.train_subset=1024",
    "--config.data.test_subset=500",
    "--config.data.batch_size=32",
    "--config.optim.lr=0.01",
    "--config.optim.warmup_epochs=0.25",
)
QUICK_TARGET = 0.5


# --- the recipe in PyTorch ------------------------------------------------------


def warmup_cosine_lr(step, *, peak, init, final, warmup_steps, total_steps) -> float:
    """Linear from `init` to `peak` over `warmup_steps`, then a half cosine to `final`
    at `total_steps` (and `final` after it); `step` is the 0-based update count."""
    if step < warmup_steps:
        return init + (peak - init) * step / warmup_steps
    frac = min(step - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * frac))


def schedule_of(config: dict, steps_per_epoch: int):
    """``step -> learning rate`` of a config's ``optim`` section (warmup_cosine)."""
    o = config["optim"]
    total = steps_per_epoch * config["num_epochs"]
    warmup = round(o["warmup_epochs"] * steps_per_epoch)
    kw = dict(
        peak=o["lr"],
        init=o.get("init_lr") or 0.0,
        final=o.get("final_lr") or 0.0,
        warmup_steps=warmup,
        total_steps=total,
    )
    return lambda step: warmup_cosine_lr(step, **kw)


def check_recipe(config: dict) -> None:
    """Raises ValueError unless `config` asks for the recipe the torch script implements."""
    o, d = config["optim"], config["data"]
    wanted = {
        "model.name": (config["model"].get("name"), "cnn_small"),
        "model overrides": (sorted(set(config["model"]) - {"name"}), []),
        "optim.name": (o.get("name"), "sgd"),
        "optim.schedule": (o.get("schedule"), "warmup_cosine"),
        "optim.nesterov": (o.get("nesterov"), True),
        "optim.weight_decay_mode": (o.get("weight_decay_mode", "l2"), "l2"),
        "optim.decay_norm_and_bias": (o.get("decay_norm_and_bias", False), False),
        "optim keys": (sorted({"clip", "alpha", "warmup_steps"} & set(o)), []),
        "data.name": (d["name"], DATASET),
        "data.augment ops": (sorted(set(d["augment"]) - {"crop", "flip"}), []),
        "data.cutout_size": (d.get("cutout_size"), None),
        "dtype": (config["dtype"], "float32"),
        "parallel": (config["parallel"], "jit"),
        "eval_every_epochs": (config["eval_every_epochs"], 1),
    }
    bad = {k: got for k, (got, want) in wanted.items() if got != want}
    if bad:
        raise ValueError(f"time_to_accuracy: the torch script does not implement {bad}.")


def _truncated_std(bound: float = 2.0) -> float:
    """Standard deviation of N(0, 1) truncated to [-bound, bound]."""
    pdf = math.exp(-0.5 * bound * bound) / math.sqrt(2.0 * math.pi)
    mass = math.erf(bound / math.sqrt(2.0))
    return math.sqrt(1.0 - 2.0 * bound * pdf / mass)


def torch_model(num_classes: int = 10, in_channels: int = 1):
    """``cnn_small`` in PyTorch, initialised as jcnn initialises it."""
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            layers, cin = [], in_channels
            for features in (32, 64):
                for _ in range(2):
                    layers += [
                        nn.Conv2d(cin, features, 3, padding=1, bias=False),
                        nn.BatchNorm2d(features, eps=1e-5, momentum=0.1),
                        nn.ReLU(inplace=True),
                    ]
                    cin = features
                layers.append(nn.MaxPool2d(2))
            self.features = nn.Sequential(*layers)
            self.fc1 = nn.Linear(64 * 7 * 7, 128)
            self.fc2 = nn.Linear(128, num_classes)

        def forward(self, x):
            # NHWC order, as jcnn flattens; a free view of a channels_last tensor.
            x = self.features(x).permute(0, 2, 3, 1).flatten(1)
            return self.fc2(torch.relu(self.fc1(x)))

    model = SmallCNN()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                std = math.sqrt(2.0 / m.weight[0].numel()) / _truncated_std()
                nn.init.trunc_normal_(m.weight, 0.0, std, -2.0 * std, 2.0 * std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return model


def decayed(model) -> list:
    """The parameters weight decay applies to: conv and dense weights (ndim >= 2)."""
    return [p for p in model.parameters() if p.ndim >= 2]


def augment(images, ops, padding: int, gen):
    """Per-example random crop of the zero-padded image, then flip; uint8 NHWC in and out."""
    import torch
    import torch.nn.functional as F

    b, h, w, _ = images.shape
    for op in ops:
        if op == "crop":
            padded = F.pad(images, (0, 0, padding, padding, padding, padding))
            oy, ox = torch.randint(0, 2 * padding + 1, (2, b, 1), generator=gen)
            rows = (oy + torch.arange(h))[:, :, None]
            cols = (ox + torch.arange(w))[:, None, :]
            images = padded[torch.arange(b)[:, None, None], rows, cols]
        else:
            flip = torch.rand(b, generator=gen) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(2), images)
    return images


def _normalize(images_nhwc, mean: float, std: float):
    """uint8 NHWC -> float32 NCHW in channels_last memory, ``(x / 255 - mean) / std``."""
    return images_nhwc.permute(0, 3, 1, 2).float().div_(255.0).sub_(mean).div_(std)


def torch_child(workdir: Path, threads: int, compiled: bool) -> dict:
    """Trains the config in ``workdir/config.json``, appending eval lines to metrics.jsonl."""
    import torch
    import torch.nn.functional as F

    config = json.loads((workdir / "config.json").read_text())
    check_recipe(config)
    torch.set_num_threads(threads)
    torch.manual_seed(config["seed"])
    gen = torch.Generator().manual_seed(config["seed"])
    t0 = time.perf_counter()
    import jcnn.data

    d = config["data"]
    (train_x, train_y), (test_x, test_y) = (jcnn.data.load(DATASET, s) for s in ("train", "test"))
    train_x, train_y = train_x[: d["train_subset"]], train_y[: d["train_subset"]]
    test_x, test_y = test_x[: d["test_subset"]], test_y[: d["test_subset"]]
    mean, std = jcnn.data.pixel_stats(DATASET)
    data_s = time.perf_counter() - t0
    # jcnn.data.load's arrays are read-only; torch wants writable ones.
    train_x, train_y = torch.from_numpy(train_x.copy()), torch.from_numpy(train_y).long()
    test_x = _normalize(torch.from_numpy(test_x.copy()), mean, std)
    test_y = torch.from_numpy(test_y).long()

    model = torch_model(len(jcnn.data.class_names(DATASET)), train_x.shape[-1])
    model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model
    o, batch, eval_batch = config["optim"], d["batch_size"], config["eval_batch_size"]
    steps = len(train_y) // batch
    big = {id(p) for p in decayed(model)}
    opt = torch.optim.SGD(
        [
            {"params": decayed(model), "weight_decay": o["weight_decay"]},
            {"params": [p for p in model.parameters() if id(p) not in big], "weight_decay": 0.0},
        ],
        lr=o["lr"],
        momentum=o["momentum"],
        nesterov=o["nesterov"],
    )
    lr_at = schedule_of(config, steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_at(t) / o["lr"])
    metrics = (workdir / "metrics.jsonl").open("a")
    step = 0
    for epoch in range(1, config["num_epochs"] + 1):
        model.train()
        perm = torch.randperm(len(train_y), generator=gen)
        for b in range(steps):
            idx = perm[b * batch : (b + 1) * batch]
            x = _normalize(augment(train_x[idx], d["augment"], d["crop_padding"], gen), mean, std)
            loss = F.cross_entropy(
                forward(x), train_y[idx], label_smoothing=config["label_smoothing"]
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        model.eval()
        correct, loss_sum = 0, 0.0
        with torch.inference_mode():
            for i in range(0, len(test_y), eval_batch):
                x, y = test_x[i : i + eval_batch], test_y[i : i + eval_batch]
                logits = forward(x)
                if config["flip_tta"]:
                    logits = 0.5 * (logits + forward(x.flip(3)))
                correct += int((logits.argmax(1) == y).sum())
                loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        n = len(test_y)
        record = {
            "step": step,
            "epoch": epoch,
            "test_accuracy": correct / n,
            "test_loss": loss_sum / n,
        }
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}
        torch.save(state, workdir / "checkpoint.pt")  # as jcnn train checkpoints each epoch
    metrics.close()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "decayed_params": sum(p.numel() for p in decayed(model)),
        "data_s": data_s,
        "threads": torch.get_num_threads(),
    }


# --- the parent -----------------------------------------------------------------


def make_config(overrides) -> dict:
    """The validated default config with ``--config.*`` `overrides`, as `jcnn train` builds it."""
    from jcnn import cli, configs

    config = configs.validate(cli.apply_overrides(configs.get("default"), list(overrides)))
    return json.loads(config.to_json())


def jcnn_param_counts() -> tuple[int, int]:
    """cnn_small's parameters (`jcnn.summary`) and how many of them weight decay reaches."""
    import jax
    import jax.numpy as jnp

    from jcnn import models, optim, summary

    model = models.create("cnn_small", num_classes=10)
    total = summary.summarize(model, (28, 28, 1)).total_params
    params = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)
    )
    mask = optim.default_decay_mask(params["params"])
    leaves = zip(jax.tree.leaves(params["params"]), jax.tree.leaves(mask), strict=True)
    return total, sum(int(p.size) for p, m in leaves if m)


def _read_evals(path: Path, offset: int, evals: list, now: float) -> int:
    """Appends the complete eval lines of `path` after byte `offset`, stamped `now`."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            chunk = f.read()
    except FileNotFoundError:
        return offset
    done = chunk.rfind(b"\n") + 1
    for line in chunk[:done].decode().splitlines():
        record = json.loads(line)
        if "test_accuracy" in record:
            evals.append(
                {"epoch": record["epoch"], "test_accuracy": record["test_accuracy"], "t_s": now}
            )
    return offset + done


def timed_run(argv, env: dict, workdir: Path) -> dict:
    """Runs `argv`, stamping the eval lines of ``workdir/metrics.jsonl`` as they appear."""
    evals, offset = [], 0
    out, err = (workdir.parent / f"{workdir.name}.{s}" for s in ("stdout", "stderr"))
    with out.open("w") as fout, err.open("w") as ferr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=fout, stderr=ferr, env=env, cwd=ROOT)
        while True:
            finished = proc.poll() is not None
            now = time.perf_counter() - t0
            offset = _read_evals(workdir / "metrics.jsonl", offset, evals, now)
            if finished:
                break
            time.sleep(POLL_S)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed:\n{err.read_text()[-4000:]}")
    lines = out.read_text().strip().splitlines()
    return {"evals": evals, "total_s": now, "last_line": json.loads(lines[-1]) if lines else {}}


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JCNN_KEEP_XLA_FLAGS")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return {**env, **extra}


def run_one(name: str, config: dict, overrides, root: Path, threads: int) -> dict:
    workdir = root / name
    workdir.mkdir()  # a fresh workdir: jcnn train resumes from an existing one
    loadavg = H.loadavg()
    if name == "jcnn":
        script = Path(sys.executable).parent / "jcnn"
        cli = (
            [str(script)]
            if script.exists()
            else [sys.executable, "-c", "import sys; from jcnn.cli import main; sys.exit(main())"]
        )
        argv = [*cli, "train", "--config=default", f"--workdir={workdir}", *overrides]
        result = timed_run(argv, _clean_env(), workdir)
        ran = json.loads((workdir / "config.json").read_text())
        if ran != config:
            raise RuntimeError(f"jcnn train ran another config than the torch script's:\n{ran}")
    else:
        (workdir / "config.json").write_text(json.dumps(config, indent=2))
        argv = [
            sys.executable,
            __file__,
            "--child",
            name,
            f"--workdir={workdir}",
            f"--threads={threads}",
        ]
        cache = tempfile.mkdtemp(prefix="jcnn-tta-inductor-")  # cold compile
        result = timed_run(argv, _clean_env(TORCHINDUCTOR_CACHE_DIR=cache), workdir)
        shutil.rmtree(cache, ignore_errors=True)
    result["loadavg_before"] = loadavg
    return result


def summarize_run(name: str, result: dict, target: float, params: int, decayed: int) -> dict:
    evals = result["evals"]
    hit = next((e for e in evals if e["test_accuracy"] >= target), None)
    return {
        "run": name,
        "params": params,
        "decayed_params": decayed,
        "time_to_target_s": hit["t_s"] if hit else None,
        "target_epoch": hit["epoch"] if hit else None,
        "final_accuracy": evals[-1]["test_accuracy"] if evals else None,
        "total_s": result["total_s"],
        "evals": evals,
        "loadavg_before": result["loadavg_before"],
        **{k: v for k, v in result["last_line"].items() if k in ("data_s", "threads")},
    }


def report(rows: list[dict], target: float, command: str, extra: dict) -> str:
    table = H.markdown_table(
        [
            "run",
            "params",
            f"time to {100 * target:g}% (s)",
            "at epoch",
            "final acc",
            "total (s)",
            "acc per epoch",
        ],
        [
            (
                r["run"],
                f"{r['params']:,}",
                "not reached" if r["time_to_target_s"] is None else r["time_to_target_s"],
                r["target_epoch"] or "-",
                f"{r['final_accuracy']:.4f}",
                r["total_s"],
                " ".join(f"{e['test_accuracy']:.4f}" for e in r["evals"]),
            )
            for r in rows
        ],
    )
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": H.cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "versions": H.versions(),
        "target": target,
        **extra,
        "loadavg_end": H.loadavg(),
        "runs": rows,
    }
    times = {r["run"]: r["time_to_target_s"] for r in rows}
    lines = [H.header(command), "", table, ""]
    if times.get("jcnn") and times.get("torch"):
        record["torch_over_jcnn"] = times["torch"] / times["jcnn"]
        lines.append(f"torch / jcnn time to target: {record['torch_over_jcnn']:.2f}x\n")
    return "\n".join([*lines, json.dumps(record)])


def run(*, target, epochs, only, use_compile, quick, threads, workdir, command="") -> str:
    """Runs the variants and returns the report (header, table, JSON line last)."""
    overrides = [*QUICK_OVERRIDES] if quick else []
    if epochs != make_config(overrides)["num_epochs"]:
        overrides.append(f"--config.num_epochs={epochs}")
    config = make_config(overrides)
    jcnn_params, jcnn_decayed = jcnn_param_counts()
    names = [
        n
        for n in RUNS
        if (only in (None, n.split(".")[0])) and (use_compile or n != "torch.compile")
    ]
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="jcnn-tta-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name in names:
            result = run_one(name, config, overrides, root, threads)
            counts = (jcnn_params, jcnn_decayed)
            if name != "jcnn":
                got = result["last_line"]
                counts = (got["params"], got["decayed_params"])
                if counts != (jcnn_params, jcnn_decayed):
                    raise RuntimeError(
                        f"{name}: {counts[0]:,} parameters ({counts[1]:,} decayed), "
                        f"jcnn's cnn_small {jcnn_params:,} ({jcnn_decayed:,})."
                    )
            rows.append(summarize_run(name, result, target, *counts))
    finally:
        if not workdir:
            shutil.rmtree(root, ignore_errors=True)
    extra = {"epochs": epochs, "quick": quick, "torch_threads": threads, "overrides": overrides}
    return report(rows, target, command, extra)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--target", type=float, default=None, help="test accuracy (default 0.92; 0.5 with --quick)"
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs (default: the config's 5; 1 with --quick)"
    )
    p.add_argument("--only", choices=("jcnn", "torch"), default=None)
    p.add_argument("--compile", action="store_true", help="also run the torch.compile variant")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--workdir", default=None, help="keep the runs here (default: a temp dir)")
    p.add_argument("--quick", action="store_true", help="seconds: 1 epoch of 1,024 images")
    p.add_argument("--child", choices=RUNS[1:], help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.child:
        info = torch_child(Path(args.workdir), args.threads, args.child == "torch.compile")
        import torch

        print(json.dumps({**info, "torch": torch.__version__}))
        return 0
    target = args.target if args.target is not None else (QUICK_TARGET if args.quick else 0.92)
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 5)
    if not 0.0 < target <= 1.0 or epochs < 1 or args.threads < 1:
        p.error("--target must be in (0, 1], --epochs and --threads >= 1")
    print(
        run(
            target=target,
            epochs=epochs,
            only=args.only,
            use_compile=args.compile,
            quick=args.quick,
            threads=args.threads,
            workdir=args.workdir,
            command=" ".join(["python benchmarks/time_to_accuracy.py", *argv]),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
