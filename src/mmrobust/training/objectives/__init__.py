"""Defense objectives, one module per method; adding a method = one module plus one line in OBJECTIVES."""

from __future__ import annotations

from .base import LossTerms, Objective, ObjectiveContext, TrainBatch
from .clean import CleanFineTune
from .fare import FARE
from .mmcoa import MMCoA, TextAdversarialTraining
from .pmg_aft import PMGAFT
from .tecoa import TeCoA

#: ``--method`` name -> objective class
OBJECTIVES: dict[str, type[Objective]] = {
    "clean": CleanFineTune,
    "tecoa": TeCoA,
    "text-at": TextAdversarialTraining,
    "fare": FARE,
    "pmg-aft": PMGAFT,
    "mmcoa": MMCoA,
}

__all__ = ["OBJECTIVES", "LossTerms", "Objective", "ObjectiveContext", "TrainBatch"]
