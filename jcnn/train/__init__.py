"""Training: `fit(config, workdir)`, `load(workdir)`, `evaluate(workdir)`.

See `jcnn.train.loop` for what a run writes and how it resumes.
"""

from jcnn.train.loop import WorkdirInUseError as WorkdirInUseError
from jcnn.train.loop import evaluate as evaluate
from jcnn.train.loop import fit as fit
from jcnn.train.loop import load as load
from jcnn.train.loop import params_sha256 as params_sha256
from jcnn.train.state import TrainState as TrainState
