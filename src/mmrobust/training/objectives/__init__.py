"""Defense objectives, one module per method; the method registry is :mod:`mmrobust.training.methods`."""

from __future__ import annotations

from ..methods import METHOD_SPECS
from .base import LossTerms, Objective, ObjectiveContext, TrainBatch

#: ``--method`` name -> objective class (derived from the method registry)
OBJECTIVES: dict[str, type[Objective]] = {name: spec.objective_class() for name, spec in METHOD_SPECS.items()}

__all__ = ["OBJECTIVES", "LossTerms", "Objective", "ObjectiveContext", "TrainBatch"]
