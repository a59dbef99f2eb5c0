"""The learning-rate schedule of a training config, as it will run."""

from __future__ import annotations

import numpy as np

from jcnn.viz._figure import new_figure, save


def plot_schedule(config, out, *, figsize=(10.0, 3.8), dpi: int = 100):
    """The rate of every step of `config` (a name such as ``"default:smoke"``,
    a path, or a ConfigDict) against the epoch, linear (left) and log
    (right), with the warmup end and the peak marked. The step count comes
    from the config's dataset, as `jcnn.train.fit` computes it. Returns the
    PNG path.
    """
    from jcnn import configs, optim
    from jcnn.train.loop import build

    if isinstance(config, str):
        config = configs.get(config)
    run = build(config, quiet=True)
    c, spe = run.config, run.steps_per_epoch
    report = optim.check_schedule_config(c.optim, steps_per_epoch=spe, num_epochs=c.num_epochs)
    schedule = optim.make_schedule(c.optim, steps_per_epoch=spe, num_epochs=c.num_epochs)
    steps = np.arange(run.total_steps)
    lr = np.asarray([float(schedule(int(t))) for t in steps])
    epochs = steps / spe
    fig = new_figure(figsize, dpi, "plot_schedule")
    axes = fig.subplots(1, 2)
    for ax, scale in zip(axes, ("linear", "log"), strict=True):
        ax.plot(epochs, lr, lw=1.5)
        ax.set_yscale(scale)
        ax.axvline(report.peak_step / spe, color="tab:red", lw=0.8, ls="--", label="peak")
        if report.warmup_steps:
            ax.axvspan(0, report.warmup_steps / spe, color="tab:orange", alpha=0.15, label="warmup")
        ax.set_xlabel(f"epoch ({spe} steps each)")
        ax.set_ylabel("learning rate")
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize="small")
    fig.suptitle(report.describe(), fontsize="small")
    return save(fig, out)
