"""The shape every attack takes inside an evaluation run (``mmrobust eval --attack ...``).

Why a per-batch protocol: robust evaluation must be resumable batch by batch and combine attacks
point-wise (worst case per example). Image attacks work per batch; text attacks perturb the class
prompts once per run (:meth:`EvalAttack.prepare`) and then score each batch against the adversarial
prompts; multimodal attacks do both. The evaluation loop (``mmrobust.eval.robust``) only talks to this
interface, so a new attack never touches the loop.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..models.base import VisionLanguageModel
from ..models.zeroshot import ZeroShotClassifier


def batch_seed(seed: int, position: int, salt: str = "") -> int:
    """A 63-bit seed derived from (run seed, batch start position, salt), stable across runs and machines.

    Why: a resumed run must attack batch k exactly as an uninterrupted run did, whatever ran before it.
    """
    digest = hashlib.sha256(f"{int(seed)}|{int(position)}|{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@dataclass
class AttackContext:
    """What an attack may use; built once per evaluation run.

    ``classifier`` holds the clean class-prompt embeddings (encoded once); ``prompts[c][t]`` are the clean
    prompts behind them. Each attack holds its own typed options (:mod:`.options`); the context carries
    only what the run shares.
    ``attack_images``/``attack_labels`` (optional): a few clean labelled images (pixels in [0, 1]) that
    task-aware text attacks may use to pick prompts that hurt accuracy (``text_goal=zero-shot-margin``).
    """

    model: VisionLanguageModel
    classifier: ZeroShotClassifier
    classes: Sequence[str]
    templates: Sequence[str]
    prompts: Sequence[Sequence[str]]
    device: torch.device
    seed: int = 0
    progress: bool = True
    attack_images: torch.Tensor | None = None
    attack_labels: torch.Tensor | None = None
    #: run-scoped results attacks may share (e.g. the adversarial class prompts, which ``embed-sub``,
    #: ``sep`` and ``co-attack`` in one run would otherwise each compute); owned by this context only
    shared: dict[Any, Any] = field(default_factory=dict)


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
    resumed mid-way after ``load_state_dict``), then ``describe()`` for the report. The loop only passes the
    images still worth attacking (clean-correct ones; in cascade mode, those no earlier attack broke), and
    before each call it gives :meth:`begin_batch` their dataset indices; attacks key their randomness by
    these (:meth:`batch_example_ids`, :class:`~mmrobust.attacks.image.streams.ExampleStreams`), so an
    example's result depends neither on the batch size, nor on its neighbours, nor on a resume.
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

    # -------------------------------------------------------------- optional hooks (defaults suffice)
    def begin_batch(self, position: int, example_ids: Sequence[int] | None = None) -> None:
        """Called by the loop before :meth:`attack_batch`: the batch's first position and the dataset indices
        of the images about to be attacked (in order)."""
        self.batch_position = int(position)
        self.example_ids = None if example_ids is None else [int(i) for i in example_ids]

    def batch_example_ids(self, n: int) -> list[int]:
        """The dataset indices of the ``n`` images of the current call (positions when the caller gave none)."""
        ids = getattr(self, "example_ids", None)
        if ids is None:
            start = getattr(self, "batch_position", 0)
            return list(range(start, start + n))
        if len(ids) != n:
            raise RuntimeError(f"attack {self.name} got {n} images but {len(ids)} example indices")
        return list(ids)

    def threat_model(self) -> dict[str, Any] | None:
        """``{"norm": "Linf"|"L2", "eps": float}`` for attacks that perturb images (the loop then checks every
        adversarial image is inside that ball and in [0, 1]); ``None`` for attacks that leave images alone."""
        return None
