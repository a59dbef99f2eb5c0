"""Pictures (PNG, matplotlib's Agg renderer, no display): one module per figure.

Each ``plot_*`` writes a PNG of ``figsize * dpi`` pixels to `out` and returns
its path; the ``jcnn viz`` command calls them.
"""

from jcnn.viz._activations import ACTIVATIONS as ACTIVATIONS
from jcnn.viz._activations import plot_activations as plot_activations
from jcnn.viz._confusion import confusion_matrix as confusion_matrix
from jcnn.viz._confusion import plot_confusion as plot_confusion
from jcnn.viz._conv_arithmetic import plot_conv_arithmetic as plot_conv_arithmetic
from jcnn.viz._curves import plot_training_curves as plot_training_curves
from jcnn.viz._feature_maps import activation_maps as activation_maps
from jcnn.viz._feature_maps import plot_feature_maps as plot_feature_maps
from jcnn.viz._filters import plot_filters as plot_filters
from jcnn.viz._schedule import plot_schedule as plot_schedule
