"""A learnable padding prompt in pixel space (TeCoA's "visual prompting"), with the backbone frozen.

The prompt is a frame of width ``pad`` around the (resized, normalised) image, added to the pixels the
image tower sees, as in TeCoA's ``PadPrompter``. It is initialised at zero (TeCoA draws it from N(0, 1)),
so training starts from the pretrained model instead of a randomly disturbed one.

:class:`PromptedModel` wraps any :class:`VisionLanguageModel`; attacks perturb the raw [0, 1] image and the
prompt is added after preprocessing, so the threat model is unchanged. For ViT image towers the prompt folds
exactly into the position embeddings (the patch embedding is linear and bias-free), which is how a prompted
model is exported as an ordinary mmrobust checkpoint (:func:`fold_prompt_into_model`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..models.base import VisionLanguageModel
from ..models.wrapper import WrappedModel


def default_prompt_size(image_size: int) -> int:
    """TeCoA's 30-pixel frame on 224-pixel inputs, scaled to the model's input size (at least 1)."""
    return max(1, round(image_size * 30 / 224))


class PaddingPrompt(nn.Module):
    """Four learnable strips forming a frame of width ``pad`` on an ``image_size`` square, 3 channels."""

    def __init__(self, image_size: int, pad: int) -> None:
        super().__init__()
        if not 1 <= pad < image_size / 2:
            raise ConfigError(f"--prompt-size {pad} must be between 1 and half the model's input size ({image_size})")
        self.image_size, self.pad = int(image_size), int(pad)
        inner = image_size - 2 * pad
        self.top = nn.Parameter(torch.zeros(1, 3, pad, image_size))
        self.bottom = nn.Parameter(torch.zeros(1, 3, pad, image_size))
        self.left = nn.Parameter(torch.zeros(1, 3, inner, pad))
        self.right = nn.Parameter(torch.zeros(1, 3, inner, pad))

    def frame(self) -> torch.Tensor:
        """The full 1 x 3 x S x S prompt (zeros inside the frame)."""
        inner = self.image_size - 2 * self.pad
        centre = torch.zeros(1, 3, inner, inner, device=self.top.device, dtype=self.top.dtype)
        middle = torch.cat([self.left, centre, self.right], dim=3)
        return torch.cat([self.top, middle, self.bottom], dim=2)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return pixels + self.frame()


class PromptedModel(WrappedModel):
    """``base`` with a :class:`PaddingPrompt` added to its preprocessed pixels; everything else delegated."""

    def __init__(self, base: VisionLanguageModel, pad: int) -> None:
        super().__init__(base)
        self.prompt = PaddingPrompt(base.image_size, pad).to(base.device)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return self.prompt(self.base.preprocess(images))

    def _towers(self) -> dict[str, list[nn.Module]]:
        towers = self.base._towers()
        return {**towers, "image": [*towers.get("image", []), self.prompt]}

    def checkpoint_config(self) -> dict[str, Any]:
        return fold_prompt_into_model(self).checkpoint_config()


def _vit_tower(model: VisionLanguageModel) -> nn.Module | None:
    tower = getattr(model, "image_tower", None)
    if tower is not None and isinstance(getattr(tower, "patch_embed", None), nn.Conv2d) and hasattr(tower, "positions"):
        if tower.patch_embed.bias is None:
            return tower
    return None


def can_fold_prompt(model: VisionLanguageModel) -> bool:
    """Whether a prompted copy of ``model`` can be exported as a plain checkpoint (mmrobust ViT towers)."""
    return _vit_tower(model) is not None


def fold_prompt_into_model(prompted: PromptedModel) -> VisionLanguageModel:
    """A copy of the base model whose position embeddings absorb the prompt: identical outputs, no wrapper.

    ViT: ``patch_embed(x + P) = patch_embed(x) + patch_embed(P)`` (linear, no bias), and the second term is a
    fixed per-patch vector, i.e. an addition to the patch position embeddings.
    """
    base = prompted.base
    tower = _vit_tower(base)
    if tower is None:
        raise ConfigError(
            "--train prompt can only be exported for mmrobust ViT image towers (the prompt folds into their "
            "position embeddings); this model's image tower has no bias-free patch embedding"
        )
    folded = copy.deepcopy(base)
    folded_tower = _vit_tower(folded)
    with torch.no_grad():
        shift = folded_tower.patch_embed(prompted.prompt.frame().to(folded.device)).flatten(2).transpose(1, 2)[0]
        folded_tower.positions[1:] += shift
    return folded
