"""Flax linen layers: each owns its parameters and state and makes one call
into `jcnn.functional`.

Conventions: NHWC activations, HWIO kernels; `dtype` is the compute dtype and
`param_dtype` (float32) the storage dtype of every parametric layer; layers
that behave differently in training take an explicit ``train: bool``; random
layers draw from the ``"dropout"`` RNG collection; running statistics live in
``batch_stats``.
"""

# --- convolution and dense ---
# isort: split
from jcnn.nn._conv import Conv2d as Conv2d
from jcnn.nn._linear import Dense as Dense
from jcnn.nn._linear import Flatten as Flatten

# --- normalisation ---
# isort: split
from jcnn.nn._norm import BatchNorm as BatchNorm
from jcnn.nn._norm import GroupNorm as GroupNorm
from jcnn.nn._norm import InstanceNorm as InstanceNorm
from jcnn.nn._norm import LayerNorm as LayerNorm

# --- regularisation ---
# isort: split
from jcnn.nn._dropconnect import DropConnectConv2d as DropConnectConv2d
from jcnn.nn._dropconnect import DropConnectDense as DropConnectDense
from jcnn.nn._dropout import Disout as Disout
from jcnn.nn._dropout import DropBlock as DropBlock
from jcnn.nn._dropout import Dropout as Dropout

# --- activations ---
# isort: split
from jcnn.nn._activation import ELU as ELU
from jcnn.nn._activation import SELU as SELU
from jcnn.nn._activation import LeakyReLU as LeakyReLU
from jcnn.nn._activation import Maxout as Maxout
from jcnn.nn._activation import PReLU as PReLU
from jcnn.nn._activation import ReLU as ReLU
from jcnn.nn._activation import ReLU6 as ReLU6
from jcnn.nn._activation import Sigmoid as Sigmoid
from jcnn.nn._activation import Swish as Swish
from jcnn.nn._activation import Tanh as Tanh

# --- pooling ---
# isort: split
from jcnn.nn._pooling import AdaptiveAvgPool2d as AdaptiveAvgPool2d
from jcnn.nn._pooling import AdaptiveMaxPool2d as AdaptiveMaxPool2d
from jcnn.nn._pooling import AvgPool2d as AvgPool2d
from jcnn.nn._pooling import GlobalAvgPool as GlobalAvgPool
from jcnn.nn._pooling import MaxPool2d as MaxPool2d

# --- containers ---
# isort: split
from jcnn.nn._sequential import Sequential as Sequential
