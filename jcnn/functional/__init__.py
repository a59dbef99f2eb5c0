"""Pure functions of arrays: the numerical core of jcnn.

Layout is NHWC for activations and HWIO for kernels. No function here holds
state, draws hidden randomness or reads a global: parameters, running
statistics and PRNG keys are arguments, and new state is returned.
"""

# --- convolution ---
from jcnn.functional._conv import ReceptiveField as ReceptiveField
from jcnn.functional._conv import conv2d as conv2d
from jcnn.functional._conv import conv_output_size as conv_output_size
from jcnn.functional._conv import conv_param_count as conv_param_count
from jcnn.functional._conv import receptive_field as receptive_field

# --- pooling ---
from jcnn.functional._pooling import adaptive_avg_pool2d as adaptive_avg_pool2d
from jcnn.functional._pooling import adaptive_max_pool2d as adaptive_max_pool2d
from jcnn.functional._pooling import avg_pool2d as avg_pool2d
from jcnn.functional._pooling import global_avg_pool as global_avg_pool
from jcnn.functional._pooling import max_pool2d as max_pool2d

# --- activations ---
# isort: split
from jcnn.functional._activations import SELU_ALPHA as SELU_ALPHA
from jcnn.functional._activations import SELU_SCALE as SELU_SCALE
from jcnn.functional._activations import elu as elu
from jcnn.functional._activations import leaky_relu as leaky_relu
from jcnn.functional._activations import maxout as maxout
from jcnn.functional._activations import prelu as prelu
from jcnn.functional._activations import relu as relu
from jcnn.functional._activations import relu6 as relu6
from jcnn.functional._activations import selu as selu
from jcnn.functional._activations import sigmoid as sigmoid
from jcnn.functional._activations import swish as swish
from jcnn.functional._activations import tanh as tanh

# --- dense ---
from jcnn.functional._linear import dense as dense
from jcnn.functional._linear import flatten as flatten

# --- normalisation ---
from jcnn.functional._normalization import batch_norm as batch_norm
from jcnn.functional._normalization import (
    batch_norm_momentum_from_torch as batch_norm_momentum_from_torch,
)
from jcnn.functional._normalization import group_norm as group_norm
from jcnn.functional._normalization import instance_norm as instance_norm
from jcnn.functional._normalization import layer_norm as layer_norm

# --- regularisation ---
from jcnn.functional._regularization import disout as disout
from jcnn.functional._regularization import dropblock as dropblock
from jcnn.functional._regularization import dropconnect as dropconnect
from jcnn.functional._regularization import dropout as dropout
from jcnn.functional._regularization import linear_rate_schedule as linear_rate_schedule
