"""A trained run as what inference needs: model, variables, preprocessing, test split."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Trained:
    """The latest checkpoint of a run with its model and preprocessing.

    ``images`` and ``labels`` are the run's test split (uint8 NHWC, int32;
    ``config.data.test_subset`` applied), on the default device.
    """

    workdir: Path
    config: object
    dataset: str
    model: object
    variables: dict
    step: int
    mean: float
    std: float
    class_names: tuple[str, ...]
    images: object
    labels: object

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.images.shape[1:])

    @property
    def flip_tta(self) -> bool:
        return bool(self.config.get("flip_tta", False))

    def normalize(self, images_u8):
        from jcnn.data import normalize

        return normalize(images_u8, self.mean, self.std)

    def logits(self, x):
        """Eval-mode logits of a normalised batch, as ``jcnn eval`` computes them."""
        from jcnn.train.step import eval_logits  # jcnn.train (Orbax) only when needed

        return eval_logits(self.model, self.variables, x, flip_tta=self.flip_tta)


def load_trained(workdir) -> Trained:
    """The `Trained` run in `workdir` (FileNotFoundError if there is none)."""
    from jcnn import configs, train
    from jcnn import data as jdata
    from jcnn.train.loop import build

    workdir = Path(workdir)
    config_path = workdir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"load_trained: no run in {workdir}: {config_path} does not exist.")
    run = build(configs.from_json(config_path.read_text()), quiet=True)
    state = train.load(workdir)
    return Trained(
        workdir=workdir,
        config=run.config,
        dataset=run.dataset,
        model=run.model,
        variables=state.variables,
        step=int(state.step),
        mean=run.mean,
        std=run.std,
        class_names=tuple(jdata.class_names(run.dataset)),
        images=run.test.images,
        labels=run.test.labels,
    )
