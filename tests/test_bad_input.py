"""Bad input across the public surface: one table of invalid calls, each pinned to its error.

Every row must raise ValueError or TypeError from one of jcnn's own checks (the
raising frame is in the `jcnn` package: never XLA, Flax, ml_collections or a
KeyError/AttributeError on the way), with a message matching the row's regex,
which names the function, the argument, the value received and what was
expected. Nothing compiles: module and model calls are traced with
`jax.eval_shape` on tiny inputs, and the checks run before any array work.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jcnn
import jcnn.functional as F
from jcnn import cli, configs, data, init, models, optim, summary, train
from jcnn import nn as jnn
from jcnn.train.checkpoint import Checkpointer

JCNN_DIR = Path(jcnn.__file__).resolve().parent
K = jax.random.key(0)
X4 = jnp.ones((1, 4, 4, 3))
X2 = jnp.ones((2, 3))
KERNEL = jnp.ones((3, 3, 3, 2))
IMAGE = jnp.ones((4, 4, 1), jnp.uint8)
STATS = (jnp.ones(3), jnp.zeros(3), jnp.zeros(3), jnp.ones(3))  # scale, bias, mean, var
SCHEDULE = {"steps_per_epoch": 10, "num_epochs": 2}  # 20 steps


def trace_init(module, x, **kwargs):
    """`module.init` traced, not run: the shape and argument checks fire, nothing compiles."""
    return jax.eval_shape(lambda: module.init({"params": K, "dropout": K}, x, **kwargs))


def trace_apply_without_rngs(module, x):
    abstract = trace_init(module, x, train=False)
    return jax.eval_shape(lambda v: module.apply(v, x, train=True), abstract)


def make_optimizer(**cfg):
    return optim.make_optimizer(cfg, **SCHEDULE)


def make_schedule(**cfg):
    return optim.make_schedule({"lr": 0.1, **cfg}, **SCHEDULE)


def cnn(**overrides):
    return models.create("cnn_small", num_classes=10, **overrides)


# (id, call, error type, regex of the message[, mark]) per surface of the public API
SURFACES = {
    "functional": [
        # A representative set; tests/functional pins many more.
        ("conv2d-x-ndim", lambda: F.conv2d(jnp.ones((4, 4, 3)), KERNEL), ValueError,
         r"conv2d: `x` must be NHWC \(4-D\), got shape \(4, 4, 3\)"),
        ("conv2d-channels", lambda: F.conv2d(X4, jnp.ones((3, 3, 2, 2))), ValueError,
         r"conv2d: `x` has 3 channels but `kernel` of shape \(3, 3, 2, 2\) with groups=1 "
         r"expects 2"),
        ("conv2d-stride", lambda: F.conv2d(X4, KERNEL, stride=0), ValueError,
         r"conv2d: `stride` must be an int >= 1, got 0"),
        ("conv2d-padding-name", lambda: F.conv2d(X4, KERNEL, padding="full"), ValueError,
         r"conv2d: unknown `padding` 'full'; expected one of "
         r"\('SAME', 'VALID', 'SAME_SYMMETRIC'\)"),
        ("conv2d-padding-type", lambda: F.conv2d(X4, KERNEL, padding=None), TypeError,
         r"conv2d: `padding` must be one of \('SAME', .*\), an int, a pair .*, got None"),
        ("conv2d-kernel-too-big", lambda: F.conv2d(X4, jnp.ones((5, 5, 3, 2)), padding="VALID"),
         ValueError, r"conv2d: the dilated kernel \(5 along H\) is larger than the padded input "
         r"\(4 \+ 0 \+ 0 = 4\)"),
        ("conv2d-int-dtype", lambda: F.conv2d(X4.astype(jnp.int32), KERNEL), TypeError,
         r"conv2d: `x` must have a floating-point dtype, got int32"),
        ("conv2d-bias", lambda: F.conv2d(X4, KERNEL, jnp.ones(3)), ValueError,
         r"conv2d: `bias` must have shape \(2,\), got \(3,\)"),
        ("max_pool2d-window", lambda: F.max_pool2d(X4, 5), ValueError,
         r"max_pool2d: `window` \(5 along H\) is larger than the padded input \(4 \+ 0 \+ 0 = 4\)"),
        ("avg_pool2d-stride", lambda: F.avg_pool2d(X4, 2, stride=1.5), TypeError,
         r"avg_pool2d: `stride` must be an int or a pair of ints \(h, w\), got 1\.5"),
        ("avg_pool2d-count_include_pad",
         lambda: F.avg_pool2d(X4, 2, count_include_pad="yes"), TypeError,
         r"avg_pool2d: `count_include_pad` must be a bool, got 'yes'"),
        ("adaptive_avg_pool2d-size", lambda: F.adaptive_avg_pool2d(X4, 0), ValueError,
         r"adaptive_avg_pool2d: `output_size` must be an int >= 1, got 0"),
        ("global_avg_pool-ndim", lambda: F.global_avg_pool(X2), ValueError,
         r"global_avg_pool: `x` must be NHWC \(4-D\), got shape \(2, 3\)"),
        ("leaky_relu-slope", lambda: F.leaky_relu(X2, "a"), TypeError,
         r"leaky_relu: `negative_slope` must be a Python float, got 'a'"),
        ("prelu-slope", lambda: F.prelu(X4, jnp.ones(2)), ValueError,
         r"prelu: `slope` must have shape \(\), \(1,\) or \(3,\) .*got shape \(2,\)"),
        ("maxout-pieces", lambda: F.maxout(X4, 2), ValueError,
         r"maxout: `num_pieces`=2 must divide the 3 channels of `x`"),
        ("dense-features", lambda: F.dense(X2, jnp.ones((4, 5))), ValueError,
         r"dense: `x` of shape \(2, 3\) has 3 features but `kernel` of shape \(4, 5\) expects 4"),
        ("flatten-ndim", lambda: F.flatten(jnp.ones(())), ValueError,
         r"flatten: `x` must have a batch axis and at least one feature axis .*got shape \(\)"),
        ("dropout-rate", lambda: F.dropout(K, X2, 1.0), ValueError,
         r"dropout: `rate` must be in \[0, 1\) \(the drop probability\), got 1\.0"),
        ("dropout-key-int", lambda: F.dropout(0, X2, 0.5), TypeError,
         r"dropout: `key` must be a PRNG key such as jax\.random\.key\(0\), got 0\."),
        ("dropout-key-array", lambda: F.dropout(jax.random.split(K, 2), X2, 0.5), ValueError,
         r"dropout: `key` must be a single PRNG key, got a key array of shape \(2,\)"),
        ("dropconnect-key-float", lambda: F.dropconnect(jnp.ones(2), jnp.ones((3, 2)), 0.5),
         TypeError, r"dropconnect: `key` must be a PRNG key .*got an array of shape \(2,\) and "
         r"dtype float32"),
        ("dropblock-block_size", lambda: F.dropblock(K, X4, 0.1, block_size=0), ValueError,
         r"dropblock: `block_size` must be an int >= 1, got 0"),
        ("disout-alpha", lambda: F.disout(K, X4, 0.1, block_size=2, alpha=-1.0), ValueError,
         r"disout: `alpha` must be >= 0 \(the distortion intensity\), got -1\.0"),
        ("disout-key", lambda: F.disout("key", X4, 0.1, block_size=2, alpha=1.0), TypeError,
         r"disout: `key` must be a PRNG key .*got 'key'"),
        ("batch_norm-scale", lambda: F.batch_norm(X4, jnp.ones(2), *STATS[1:], train=True),
         ValueError, r"batch_norm: `scale` must have shape \(3,\) "
         r"\(one value per channel of `x`\), got shape \(2,\)"),
        ("batch_norm-momentum", lambda: F.batch_norm(X4, *STATS, train=True, momentum=1.5),
         ValueError, r"batch_norm: `momentum` must be in \[0, 1\], got 1\.5"),
        ("batch_norm-train", lambda: F.batch_norm(X4, *STATS, train=None), TypeError,
         r"batch_norm: `train` must be a Python bool .*got None"),
        ("batch_norm-axis_name", lambda: F.batch_norm(X4, *STATS, train=True, axis_name=3),
         TypeError, r"batch_norm: `axis_name` must be None, a mesh/pmap axis name \(str\) .*got 3"),
        ("group_norm-groups", lambda: F.group_norm(X4, *STATS[:2], num_groups=2), ValueError,
         r"group_norm: `num_groups`=2 must divide the number of channels of `x`, got C=3"),
        ("conv_output_size-n", lambda: F.conv_output_size("4", 3), TypeError,
         r"conv_output_size: `n` must be an int, got '4' \(str\)"),
        ("receptive_field-layer", lambda: F.receptive_field([(3,)]), TypeError,
         r"receptive_field: `layers\[0\]` must be \(kernel, stride\) or \(kernel, stride, "
         r"dilation\) ints, got \(3,\)"),
    ],
    "nn": [
        ("Conv2d-features", lambda: trace_init(jnn.Conv2d(0), X4), ValueError,
         r"Conv2d: `features` must be an int >= 1, got 0"),
        ("Conv2d-x-ndim", lambda: trace_init(jnn.Conv2d(2), jnp.ones((4, 4, 3))), ValueError,
         r"Conv2d: `x` must be NHWC \(4-D\), got shape \(4, 4, 3\)"),
        ("Conv2d-groups", lambda: trace_init(jnn.Conv2d(4, groups=2), X4), ValueError,
         r"Conv2d: `groups`=2 must divide the 3 input channels and `features`=4"),
        ("Conv2d-kernel_size", lambda: trace_init(jnn.Conv2d(2, kernel_size="3"), X4), TypeError,
         r"Conv2d: `kernel_size` must be an int or a pair of ints \(h, w\), got '3'"),
        ("Conv2d-kernel_init", lambda: trace_init(jnn.Conv2d(2, kernel_init="he_normal"), X4),
         TypeError, r"Conv2d: `kernel_init` must be an initialiser \(key, shape, dtype\) -> array "
         r".*got 'he_normal'"),
        ("Conv2d-dtype", lambda: trace_init(jnn.Conv2d(2, dtype="float8"), X4), TypeError,
         r"Conv2d: `dtype` \(the compute dtype\) must be None or a floating dtype .*got 'float8'"),
        ("Conv2d-param_dtype", lambda: trace_init(jnn.Conv2d(2, param_dtype=jnp.int32), X4),
         TypeError, r"he_normal: `dtype` must have a floating-point dtype, got int32"),
        ("Dense-features", lambda: trace_init(jnn.Dense(2.5), X2), TypeError,
         r"Dense: `features` must be an int, got 2\.5 \(float\)"),
        ("Dense-bias_init", lambda: trace_init(jnn.Dense(2, bias_init=0.0), X2), TypeError,
         r"Dense: `bias_init` must be an initialiser .*got 0\.0"),
        ("BatchNorm-train", lambda: trace_init(jnn.BatchNorm(), X4, train=1), TypeError,
         r"BatchNorm: `train` must be a Python bool, got 1 \(int\)"),
        ("BatchNorm-momentum", lambda: trace_init(jnn.BatchNorm(momentum=2.0), X4, train=True),
         ValueError, r"batch_norm: `momentum` must be in \[0, 1\], got 2\.0"),
        ("BatchNorm-scale_init", lambda: trace_init(jnn.BatchNorm(scale_init=1.0), X4, train=True),
         TypeError, r"BatchNorm: `scale_init` must be an initialiser .*got 1\.0"),
        ("GroupNorm-groups", lambda: trace_init(jnn.GroupNorm(num_groups=0), X4), ValueError,
         r"GroupNorm: `num_groups` must be an int >= 1, got 0"),
        ("LayerNorm-ndim", lambda: trace_init(jnn.LayerNorm(), jnp.ones(3)), ValueError,
         r"LayerNorm: `x` must have a batch and a channel axis \(ndim >= 2\), got shape \(3,\)"),
        ("InstanceNorm-ndim", lambda: trace_init(jnn.InstanceNorm(), X2), ValueError,
         r"instance_norm: `x` must be NHWC \(4-D\), got shape \(2, 3\)"),
        ("Dropout-rate", lambda: trace_init(jnn.Dropout(1.5), X2, train=True), ValueError,
         r"Dropout: `rate` must be in \[0, 1\) \(the drop probability\), got 1\.5"),
        ("Dropout-no-rngs", lambda: trace_apply_without_rngs(jnn.Dropout(0.5), X2), ValueError,
         r"Dropout needs PRNG for \"dropout\": train=True with rate=0\.5 draws a random mask; "
         r"pass rngs=\{'dropout': key\} to apply"),
        ("DropConnectConv2d-no-rngs",
         lambda: trace_apply_without_rngs(jnn.DropConnectConv2d(2, rate=0.25), X4), ValueError,
         r"DropConnectConv2d needs PRNG for \"dropout\": train=True with rate=0\.25"),
        ("DropConnectDense-rate", lambda: trace_init(jnn.DropConnectDense(2, rate=1.0), X2,
         train=True), ValueError, r"DropConnectDense: `rate` must be in \[0, 1\).*got 1\.0"),
        ("DropBlock-train", lambda: trace_init(jnn.DropBlock(0.1, 2), X4, train="no"), TypeError,
         r"DropBlock: `train` must be a Python bool \(True while training\), got 'no'"),
        ("Disout-block_size", lambda: trace_init(jnn.Disout(0.1, 0), X4, train=True), ValueError,
         r"Disout: `block_size` must be an int >= 1, got 0"),
        ("PReLU-ndim", lambda: trace_init(jnn.PReLU(), jnp.ones(())), ValueError,
         r"PReLU: `x` must have a channel axis, got shape \(\)"),
        ("PReLU-slope_init", lambda: trace_init(jnn.PReLU(slope_init="a"), X4), TypeError,
         r"PReLU: the initial value must be a Python float \(`slope_init`\), got 'a'"),
        ("Maxout-pieces", lambda: trace_init(jnn.Maxout(0), X4), ValueError,
         r"Maxout: `num_pieces` must be an int >= 1, got 0"),
        ("MaxPool2d-window", lambda: trace_init(jnn.MaxPool2d(0), X4), ValueError,
         r"max_pool2d: `window` must be an int >= 1, got 0"),
        ("AdaptiveMaxPool2d-size", lambda: trace_init(jnn.AdaptiveMaxPool2d((1, 0)), X4),
         ValueError, r"adaptive_max_pool2d: `output_size` must be ints >= 1, got \(1, 0\)"),
        ("Sequential-empty", lambda: trace_init(jnn.Sequential([]), X4), ValueError,
         r"Sequential: `layers` must be a non-empty list, got \(\)"),
        ("Sequential-not-callable", lambda: trace_init(jnn.Sequential([1]), X4), TypeError,
         r"Sequential: `layers\[0\]` is not callable, got 1"),
        ("Flatten-ndim", lambda: trace_init(jnn.Flatten(), jnp.ones(3)), ValueError,
         r"flatten: `x` must have a batch axis .*got shape \(3,\)"),
    ],
    "models": [
        ("create-name", lambda: models.create("resnet", num_classes=10), ValueError,
         r"create: unknown model 'resnet'\. Did you mean 'resnet56' or 'resnet50' or 'resnet34'\? "
         r"Available: cnn_small, lenet5, "),
        ("create-name-type", lambda: models.create(5, num_classes=10), ValueError,
         r"create: unknown model 5\. Available: cnn_small"),
        ("create-num_classes", lambda: models.create("lenet5", num_classes=0), ValueError,
         r"create: `num_classes` must be an int >= 1, got 0"),
        ("create-num_classes-type", lambda: models.create("lenet5", num_classes=10.0), TypeError,
         r"create: `num_classes` must be an int, got 10\.0 \(float\)"),
        ("create-override", lambda: models.create("lenet5", num_classes=10, nrom="batch"),
         ValueError, r"create: unknown override\(s\) 'nrom' for model 'lenet5'; accepted: norm, "),
        ("create-norm", lambda: cnn(norm="batchnorm"), ValueError,
         r"models: `norm` must be one of \('batch', 'group', 'layer', 'instance', None\), "
         r"got 'batchnorm'\. Did you mean 'batch'\?"),
        ("create-activation", lambda: cnn(activation="gelu"), ValueError,
         r"models: `activation` must be one of \('sigmoid', .*'maxout'\), got 'gelu'\. "
         r"Did you mean"),
        ("create-regularizer", lambda: cnn(regularizer="drop"), ValueError,
         r"models: `regularizer` must be one of \('dropout', 'dropconnect', 'dropblock', "
         r"'dropblock_channel', 'disout', None\), "
         r"got 'drop'"),
        ("create-rate", lambda: cnn(regularizer="dropout", rate=1.0), ValueError,
         r"models: `rate` must be in \[0, 1\) \(the drop probability\), got 1\.0"),
        ("create-width", lambda: cnn(width=0), ValueError,
         r"create: `width` must be a number > 0 \(a multiplier\), got 0"),
        ("create-in_channels", lambda: cnn(in_channels=0), ValueError,
         r"create: `in_channels` must be an int >= 1, got 0"),
        ("create-kernel_init", lambda: cnn(kernel_init="glorot"), ValueError,
         r"models: `kernel_init` must be one of \('he_normal', .*\), got 'glorot'"),
        ("create-dtype", lambda: cnn(dtype="float8"), TypeError,
         r"create: `dtype` \(the compute dtype\) must be None or a floating dtype .*got 'float8'"),
        ("model-x-ndim", lambda: trace_init(cnn(), jnp.ones((28, 28, 1)), train=False), ValueError,
         r"SmallCNN: `x` must be NHWC \(4-D\), got shape \(28, 28, 1\)"),
        ("model-in_channels", lambda: trace_init(cnn(in_channels=1), jnp.ones((1, 8, 8, 3)),
         train=False), ValueError, r"SmallCNN: the model was created with in_channels=1 but `x` of "
         r"shape \(1, 8, 8, 3\) has 3 channels"),
        ("model-train", lambda: trace_init(cnn(), jnp.ones((1, 8, 8, 1)), train="yes"), TypeError,
         r"BatchNorm: `train` must be a Python bool, got 'yes' \(str\)"),
        ("model-input-too-small", lambda: trace_init(models.create("vgg11", num_classes=10),
         jnp.ones((1, 8, 8, 3)), train=False), ValueError,
         r"max_pool2d: `window` \(2 along H\) is larger than the padded input \(1 \+ 0 \+ 0 = 1\)"),
    ],
    "summary": [
        ("summarize-shape-len", lambda: summary.summarize(models.create("lenet5", num_classes=10),
         (28, 28)), ValueError, r"summarize: `input_shape` must be \(H, W, C\), three ints >= 1, "
         r"got \(28, 28\)"),
        ("summarize-shape-str", lambda: summary.summarize(models.create("lenet5", num_classes=10),
         "28,28,1"), ValueError, r"summarize: `input_shape` must be .*got '28,28,1'"),
        ("summarize-shape-float", lambda: summary.summarize(models.create("lenet5", num_classes=10),
         (28.0, 28, 1)), ValueError, r"summarize: `input_shape` must be .*got \(28\.0, 28, 1\)"),
        ("summarize-model", lambda: summary.summarize("lenet5", (28, 28, 1)), TypeError,
         r"summarize: `model` must be a flax\.linen\.Module, got 'lenet5'"),
        ("summarize-in_channels", lambda: summary.summarize(models.create("lenet5", num_classes=10,
         in_channels=3), (28, 28, 1)), ValueError,
         r"LeNet5: the model was created with in_channels=3 but `x` of shape \(1, 28, 28, 1\)"),
    ],
    "configs": [
        ("configs.get-name", lambda: configs.get("defualt"), ValueError,
         r"configs\.get: unknown config 'defualt'\. Did you mean 'default'\? Known: default, "),
        ("configs.get-type", lambda: configs.get(3), TypeError,
         r"configs\.get: expected a config name or path, got 3"),
        ("configs.get-file", lambda: configs.get("/nonexistent/cfg.py"), ValueError,
         r"configs\.get: config file '/nonexistent/cfg\.py' does not exist"),
        ("configs.get-variant", lambda: configs.get("default:smok"), ValueError,
         r"default config: unknown variant 'smok'; expected '' or 'smoke'"),
        ("validate-key", lambda: configs.validate({"num_epoch": 3}), ValueError,
         r"config: unknown key `num_epoch`\. Did you mean 'num_epochs'\?"),
        ("validate-nested-key", lambda: configs.validate({"data": {"batchsize": 3}}), ValueError,
         r"config: unknown key `data\.batchsize`\. Did you mean 'batch_size'\?"),
        ("validate-batch_size", lambda: configs.validate({"data": {"batch_size": 0}}), ValueError,
         r"config: `data\.batch_size` must be an int >= 1, got 0"),
        ("validate-dataset", lambda: configs.validate({"data": {"name": "mnist"}}), ValueError,
         r"config: `data\.name` must be one of \['fashion_mnist', 'digits'\], got 'mnist'"),
        ("validate-on_nonfinite", lambda: configs.validate({"on_nonfinite": "ignore"}),
         ValueError, r"config: `on_nonfinite` must be one of \('stop', 'skip'\), got 'ignore'"),
        ("validate-augment", lambda: configs.validate({"data": {"augment": ("crop", "rotate")}}),
         ValueError, r"config: `data\.augment` has unknown ops \['rotate'\]; expected some of "
         r"\('crop', 'flip', 'cutout'\)"),
        ("validate-label_smoothing", lambda: configs.validate({"label_smoothing": 1.0}), ValueError,
         r"config: `label_smoothing` must be in \[0, 1\), got 1\.0"),
        ("validate-type", lambda: configs.validate([1]), TypeError,
         r"config: expected a ConfigDict or dict, got list"),
        ("validate-keep", lambda: configs.validate({"checkpoint": {"keep": 0}}), ValueError,
         r"config: `checkpoint\.keep` must be an int >= 1, got 0"),
        ("validate-batch_size-float", lambda: configs.validate({"data": {"batch_size": 32.0}}),
         (ValueError, TypeError), r"config: `data\.batch_size` .*32\.0"),
        ("validate-crop_padding", lambda: configs.validate({"data": {"crop_padding": -1}}),
         ValueError, r"config: `data\.crop_padding` .*-1"),
        ("validate-train_subset", lambda: configs.validate({"data": {"train_subset": -5}}),
         ValueError, r"config: `data\.train_subset` .*-5"),
        ("validate-seed", lambda: configs.validate({"seed": "a"}), (ValueError, TypeError),
         r"config: `seed` .*'a'"),
    ],
    "data": [
        ("load-name", lambda: data.load("mnist", "train"), ValueError,
         r"load: unknown dataset 'mnist'; expected one of \['fashion_mnist', 'digits'\]"),
        ("load-split", lambda: data.load("digits", "val"), ValueError,
         r"load: unknown split 'val'; expected one of \['train', 'test'\]"),
        ("class_names-name", lambda: data.class_names("cifar10"), ValueError,
         r"class_names: unknown dataset 'cifar10'; expected one of"),
        ("random_crop-padding", lambda: data.random_crop(K, IMAGE, padding=-1), ValueError,
         r"random_crop: `padding` must be an int >= 0, got -1"),
        ("random_crop-ndim", lambda: data.random_crop(K, IMAGE[None], padding=1), ValueError,
         r"random_crop: `image` must be HWC \(3-D\), got shape \(1, 4, 4, 1\)"),
        ("random_flip-key", lambda: data.random_flip(0, IMAGE), TypeError,
         r"random_flip: `key` must be a PRNG key such as jax\.random\.key\(0\), got 0"),
        ("cutout-size", lambda: data.cutout(K, IMAGE, size=0), ValueError,
         r"cutout: `size` must be an int >= 1, got 0"),
        ("normalize-std", lambda: data.normalize(IMAGE, 0.5, 0.0), ValueError,
         r"normalize: `std` must be > 0, got 0\.0"),
        ("normalize-dtype", lambda: data.normalize(IMAGE.astype(jnp.float32), 0.5, 0.5), TypeError,
         r"normalize: `images` must be uint8 pixels in 0\.\.255, got dtype float32"),
        ("augment_batch-ops", lambda: data.augment_batch(K, IMAGE[None], ("rotate",)), ValueError,
         r"augment_batch: unknown ops \['rotate'\] in `ops`=\('rotate',\); expected "
         r"\('crop', 'flip', 'cutout'\)"),
        ("augment_batch-cutout", lambda: data.augment_batch(K, IMAGE[None], ("cutout",)),
         ValueError, r"augment_batch: `ops` contains 'cutout' but `cutout_size` is None"),
        ("steps_per_epoch-batch", lambda: data.steps_per_epoch(10, 20), ValueError,
         r"steps_per_epoch: `batch_size`=20 exceeds the 10 examples"),
        ("batch_indices-process", lambda: data.batch_indices(0, 0, 10, 4, process_index=2,
         process_count=2), ValueError,
         r"batch_indices: `process_index` must be in \[0, process_count=2\), got 2"),
        ("epoch_permutation-seed", lambda: data.epoch_permutation(-1, 0, 5), ValueError,
         r"epoch_permutation: `seed` must be an int in \[0, 2\*\*32\), got -1"),
        ("to_device-sizes", lambda: data.to_device(np.zeros((3, 4, 4, 1), np.uint8),
         np.zeros(2, np.int32)), ValueError,
         r"to_device: `images` \(3, 4, 4, 1\) and `labels` \(2,\) must have the same "
         r"leading size N"),
    ],
    "optim": [
        ("make_optimizer-name", lambda: make_optimizer(name="sgdd", lr=0.1), ValueError,
         r"make_optimizer: unknown optimizer 'sgdd'; valid: 'sgd', 'adam', 'adamw', 'lars'\. "
         r"Did you mean 'sgd'\?"),
        ("make_optimizer-key", lambda: make_optimizer(name="sgd", lrr=0.1), ValueError,
         r"make_optimizer: unknown config key 'lrr'\. Did you mean 'lr'\? Known keys: "),
        ("make_optimizer-lr", lambda: make_optimizer(name="sgd", lr=-0.1), ValueError,
         r"make_optimizer: `lr` must be in \(0, inf\), got -0\.1"),
        ("make_optimizer-lr-type", lambda: make_optimizer(name="sgd", lr="0.1"), TypeError,
         r"make_optimizer: `lr` must be a finite number, got '0\.1'"),
        ("make_optimizer-lr-missing", lambda: make_optimizer(name="sgd"), ValueError,
         r"make_optimizer: the config must set `lr`"),
        ("make_optimizer-momentum", lambda: make_optimizer(name="sgd", lr=0.1, momentum=1.5),
         ValueError, r"make_optimizer: `momentum` must be in \[0, 1\), got 1\.5"),
        ("make_optimizer-nesterov", lambda: make_optimizer(name="sgd", lr=0.1, nesterov=1),
         TypeError, r"make_optimizer: `nesterov` must be True or False, got 1"),
        ("make_optimizer-decay-mode", lambda: make_optimizer(name="sgd", lr=0.1, weight_decay=1e-4,
         weight_decay_mode="l3"), ValueError,
         r"make_optimizer: unknown weight_decay_mode 'l3'; valid: 'decoupled', 'l2'"),
        ("make_optimizer-cfg", lambda: optim.make_optimizer([1], **SCHEDULE), TypeError,
         r"make_optimizer: `cfg` must be an ml_collections\.ConfigDict or a Mapping .*got list"),
        ("make_optimizer-steps", lambda: optim.make_optimizer({"name": "sgd", "lr": 0.1},
         steps_per_epoch=0, num_epochs=1), ValueError,
         r"make_optimizer: `steps_per_epoch` must be an int >= 1, got 0"),
        ("make_optimizer-decay_mask", lambda: optim.make_optimizer({"name": "sgd", "lr": 0.1,
         "weight_decay": 1e-4}, **SCHEDULE, decay_mask=3), TypeError,
         r"make_optimizer: `decay_mask` must be a function params -> bool pytree, got 3"),
        ("make_schedule-name", lambda: make_schedule(schedule="cosin"), ValueError,
         r"make_schedule: unknown schedule 'cosin'; valid: .*Did you mean 'cosine'\?"),
        ("make_schedule-warmup", lambda: make_schedule(schedule="warmup_cosine", warmup_epochs=5),
         ValueError, r"make_schedule: the warmup \(50 steps\) must be shorter than training "
         r"\(20 steps\)"),
        ("make_schedule-boundaries", lambda: make_schedule(schedule="step", boundaries=[5, 3]),
         ValueError, r"make_schedule: `boundaries` must be strictly increasing, got \(5, 3\)"),
        ("make_schedule-final_lr", lambda: make_schedule(schedule="cosine", final_lr=1.0),
         ValueError, r"make_schedule: `final_lr` must be in \[0, 0\.1\], got 1\.0"),
        ("check_schedule-steps", lambda: optim.check_schedule(lambda s: 0.1, total_steps=0),
         ValueError, r"check_schedule: `total_steps` must be an int >= 1, got 0"),
    ],
    "init": [
        ("init-shape", lambda: init.he_normal()(K, (3, -1)), TypeError,
         r"he_normal: `shape` must be a tuple of ints >= 0, got \(3, -1\)"),
        ("init-dtype-int", lambda: init.he_normal()(K, (3, 3), jnp.int32), TypeError,
         r"he_normal: `dtype` must have a floating-point dtype, got int32"),
        ("init-dtype-name", lambda: init.ones(K, (2,), "float8"), TypeError,
         r"ones: `dtype` must be a floating-point array or dtype, got 'float8'"),
        ("init-mode", lambda: init.he_normal(mode="fan_avg2"), ValueError,
         r"he_normal: `mode` must be one of \('fan_in', 'fan_out', 'fan_avg'\), got 'fan_avg2'"),
        ("init-orthogonal-ndim", lambda: init.orthogonal()(K, (3,)), ValueError,
         r"orthogonal: `shape` must have at least 2 axes .*got shape \(3,\)"),
        ("init-key", lambda: init.he_normal()(3, (3, 3)), TypeError,
         r"he_normal: `key` must be a PRNG key such as jax\.random\.key\(0\), got 3"),
    ],
    "checkpoint": [
        ("Checkpointer-keep", lambda: Checkpointer("/nonexistent/ckpt", keep=0), ValueError,
         r"Checkpointer: `keep` must be an int >= 1, got 0"),
        ("Checkpointer-best_mode", lambda: Checkpointer("/nonexistent/ckpt", best_mode="best"),
         ValueError, r"Checkpointer: `best_mode` must be 'max' or 'min', got 'best'"),
        ("Checkpointer.save-metadata", lambda: Checkpointer("/nonexistent/ckpt").save(
         1, {"w": jnp.ones(2)}, metadata=[1]), TypeError,
         r"Checkpointer\.save: `metadata` must be a JSON-serialisable dict, got list"),
    ],
}  # fmt: skip
ROWS = [(f"{surface}/{row[0]}", *row[1:]) for surface, rows in SURFACES.items() for row in rows]


def test_the_table_spans_the_public_surface():
    assert len(ROWS) >= 60
    assert all(len(rows) >= 3 for rows in SURFACES.values())


def _params(rows):
    """pytest params from ``(id, *values)`` rows."""
    return [pytest.param(*row[1:], id=row[0]) for row in rows]


@pytest.mark.parametrize("call, error, match", _params(ROWS))
def test_bad_input_raises_a_clear_error_from_jcnn(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    raised_in = Path(info.traceback[-1].path).resolve()
    assert JCNN_DIR in raised_in.parents, f"raised in {raised_in}, not by a jcnn check"


# --- train.fit: a bad config fails before any training ---

DIGITS = {"name": "digits", "fallback": None, "batch_size": 32}
FIT_BASE = {"data": DIGITS, "num_epochs": 2, "progress": False}
FIT_CASES = [
    ("unknown-key", {**FIT_BASE, "num_epoch": 2}, ValueError,
     r"config: unknown key `num_epoch`\. Did you mean 'num_epochs'\?"),
    ("batch_size", {**FIT_BASE, "data": {**DIGITS, "batch_size": 0}}, ValueError,
     r"config: `data\.batch_size` must be an int >= 1, got 0"),
    ("batch_size-over-dataset", {**FIT_BASE, "data": {**DIGITS, "batch_size": 5000}},
     ValueError, r"config: `data\.batch_size`=5000 exceeds the 1,437 training images of "
     r"'digits'; a run trains on full batches only"),
    ("model-name", {**FIT_BASE, "model": {"name": "resnet"}}, ValueError,
     r"create: unknown model 'resnet'\. Did you mean"),
    ("model-override", {**FIT_BASE, "model": {"name": "cnn_small", "nrom": "batch"}},
     ValueError, r"create: unknown override\(s\) 'nrom' for model 'cnn_small'"),
    ("optim-key", {**FIT_BASE, "optim": {"name": "sgd", "lrr": 0.1}}, ValueError,
     r"make_optimizer: unknown config key 'lrr'\. Did you mean 'lr'\?"),
    ("not-a-config", [1], TypeError, r"config: expected a ConfigDict or dict, got list"),
]  # fmt: skip


@pytest.mark.parametrize("config, error, match", _params(FIT_CASES))
def test_fit_rejects_a_bad_config_before_training(tmp_path, config, error, match):
    with pytest.raises(error, match=match) as info:
        train.fit(config, tmp_path / "run")
    assert JCNN_DIR in Path(info.traceback[-1].path).resolve().parents
    # Nothing of a run was written: not even its directory.
    assert not (tmp_path / "run").exists()


# --- the jcnn command: status 2, one line on stderr, a traceback only with --debug ---

WORK = "--workdir={workdir}"  # a fresh directory under tmp_path
CLI_CASES = [
    ("train-config", ["train", "--config=defualt", WORK],
     r"jcnn train: error: configs\.get: unknown config 'defualt'\. Did you mean 'default'\?"),
    ("train-variant", ["train", "--config=default:smok", WORK],
     r"jcnn train: error: default config: unknown variant 'smok'"),
    ("train-override-key", ["train", "--config=default", WORK, "--config.data.batchsize=3"],
     r"jcnn train: error: config: unknown key `data\.batchsize`\. Did you mean 'batch_size'\?"),
    ("train-override-section", ["train", "--config=default", WORK, "--config.dat.batch_size=3"],
     r"jcnn train: error: unknown config key 'dat'\. Did you mean 'data'\?"),
    ("train-override-value", ["train", "--config=default", WORK, "--config.data.batch_size=0"],
     r"jcnn train: error: config: `data\.batch_size` must be an int >= 1, got 0"),
    ("train-model", ["train", "--config=default", WORK, "--config.data.name=digits",
     "--config.model.name=resnet"], r"jcnn train: error: create: unknown model 'resnet'"),
    ("train-optim-key", ["train", "--config=default", WORK, "--config.optim.lrr=0.1"],
     r"jcnn train: error: make_optimizer: unknown config key 'lrr'\. Did you mean 'lr'\?"),
    ("train-argument", ["train", "--config=default", WORK, "--lr=0.1"],
     r"jcnn train: error: unrecognised argument '--lr=0\.1'; overrides look like "),
    ("eval-workdir", ["eval", WORK],
     r"jcnn eval: error: evaluate: no run in .*run: .*run/config\.json does not exist"),
    ("eval-extra", ["eval", WORK, "extra"], r"jcnn eval: error: unrecognised arguments: extra"),
    ("summary-model", ["summary", "resnet", "--input-shape=32,32,3"],
     r"jcnn summary: error: create: unknown model 'resnet'"),
    ("summary-shape", ["summary", "resnet20", "--input-shape=32,32"],
     r"jcnn summary: error: --input-shape must be H,W,C positive ints, got '32,32'"),
    ("summary-classes", ["summary", "resnet20", "--input-shape=32,32,3", "--num-classes=0"],
     r"jcnn summary: error: create: `num_classes` must be an int >= 1, got 0"),
    ("train-override-type", ["train", "--config=default", WORK, "--config.data.batch_size=abc"],
     r"jcnn train: error: config: `data\.batch_size` must be an int like its default 128, "
     r"got 'abc' \(str\)"),
    ("train-batch-over-data", ["train", "--config=default", WORK, "--config.data.train_subset=64"],
     r"jcnn train: error: config: `data\.batch_size`=128 exceeds the 64 training images of "
     r"'(fashion_mnist|digits)' \(data\.train_subset=64\); a run trains on full batches only"),
    ("summary-channels-first", ["summary", "resnet20", "--input-shape=3,32,32"],
     r"jcnn summary: error: --input-shape is H,W,C \(channels last\), got '3,32,32', which "
     r"reads as C,H,W; .* pass 32,32,3"),
    ("viz-out-dir", ["viz", "activations", "--out={workdir}/missing/a.png"],
     r"jcnn viz: error: viz: cannot write `out`=.*/missing/a\.png': the directory "
     r".*/missing' does not exist"),
    ("train-missing-workdir", ["train", "--config=default"],
     r"jcnn train: error: the following arguments are required: --workdir"),
    ("summary-classes-type", ["summary", "resnet20", "--input-shape=32,32,3", "--num-classes=x"],
     r"jcnn summary: error: argument --num-classes: invalid int value: 'x'"),
]  # fmt: skip


@pytest.mark.parametrize("argv, match", _params(CLI_CASES))
def test_cli_reports_a_bad_command_in_one_line_with_status_2(tmp_path, capsys, argv, match):
    status = cli.main([a.format(workdir=tmp_path / "run") for a in argv])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(match, err), err


@pytest.mark.parametrize("where", ["first", "last"])
def test_cli_debug_raises_the_error_itself(where):
    argv = ["summary", "resnet", "--input-shape=32,32,3"]
    argv = ["--debug", *argv] if where == "first" else [*argv, "--debug"]
    with pytest.raises(ValueError, match=r"create: unknown model 'resnet'"):
        cli.main(argv)
