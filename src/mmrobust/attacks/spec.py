"""What an attack *is* to the rest of mmrobust: one :class:`AttackSpec` line in :mod:`.registry`.

Everything else is derived from the specs: the attack list (``mmrobust attacks``), the CLI's ``--attack``
help, the studies' per-modality choices, the sanity checks' white-box/black-box split, and the contract
tests (``tests/test_registry_contracts.py`` runs every spec on ``tiny``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import ConfigError
from .options import AttackOptions, field_names, options_for

MODALITIES = ("image", "text", "multimodal")


@dataclass(frozen=True)
class AttackSpec:
    """One named attack.

    ``modality``: what it perturbs ("image" pixels, "text" class prompts, or "multimodal" both).
    ``white_box``: uses gradients (a black-box attack such as Square is the sanity checks' control).
    ``options``: its options dataclass (:mod:`.options`) — the fields it reads, defaults and validation.
    ``build``: ``"module:function"`` taking the validated options and returning an
    :class:`~.protocol.EvalAttack`; imported lazily, so listing attacks loads no attack code.
    ``recipe``: for the attacks generated from the text-recipe registry (:mod:`.text.recipe_specs`), the recipe
    the builder is called with (``build(options, recipe)``): one builder serves every recipe.
    """

    name: str
    modality: str
    white_box: bool
    options: type[AttackOptions]
    build: str
    description: str
    recipe: str | None = None

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"attack {self.name!r}: modality must be one of {MODALITIES}")

    @property
    def fields(self) -> tuple[str, ...]:
        return field_names(self.options)

    def builder(self) -> Callable[[Any], Any]:
        module, _, function = self.build.partition(":")
        try:
            return getattr(importlib.import_module(module), function)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                raise ConfigError(f"attack {self.name!r} is not available in this installation ({module} missing)") from None
            raise

    def make(self, values: Mapping[str, Any]) -> Any:
        """The attack with its options taken from ``values`` (validated before any model is loaded)."""
        options = options_for(self.options, values)
        return self.builder()(options) if self.recipe is None else self.builder()(options, self.recipe)
