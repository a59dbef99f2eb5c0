"""jcnn: a functional JAX framework for convolutional networks.

Layers are pure functions of arrays (`jcnn.functional`, imported as `F`),
initialisers are `(key, shape, dtype) -> array` (`jcnn.init`).
"""

from jcnn import functional as functional
from jcnn import init as init

__version__ = "0.1.0"
