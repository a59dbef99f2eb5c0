"""Optimisers and learning-rate schedules from a config, checked before training.

``make_optimizer(cfg, steps_per_epoch=S, num_epochs=E)`` returns one optax
chain (clip, weight decay, SGD/Adam/LARS, the schedule); ``check_schedule_config``
samples its schedule at every step and raises (or warns) on a schedule that
would waste the run. Configs are `ml_collections.ConfigDict` or plain dicts.
"""

# --- config ---
from jcnn.optim._config import KNOWN_KEYS as KNOWN_KEYS

# --- schedules ---
from jcnn.optim._schedules import SCHEDULES as SCHEDULES
from jcnn.optim._schedules import make_schedule as make_schedule

# --- optimisers ---
# isort: split
from jcnn.optim._optimizers import OPTIMIZERS as OPTIMIZERS
from jcnn.optim._optimizers import WEIGHT_DECAY_MODES as WEIGHT_DECAY_MODES
from jcnn.optim._optimizers import default_decay_mask as default_decay_mask
from jcnn.optim._optimizers import make_optimizer as make_optimizer
from jcnn.optim._optimizers import scale_by_lars as scale_by_lars

# --- schedule checks ---
# isort: split
from jcnn.optim._check import ScheduleReport as ScheduleReport
from jcnn.optim._check import ScheduleWarning as ScheduleWarning
from jcnn.optim._check import check_schedule as check_schedule
from jcnn.optim._check import check_schedule_config as check_schedule_config
