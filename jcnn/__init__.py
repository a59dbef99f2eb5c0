"""jcnn: a functional JAX framework for convolutional networks.

Layers are pure functions of arrays (`jcnn.functional`, imported as `F`),
wrapped by Flax modules that own their parameters (`jcnn.nn`); models are
built from those (`jcnn.models`); initialisers are ``(key, shape, dtype) ->
array`` (`jcnn.init`). Training lives in `jcnn.train`, configs in
`jcnn.configs`, optimisers in `jcnn.optim`, data in `jcnn.data`.
"""

from jcnn import functional as functional
from jcnn import init as init
from jcnn import models as models
from jcnn import nn as nn
from jcnn import summary as summary

__version__ = "0.1.0"
