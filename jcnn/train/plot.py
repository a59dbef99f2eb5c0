"""Training curves of one run as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path) -> tuple[list[dict], list[dict]]:
    """``(train_lines, eval_lines)`` of a ``metrics.jsonl``."""
    train, evals = [], []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            (evals if "test_accuracy" in record else train).append(record)
    return train, evals


def plot_curves(metrics_path, out_path) -> Path:
    """Plots train loss, train/test accuracy and the learning rate against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = read_metrics(metrics_path)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    epochs = [r["epoch"] for r in train]
    axes[0].plot(epochs, [r["train_loss"] for r in train], label="train loss")
    if evals:
        axes[0].plot(
            [r["epoch"] for r in evals], [r["test_loss"] for r in evals], "o-", label="test loss"
        )
    axes[0].set_xlabel("epoch")
    axes[0].legend()
    axes[1].plot(epochs, [r["train_accuracy"] for r in train], label="train (augmented)")
    if evals:
        axes[1].plot(
            [r["epoch"] for r in evals],
            [r["test_accuracy"] for r in evals],
            "o-",
            label=f"test (final {evals[-1]['test_accuracy']:.4f})",
        )
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel("accuracy")
    axes[1].legend()
    axes[2].plot(epochs, [r["lr"] for r in train])
    axes[2].set_yscale("log")
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("learning rate")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
