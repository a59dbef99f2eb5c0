"""Data: real datasets read offline, jittable augmentation, deterministic batches.

`load(name, split)` gives ``(images uint8 NHWC, labels int32)`` for
``"fashion_mnist"`` and ``"digits"`` (see `jcnn.data.datasets`); the
augmentations are functions of a PRNG key run on the device
(`jcnn.data.augment`); the epoch order is a pure function of
``(seed, epoch)`` so that a resumed run sees the same batches
(`jcnn.data.pipeline`).
"""

# --- datasets ---
from jcnn.data.datasets import FALLBACK_SETTINGS as FALLBACK_SETTINGS
from jcnn.data.datasets import DatasetCorruptError as DatasetCorruptError
from jcnn.data.datasets import DatasetFallbackWarning as DatasetFallbackWarning
from jcnn.data.datasets import DatasetNotFoundError as DatasetNotFoundError
from jcnn.data.datasets import available as available
from jcnn.data.datasets import class_names as class_names
from jcnn.data.datasets import fashion_mnist_search_dirs as fashion_mnist_search_dirs
from jcnn.data.datasets import find_fashion_mnist as find_fashion_mnist
from jcnn.data.datasets import load as load
from jcnn.data.datasets import pixel_stats as pixel_stats
from jcnn.data.datasets import read_idx as read_idx
from jcnn.data.datasets import resolve_dataset as resolve_dataset

# --- augmentation ---
# isort: split
from jcnn.data.augment import OPS as OPS
from jcnn.data.augment import augment_batch as augment_batch
from jcnn.data.augment import cutout as cutout
from jcnn.data.augment import normalize as normalize
from jcnn.data.augment import per_example as per_example
from jcnn.data.augment import random_crop as random_crop
from jcnn.data.augment import random_flip as random_flip

# --- pipeline ---
# isort: split
from jcnn.data.pipeline import DeviceData as DeviceData
from jcnn.data.pipeline import batch_indices as batch_indices
from jcnn.data.pipeline import epoch_permutation as epoch_permutation
from jcnn.data.pipeline import eval_batches as eval_batches
from jcnn.data.pipeline import eval_indices as eval_indices
from jcnn.data.pipeline import step_position as step_position
from jcnn.data.pipeline import steps_per_epoch as steps_per_epoch
from jcnn.data.pipeline import take as take
from jcnn.data.pipeline import to_device as to_device
from jcnn.data.pipeline import train_batches as train_batches
