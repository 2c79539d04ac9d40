"""The shape every attack takes inside an evaluation run (``mmrobust eval --attack ...``).

Why a per-batch protocol: robust evaluation must be resumable batch by batch and combine attacks
point-wise (worst case per example). Image attacks work per batch; text attacks perturb the class
prompts once per run (:meth:`EvalAttack.prepare`) and then score each batch against the adversarial
prompts; multimodal attacks do both. The evaluation loop (``mmrobust.eval.robust``) only talks to this
interface, so a new attack never touches the loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..models.base import VisionLanguageModel
from ..eval.zeroshot import ZeroShotClassifier


@dataclass
class AttackContext:
    """What an attack may use; built once per evaluation run.

    ``classifier`` holds the clean class-prompt embeddings (encoded once); ``prompts[c][t]`` are the clean
    prompts behind them. ``options`` carries the user's attack options (eps as a fraction, norm, steps,
    alpha, restarts, text_words, mlm, ...) exactly as parsed by the CLI, so every attack sees one source.
    """

    model: VisionLanguageModel
    classifier: ZeroShotClassifier
    classes: Sequence[str]
    templates: Sequence[str]
    prompts: Sequence[Sequence[str]]
    device: torch.device
    seed: int = 0
    progress: bool = True
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BatchOutcome:
    """Result of attacking one batch: per-example correctness under attack (bool, on CPU).

    ``adv_images`` (if the attack perturbs images) lets the loop check the eps-ball and [0, 1] box;
    ``extra`` holds per-batch numbers the attack wants summed into its report block (e.g. queries).
    """

    correct: torch.Tensor
    adv_images: torch.Tensor | None = None
    extra: dict[str, float] = field(default_factory=dict)


class EvalAttack(ABC):
    """One named attack in an evaluation run.

    Lifecycle: ``prepare(ctx)`` once, then ``attack_batch(images, labels)`` per batch (in order, possibly
    resumed mid-way after ``load_state_dict``), then ``describe()`` for the report.
    """

    #: name as typed on the CLI ("pgd", "bert-attack", "co-attack", ...)
    name: str = "abstract"
    #: "image", "text" or "multimodal" — the report groups accuracies by modality
    modality: str = "image"

    def prepare(self, ctx: AttackContext) -> None:
        """Run once before the first batch (text attacks perturb the class prompts here)."""
        self.ctx = ctx

    @abstractmethod
    def attack_batch(self, images: torch.Tensor, labels: torch.Tensor) -> BatchOutcome:
        """Attack one batch of clean images (pixels in [0, 1]) with their true labels."""

    def describe(self) -> dict[str, Any]:
        """Every parameter and run-level detail (e.g. adversarial prompts) for the report."""
        return {"name": self.name, "modality": self.modality}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state produced by :meth:`prepare` that a resumed run must reuse."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved (called after :meth:`prepare` on resume)."""
