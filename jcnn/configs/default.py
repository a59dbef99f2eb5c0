"""The `make train` job: a small BatchNorm CNN on Fashion-MNIST.

``jcnn train --config=default --workdir=runs/default`` reaches 92.41% test
accuracy in 327 s from launch to exit on 2 CPU cores (jax 0.10.2, 2026-12-01,
`python benchmarks/time_to_accuracy.py`). See the README's results table.
"""

from __future__ import annotations

import ml_collections

from jcnn.configs._base import base, sgd_nesterov_warmup_cosine


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    c = base()
    c.model = ml_collections.ConfigDict({"name": "cnn_small"})
    c.data.batch_size = 128
    c.data.augment = ("crop", "flip")
    c.data.crop_padding = 2
    c.optim = sgd_nesterov_warmup_cosine(lr=0.05, final_lr=5e-5)
    c.num_epochs = 5
    c.label_smoothing = 0.1
    c.flip_tta = True
    if arg == "smoke":
        # Seconds on 2 CPU cores: 2 epochs of 512 real images (32 steps).
        c.num_epochs = 2
        c.data.train_subset, c.data.test_subset = 512, 500
        c.data.batch_size = 32
        c.optim.warmup_epochs = 0.25
        c.optim.lr = 0.01
        c.log_every_steps = 8
    elif arg:
        raise ValueError(f"default config: unknown variant {arg!r}; expected '' or 'smoke'.")
    return c
