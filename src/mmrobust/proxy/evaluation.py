"""Zero-shot scoring of a proxy on held-out arrays, the way ``mmrobust eval`` scores it.

Class embeddings come from :func:`~mmrobust.models.zeroshot.encode_class_prompts` through the model's own
``encode_text`` (the public path), and images go through ``encode_image`` on [0, 1] pixels, so the number
in the manifest is the number a user reproduces with the eval CLI (same templates, same resize).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..data.templates import resolve_templates
from ..models.zeroshot import build_prompts, encode_class_prompts
from ..models.base import VisionLanguageModel
from .arrays import ImageArrays
from .recipes import EvalSet


@dataclass
class PreparedEvalSet:
    """An eval set with its prompts resolved and a fixed per-epoch subset."""

    spec: EvalSet
    arrays: ImageArrays
    templates: list[str]
    epoch_indices: torch.Tensor


def prepare_eval_set(spec: EvalSet, arrays: ImageArrays, epoch_images: int, seed: int = 0) -> PreparedEvalSet:
    templates = resolve_templates(spec.templates, arrays.templates)
    generator = torch.Generator().manual_seed(seed)
    n = len(arrays)
    subset = torch.randperm(n, generator=generator)[: min(n, epoch_images)].sort().values
    return PreparedEvalSet(spec, arrays, templates, subset)


@torch.no_grad()
def zero_shot_accuracy(
    model: VisionLanguageModel,
    prepared: PreparedEvalSet,
    indices: Sequence[int] | torch.Tensor | None = None,
    batch_size: int = 500,
) -> float:
    """Top-1 accuracy of ``argmax cos(image, class prompt ensemble)`` on ``indices`` (default: all)."""
    was_training = model.training
    model.eval()
    arrays = prepared.arrays
    text = encode_class_prompts(model, build_prompts(arrays.classes, prepared.templates))
    index = torch.arange(len(arrays)) if indices is None else torch.as_tensor(indices, dtype=torch.long)
    correct = 0
    device = model.device
    for start in range(0, len(index), batch_size):
        rows = index[start : start + batch_size]
        images = arrays.images[rows].to(device).float().div_(255.0)
        predictions = (model.encode_image(images, normalize=True) @ text.t()).argmax(dim=1).cpu()
        correct += int((predictions == arrays.labels[rows]).sum())
    model.train(was_training)
    return correct / max(1, len(index))
