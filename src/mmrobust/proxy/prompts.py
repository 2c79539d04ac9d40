"""Text targets of LiT training: every (class name or synonym) x template prompt, encoded once.

Why precompute: the text tower is locked, so a prompt's MiniLM features never change during training;
running MiniLM per image (or per step) would dominate the build on a CPU. Each step draws one random prompt
per class from the bank — prompt ensembling and class-name synonyms (words.txt) act as text augmentation,
and the image embedding learns to sit near all the ways a class is named.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.templates import validate_templates
from ..models.native import NativeCLIP


def class_prompts(
    classes: Sequence[str], synonyms: Sequence[Sequence[str]], templates: Sequence[str], max_synonyms: int
) -> list[list[str]]:
    """``prompts[c]``: every template filled with the class name and up to ``max_synonyms - 1`` synonyms."""
    templates = validate_templates(templates)
    out = []
    for name, names in zip(classes, synonyms):
        chosen = list(dict.fromkeys([name, *names]))[: max(1, max_synonyms)]
        out.append([t.format(n) for n in chosen for t in templates])
    return out


@dataclass
class PromptBank:
    """Pooled text-tower features (before projection) of all prompts, grouped by class."""

    features: torch.Tensor  # P x W
    offsets: torch.Tensor  # C, first row of each class
    counts: torch.Tensor  # C, rows per class
    prompts: list[str]

    @property
    def n_classes(self) -> int:
        return int(self.counts.shape[0])

    def sample(self, generator: torch.Generator) -> torch.Tensor:
        """One random prompt's features per class, C x W (the generator lives on the CPU)."""
        pick = (torch.rand(self.n_classes, generator=generator) * self.counts.cpu()).long()
        return self.features[(self.offsets.cpu() + pick).to(self.features.device)]

    def class_means(self, model: NativeCLIP) -> torch.Tensor:
        """Normalised per-class mean of normalised projected prompt embeddings (CLIP's ensemble), C x D."""
        embedded = F.normalize(model.text_projection(self.features), dim=-1)
        sums = torch.zeros(self.n_classes, embedded.shape[1], device=embedded.device, dtype=embedded.dtype)
        owner = torch.repeat_interleave(torch.arange(self.n_classes, device=embedded.device), self.counts)
        sums.index_add_(0, owner, embedded)
        return F.normalize(sums / self.counts[:, None].to(sums.dtype), dim=-1)


@torch.no_grad()
def build_prompt_bank(
    model: NativeCLIP, prompts: Sequence[Sequence[str]], batch_size: int = 256, progress: bool = True
) -> PromptBank:
    """Encode every prompt once with the (locked) text tower."""
    flat = [p for per_class in prompts for p in per_class]
    counts = torch.tensor([len(p) for p in prompts], dtype=torch.long)
    offsets = torch.cumsum(counts, 0) - counts
    chunks = []
    was_training = model.training
    model.eval()
    for start in tqdm(range(0, len(flat), batch_size), desc="encode prompts (MiniLM)", unit="batch",
                      disable=not progress, leave=False):
        tokens = model.tokenize(flat[start : start + batch_size])
        chunks.append(model.text_tower(tokens))
    model.train(was_training)
    device = model.device
    return PromptBank(torch.cat(chunks), offsets.to(device), counts.to(device), flat)
