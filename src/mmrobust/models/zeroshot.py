"""Zero-shot classification: logits = scale * cos(image, class embedding).

Class embeddings follow CLIP: each class name is put into every template, the normalised text embeddings
are averaged over templates and re-normalised. They are computed once per (model weights, classes,
templates) — never inside an attack step, where re-encoding the prompts made PGD 2.6-5x slower.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.templates import validate_templates
from ..errors import ConfigError, NumericalError
from .base import VisionLanguageModel


def check_finite_logits(logits: torch.Tensor, where: str) -> None:
    """Refuse to score non-finite logits: an accuracy computed from NaN is a silent lie."""
    if not torch.isfinite(logits).all():
        raise NumericalError(f"the model returned non-finite logits ({where}); refusing to report an accuracy")


def build_prompts(classes: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """``prompts[c][t] = templates[t].format(classes[c])``."""
    if not classes:
        raise ConfigError("the class list is empty")
    templates = validate_templates(templates)
    return [[template.format(name) for template in templates] for name in classes]


def encode_class_prompts(
    model: VisionLanguageModel,
    prompts: Sequence[Sequence[str]],
    batch_size: int = 256,
    grad: bool = False,
) -> torch.Tensor:
    """Normalised template-averaged class embeddings, C x D.

    With ``grad=True`` the result stays differentiable w.r.t. the text tower (text-side training).
    """
    flat = [p for per_class in prompts for p in per_class]
    per_class = len(prompts[0])
    if any(len(p) != per_class for p in prompts):
        raise ConfigError("every class needs the same number of prompts")
    chunks = []
    with torch.set_grad_enabled(grad):
        for start in range(0, len(flat), batch_size):
            chunks.append(model.encode_text(flat[start : start + batch_size], normalize=True))
        features = torch.cat(chunks).view(len(prompts), per_class, -1).mean(dim=1)
    return F.normalize(features, dim=-1)


class PromptEmbeddingCache:
    """Caches class embeddings per (model, weights version, prompts).

    The key includes the in-place version counters of the text parameters: an optimizer step bumps them,
    so a cached entry can never outlive the weights it was computed from. The cache is an object the
    caller owns (no module-level state).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple, torch.Tensor] = {}

    @staticmethod
    def _weights_version(model: VisionLanguageModel) -> tuple[int, int]:
        params = model.parameter_groups()["text"] + model.parameter_groups()["other"]
        return (sum(p._version for p in params), sum(p.data_ptr() % 1_000_003 for p in params))

    def get(self, model: VisionLanguageModel, prompts: Sequence[Sequence[str]], batch_size: int = 256) -> torch.Tensor:
        key = (id(model), str(model.device), self._weights_version(model), tuple(tuple(p) for p in prompts))
        if key not in self._entries:
            self._entries[key] = encode_class_prompts(model, prompts, batch_size).detach()
        return self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class ZeroShotClassifier(nn.Module):
    """``classifier(images) -> N x C logits``, differentiable w.r.t. the pixels.

    ``text_embeddings`` (C x D, normalised) are fixed at construction; text attacks build a new classifier
    from adversarial prompts with :meth:`with_prompts`, sharing the model.
    """

    def __init__(
        self,
        model: VisionLanguageModel,
        text_embeddings: torch.Tensor,
        classes: Sequence[str] = (),
        logit_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.classes = list(classes)
        self.register_buffer("text_embeddings", text_embeddings, persistent=False)
        #: ``None`` uses the model's own learned temperature; a float fixes it (the study evaluates at 100)
        self.fixed_logit_scale = logit_scale

    @classmethod
    def from_prompts(
        cls,
        model: VisionLanguageModel,
        classes: Sequence[str],
        templates: Sequence[str],
        cache: PromptEmbeddingCache | None = None,
        logit_scale: float | None = None,
    ) -> "ZeroShotClassifier":
        prompts = build_prompts(classes, templates)
        embeddings = cache.get(model, prompts) if cache is not None else encode_class_prompts(model, prompts).detach()
        return cls(model, embeddings, classes, logit_scale)

    def with_text_embeddings(self, text_embeddings: torch.Tensor) -> "ZeroShotClassifier":
        return ZeroShotClassifier(self.model, text_embeddings, self.classes, self.fixed_logit_scale)

    def with_prompts(self, prompts: Sequence[Sequence[str]]) -> "ZeroShotClassifier":
        """Same model, class embeddings from other prompts (e.g. adversarial ones)."""
        return self.with_text_embeddings(encode_class_prompts(self.model, prompts).detach())

    @property
    def n_classes(self) -> int:
        return int(self.text_embeddings.shape[0])

    def scale(self) -> torch.Tensor:
        if self.fixed_logit_scale is not None:
            return torch.tensor(float(self.fixed_logit_scale), device=self.text_embeddings.device)
        return self.model.logit_scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        image_features = self.model.encode_image(images, normalize=True)
        return self.scale() * image_features @ self.text_embeddings.t()
