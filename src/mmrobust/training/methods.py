"""The training-method registry: every defense is one :class:`MethodSpec` line.

Adding a method = one objective module in :mod:`.objectives` (a subclass of
:class:`~.objectives.base.Objective`) + one line here; a method with hyperparameters names its options class
(:mod:`.method_options`), whose fields become its flags. ``--method`` choices and help, the demo's and the
studies' validation, :data:`~.config.METHODS` and the contract tests (every method trains two steps and
checkpoints) are derived from this table. Objectives are imported lazily: listing methods loads no model code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import ConfigError
from .method_options import (MethodOptions, MMCoAOptions, ContrastiveOptions, PMGAFTOptions, TGAZSROptions,
                             LEAFOptions, option_names)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    #: ``"module:Class"`` of the objective
    objective: str
    #: parameters trained when ``--train`` is not given (each reference's choice)
    default_train: str
    description: str
    #: the class of the method's own hyperparameters (:mod:`.method_options`); None = it has none
    options: type | None = None

    def objective_class(self) -> type:
        module, _, name = self.objective.partition(":")
        return getattr(importlib.import_module(module), name)

    def make_options(self, given: Any = None) -> MethodOptions | None:
        """The method's validated options from an instance of its class, a mapping of values, or None (defaults).

        A value the method does not read is refused (``--pmg-alpha`` with ``--method mmcoa``)."""
        if given is None or isinstance(given, Mapping):
            values = dict(given or {})
            unread = sorted(set(values) - set(option_names(self.options)))
            if unread:
                flags = ", ".join("--" + k.replace("_", "-") for k in unread)
                raise ConfigError(f"{flags} does not apply to --method {self.name}"
                                  + (f" (its options: {', '.join(option_names(self.options))})" if self.options else
                                     " (it has no options of its own)"))
            return None if self.options is None else self.options(**values).validated()
        if self.options is None or type(given) is not self.options:
            raise ConfigError(f"--method {self.name} takes {self.options.__name__ if self.options else 'no'} "
                              f"options, got {type(given).__name__}")
        return given.validated()


_O = "mmrobust.training.objectives"

METHOD_SPECS: dict[str, MethodSpec] = {s.name: s for s in (
    MethodSpec("clean", f"{_O}.clean:CleanFineTune", "full", "contrastive fine-tuning on clean pairs (baseline)"),
    MethodSpec("tecoa", f"{_O}.tecoa:TeCoA", "image", "TeCoA: adversarial images vs clean class prompts (Mao et al. 2023)"),
    MethodSpec("text-at", f"{_O}.mmcoa:TextAdversarialTraining", "text", "adversarial captions vs clean images",
               ContrastiveOptions),
    MethodSpec("fare", f"{_O}.fare:FARE", "image", "FARE: unsupervised embedding-matching (Schlarmann et al. 2024)"),
    MethodSpec("pmg-aft", f"{_O}.pmg_aft:PMGAFT", "image", "PMG-AFT: TeCoA + pre-trained-model guidance (Wang et al. 2024)",
               PMGAFTOptions),
    MethodSpec("tga-zsr", f"{_O}.tga_zsr:TGAZSR", "image",
               "TGA-ZSR: TeCoA + text-guided attention refinement and constraint (Yu et al. 2024)", TGAZSROptions),
    MethodSpec("leaf", f"{_O}.leaf:LEAF", "text",
               "LEAF: text tower vs character edits, L2 to the frozen clean text embedding (Abad Rocamora et al. 2025)",
               LEAFOptions),
    MethodSpec("leaf-fare", f"{_O}.leaf:LEAFFARE", "full", "LEAF on the text tower + FARE on the image tower",
               LEAFOptions),
    MethodSpec("mmcoa", f"{_O}.mmcoa:MMCoA", "full", "MMCoA: adversarial images and captions (Zhou et al. 2024)",
               MMCoAOptions),
    MethodSpec("mmcoa-released", f"{_O}.released:ReleasedMMCoA", "full",
               "MMCoA as the study's code trains it: attack-gradient leak, arange(B) targets, coupled-L2 Adam",
               MMCoAOptions),
    MethodSpec("tecoa-released", f"{_O}.released:ReleasedTeCoA", "image",
               "TeCoA as the study's code trains it: attack-gradient leak, coupled-L2 Adam"),
    MethodSpec("pmg-aft-released", f"{_O}.released:ReleasedPMGAFT", "image",
               "PMG-AFT as its script trains it: ImageNet normalisation, cosine logits, batch-summed KL, "
               "attack-gradient leak, SGD momentum 0.9", PMGAFTOptions),
)}


def get_method(name: str) -> MethodSpec:
    spec = METHOD_SPECS.get(str(name).strip().lower())
    if spec is None:
        raise ConfigError(f"unknown --method {name!r}; known: {', '.join(METHOD_SPECS)}")
    return spec


def method_option_classes() -> tuple[type, ...]:
    """Every options class some method declares, once each (their fields are the methods' flags)."""
    seen: dict[type, None] = {}
    for spec in METHOD_SPECS.values():
        if spec.options is not None:
            seen.setdefault(spec.options, None)
    return tuple(seen)


def method_help() -> str:
    """The ``--method`` help: every method with its one-line description."""
    return "Defense: " + "; ".join(f"{m.name} ({m.description})" for m in METHOD_SPECS.values()) + "."
