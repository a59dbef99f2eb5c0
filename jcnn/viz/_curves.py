"""Training curves of one or several runs, overlaid."""

from __future__ import annotations

from pathlib import Path

from jcnn.viz._figure import new_figure, save


def plot_training_curves(workdirs, out, *, figsize=(13.0, 3.8), dpi: int = 100):
    """Train loss, test accuracy and learning rate against the epoch for each
    run in `workdirs` (each holding a ``metrics.jsonl``), one colour per run,
    labelled by its directory name. Returns the PNG path."""
    from jcnn.train.plot import read_metrics

    fn = "plot_training_curves"
    workdirs = [Path(w) for w in ([workdirs] if isinstance(workdirs, str | Path) else workdirs)]
    if not workdirs:
        raise ValueError(f"{fn}: `workdirs` must name at least one run.")
    missing = [str(w) for w in workdirs if not (w / "metrics.jsonl").is_file()]
    if missing:
        raise FileNotFoundError(f"{fn}: no metrics.jsonl in {', '.join(missing)}.")
    names = [w.name for w in workdirs]
    if len(set(names)) < len(names):  # same last component: show the full paths
        names = [str(w) for w in workdirs]
    fig = new_figure(figsize, dpi, fn)
    ax_loss, ax_acc, ax_lr = fig.subplots(1, 3)
    for w, name in zip(workdirs, names, strict=True):
        train, evals = read_metrics(w / "metrics.jsonl")
        (line,) = ax_loss.plot(
            [r["epoch"] for r in train], [r["train_loss"] for r in train], label=name
        )
        color = line.get_color()
        if evals:
            ax_acc.plot(
                [r["epoch"] for r in evals],
                [r["test_accuracy"] for r in evals],
                "o-",
                color=color,
                label=f"{name} ({evals[-1]['test_accuracy']:.4f})",
            )
        ax_lr.plot([r["epoch"] for r in train], [r["lr"] for r in train], color=color)
    ax_loss.set_ylabel("train loss")
    ax_acc.set_ylabel("test accuracy")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_yscale("log")
    for ax in (ax_loss, ax_acc, ax_lr):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize="small")
    if ax_acc.lines:
        ax_acc.legend(fontsize="small")
    return save(fig, out)
