"""The shape of an attack in a retrieval evaluation (``mmrobust eval --task retrieval --attack ...``).

Why a protocol of its own (not :class:`~mmrobust.attacks.protocol.EvalAttack`): retrieval has no labels
and no class prompts. A batch is a few images *with all their captions* (SGA's set-level batching); an
attack returns adversarial images, adversarial captions, or both, crafted on ``ctx.model`` — the source
model, which differs from the scored model in a transfer run. The loop then embeds whatever the attack
returned with the scored model and ranks the whole split.

Randomness comes from :meth:`RetrievalAttack.streams`: one stream per image, keyed by (run seed, dataset
index of the image, attack name) (:class:`~mmrobust.attacks.image.streams.ExampleStreams`, the mechanism of
the classification attacks). An image's random start, SGA noise etc. are then the same whatever the batch
size and whichever images share its batch, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...models.base import VisionLanguageModel
from ..image.streams import ExampleStreams


@dataclass
class RetrievalContext:
    """What an attack may use; built once per run.

    ``model`` crafts the attack (the source model); ``captions`` is the whole split (image order) and
    ``caption_embeddings`` their clean L2-normalised embeddings under ``model`` (flattened, one row per
    caption), ``owner`` the image of each caption. ``shared`` holds run-scoped results attacks may reuse.
    """

    model: VisionLanguageModel
    captions: Sequence[Sequence[str]]
    caption_embeddings: torch.Tensor
    owner: torch.Tensor
    device: torch.device
    seed: int = 0
    progress: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    shared: dict[Any, Any] = field(default_factory=dict)


@dataclass
class RetrievalBatch:
    """Images (pixels in [0, 1], on the device), their positions in the split, and their captions.

    ``example_ids``: the dataset index of each image (what keys its random stream); ``None`` means the
    positions ``position, position + 1, ...`` (direct API use on a whole split).
    """

    images: torch.Tensor
    image_index: torch.Tensor
    captions: list[list[str]]
    position: int
    example_ids: Sequence[int] | None = None

    def ids(self) -> list[int]:
        if self.example_ids is None:
            return list(range(self.position, self.position + self.images.shape[0]))
        if len(self.example_ids) != self.images.shape[0]:
            raise RuntimeError(f"{self.images.shape[0]} images but {len(self.example_ids)} example indices")
        return [int(i) for i in self.example_ids]


@dataclass
class RetrievalOutcome:
    """What the attack changed: ``None`` means that side is left clean."""

    adv_images: torch.Tensor | None = None
    adv_captions: list[list[str]] | None = None
    extra: dict[str, float] = field(default_factory=dict)


class RetrievalAttack(ABC):
    """One named retrieval attack: ``prepare(ctx)`` once, ``attack_batch(batch)`` per batch, ``describe()``."""

    name: str = "abstract"
    #: "image", "text" or "multimodal"
    modality: str = "image"

    def prepare(self, ctx: RetrievalContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def attack_batch(self, batch: RetrievalBatch) -> RetrievalOutcome:
        """Attack one batch (images with their captions)."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality}

    def threat_model(self) -> dict[str, Any] | None:
        """``{"norm", "eps"}`` when the attack perturbs images (the loop checks the ball), else None."""
        return None

    def streams(self, batch: RetrievalBatch) -> ExampleStreams:
        """One random stream per image of ``batch``, keyed by (run seed, dataset index, attack name)."""
        return ExampleStreams.for_examples(getattr(getattr(self, "ctx", None), "seed", 0), batch.ids(), self.name)


def flatten(captions: Sequence[Sequence[str]]) -> list[str]:
    return [c for group in captions for c in group]


def regroup(flat: Sequence[str], like: Sequence[Sequence[str]]) -> list[list[str]]:
    """Split ``flat`` back into groups of the sizes of ``like``."""
    out, start = [], 0
    for group in like:
        out.append(list(flat[start : start + len(group)]))
        start += len(group)
    return out


def batch_owner(captions: Sequence[Sequence[str]]) -> torch.Tensor:
    """For each caption of the batch (flattened), its image's row in the batch."""
    return torch.tensor([i for i, group in enumerate(captions) for _ in group], dtype=torch.long)


def encode_captions(model: VisionLanguageModel, texts: Sequence[str], chunk: int = 256) -> torch.Tensor:
    """L2-normalised embeddings, no gradient, in chunks."""
    with torch.no_grad():
        return torch.cat([model.encode_text(list(texts[s : s + chunk]), normalize=True).float()
                          for s in range(0, len(texts), chunk)])


def encode_images(model: VisionLanguageModel, images: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.encode_image(images[s : s + chunk].to(model.device), normalize=True).float()
                          for s in range(0, len(images), chunk)])


def caption_set_embeddings(ctx: RetrievalContext) -> torch.Tensor:
    """Per image of the split, the normalised mean of its captions' embeddings (computed once per run)."""
    key = "caption-set-embeddings"
    if key not in ctx.shared:
        sums = torch.zeros(int(ctx.owner.max()) + 1, ctx.caption_embeddings.shape[1], device=ctx.caption_embeddings.device)
        sums.index_add_(0, ctx.owner.to(sums.device), ctx.caption_embeddings)
        ctx.shared[key] = F.normalize(sums, dim=-1)
    return ctx.shared[key]


class CaptionSetClassifier(nn.Module):
    """Images -> logits over the split's images, each image represented by its caption set.

    ``logits[b, j] = scale * cos(image_b, mean caption embedding of image j)``. Seen this way, retrieval is
    a classification whose classes are the split's images and whose "class prompts" are their captions —
    exactly the zero-shot classifier of the classification task — so the existing PGD/APGD attack it
    unchanged: untargeted cross-entropy pushes an image away from its own captions (and towards the
    others), targeted mode pulls it towards the most similar wrong image's captions.
    """

    def __init__(self, model: VisionLanguageModel, set_embeddings: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("sets", set_embeddings.detach(), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.model.encode_image(images, normalize=True).float()
        return self.model.logit_scale.detach().float() * features @ self.sets.t()
