"""The training-method registry: every defense is one :class:`MethodSpec` line.

Adding a method = one objective module in :mod:`.objectives` (a subclass of
:class:`~.objectives.base.Objective`) + one line here. ``--method`` choices and help, the demo's and the
studies' validation, :data:`~.config.METHODS` and the contract tests (every method trains two steps and
checkpoints) are derived from this table. Objectives are imported lazily: listing methods loads no model code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class MethodSpec:
    name: str
    #: ``"module:Class"`` of the objective
    objective: str
    #: parameters trained when ``--train`` is not given (each reference's choice)
    default_train: str
    description: str

    def objective_class(self) -> type:
        module, _, name = self.objective.partition(":")
        return getattr(importlib.import_module(module), name)


_O = "mmrobust.training.objectives"

METHOD_SPECS: dict[str, MethodSpec] = {s.name: s for s in (
    MethodSpec("clean", f"{_O}.clean:CleanFineTune", "full", "contrastive fine-tuning on clean pairs (baseline)"),
    MethodSpec("tecoa", f"{_O}.tecoa:TeCoA", "image", "TeCoA: adversarial images vs clean class prompts (Mao et al. 2023)"),
    MethodSpec("text-at", f"{_O}.mmcoa:TextAdversarialTraining", "text", "adversarial captions vs clean images"),
    MethodSpec("fare", f"{_O}.fare:FARE", "image", "FARE: unsupervised embedding-matching (Schlarmann et al. 2024)"),
    MethodSpec("pmg-aft", f"{_O}.pmg_aft:PMGAFT", "image", "PMG-AFT: TeCoA + pre-trained-model guidance (Wang et al. 2024)"),
    MethodSpec("mmcoa", f"{_O}.mmcoa:MMCoA", "full", "MMCoA: adversarial images and captions (Zhou et al. 2024)"),
    MethodSpec("mmcoa-released", f"{_O}.released:ReleasedMMCoA", "full",
               "MMCoA as the study's code trains it: attack-gradient leak, arange(B) targets, coupled-L2 Adam"),
    MethodSpec("tecoa-released", f"{_O}.released:ReleasedTeCoA", "image",
               "TeCoA as the study's code trains it: attack-gradient leak, coupled-L2 Adam"),
)}


def get_method(name: str) -> MethodSpec:
    spec = METHOD_SPECS.get(str(name).strip().lower())
    if spec is None:
        raise ConfigError(f"unknown --method {name!r}; known: {', '.join(METHOD_SPECS)}")
    return spec
