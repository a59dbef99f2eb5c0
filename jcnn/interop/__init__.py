"""Interoperability: PyTorch weights in, a standalone exported model out.

`from_torch_state_dict` turns a torchvision-style ``state_dict`` into jcnn
variables (`jcnn.interop._torch`); `export_workdir` writes a trained run's
eval-mode forward pass as one file (StableHLO via `jax.export`, plus the
preprocessing constants) and `load_exported` reads it back with nothing but
jax and numpy (`jcnn.interop._loader`, usable as a standalone file).
"""

# --- PyTorch ---
from jcnn.interop._torch import SUPPORTED as SUPPORTED
from jcnn.interop._torch import from_torch_state_dict as from_torch_state_dict
from jcnn.interop._torch import torch_state_dict_shapes as torch_state_dict_shapes

# --- export (writing needs jcnn.train; reading needs only jax + numpy) ---
# isort: split
from jcnn.interop._export import export_trained as export_trained
from jcnn.interop._export import export_workdir as export_workdir
from jcnn.interop._loader import ExportedModel as ExportedModel
from jcnn.interop._loader import load_exported as load_exported
from jcnn.interop._loader import read_image as read_image
from jcnn.interop._trained import Trained as Trained
from jcnn.interop._trained import load_trained as load_trained
