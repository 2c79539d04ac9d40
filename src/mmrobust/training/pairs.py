"""Image -> caption pairing for contrastive fine-tuning.

The caption of an image is its class prompt ("This is a photo of a {class}"), as in MMCoA. A batch usually
holds several images of one class, so the distinct captions of a batch are encoded (and attacked) once each,
and every image points at its caption by index. Targets come in two flavours (see ``--targets``):

* ``class``: image i's positive is its class caption (every same-class caption counts), the text side holds
  the U distinct captions; text -> image spreads the target uniformly over the caption's images.
* ``instance``: the reference's ``arange(B)`` over per-image captions, where a same-class caption of another
  image is a (false) negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F


@dataclass
class CaptionBatch:
    """The distinct captions of a batch and, per image, the index of its caption in ``texts``."""

    texts: list[str]
    index: torch.Tensor  # B, long, on the images' device


def class_captions(labels: torch.Tensor, classes: Sequence[str], template: str) -> CaptionBatch:
    """Distinct class prompts of ``labels`` in first-appearance order (deterministic), and each image's index."""
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(int(label), len(order))
    texts = [template.format(classes[label]) for label in order]
    index = torch.tensor([order[int(label)] for label in labels.tolist()], device=labels.device, dtype=torch.long)
    return CaptionBatch(texts, index)


def symmetric_contrastive_loss(
    image_features: torch.Tensor,
    caption_features: torch.Tensor,
    caption_index: torch.Tensor,
    logit_scale: torch.Tensor,
    targets: str = "class",
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE, ``(CE(image -> text) + CE(text -> image))``, on normalised features.

    ``caption_features`` holds one row per distinct caption; ``caption_index[i]`` is image i's caption.
    With ``targets="instance"`` the captions are expanded to one per image and the targets are ``arange(B)``
    (the reference); with ``"class"`` the text side is the distinct captions and text -> image uses a
    uniform target over the caption's images (as a KL, so a perfect alignment scores 0). Both terms are summed, as in the reference (each weighted 1).
    """
    if targets == "instance":
        per_image = caption_features[caption_index]
        logits = logit_scale * image_features @ per_image.t()
        labels = torch.arange(logits.shape[0], device=logits.device)
        return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)
    if targets != "class":
        raise ValueError(f"unknown contrastive targets {targets!r}")
    logits = logit_scale * image_features @ caption_features.t()  # B x U
    image_to_text = F.cross_entropy(logits, caption_index)
    positives = F.one_hot(caption_index, num_classes=caption_features.shape[0]).t().to(logits.dtype)  # U x B
    soft_targets = positives / positives.sum(dim=1, keepdim=True)
    # Soft-target CE minus the targets' entropy (= KL): same gradient, and 0 at the optimum, so the logged
    # loss of a perfectly aligned batch is 0 however many images share a caption.
    entropy = -(soft_targets * soft_targets.clamp_min(1e-12).log()).sum(dim=1)
    text_to_image = (-(soft_targets * F.log_softmax(logits.t(), dim=1)).sum(dim=1) - entropy).mean()
    return image_to_text + text_to_image
