"""The study's analyses, one command each (``mmrobust study NAME``): tables (CSV + JSON) and plots (PNG).

* ``eps`` — accuracy vs. perturbation strength (one or more models)
* ``classes`` — attack strength vs. number of classes
* ``train-size`` — robustness vs. training-set size / few-shot
* ``loss-ablation`` — MMCoA's lambda_img / lambda_txt
* ``params`` — robustness vs. number of fine-tuned parameters

``run_study(get_study("eps"), StudyOptions(output_dir="out/eps"), {"eps": "2,4,8"})``. Every study is a grid
of cells, one JSON file each under ``DIR/cells``; a second invocation reuses the finished cells.
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Study, run_study
from .classes import ClassesStudy
from .eps import EpsStudy
from .loss_ablation import LossAblationStudy
from .options import StudyOptions
from .params import ParamsStudy
from .train_size import TrainSizeStudy

STUDIES: dict[str, type[Study]] = {
    cls.name: cls for cls in (EpsStudy, ClassesStudy, TrainSizeStudy, LossAblationStudy, ParamsStudy)
}


def get_study(name: str) -> Study:
    try:
        return STUDIES[name]()
    except KeyError:
        raise ConfigError(f"unknown study {name!r}; known: {', '.join(STUDIES)}") from None


__all__ = ["STUDIES", "Study", "StudyOptions", "get_study", "run_study"]
