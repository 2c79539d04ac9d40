"""A model that wraps another and changes one step, delegating everything else to it.

Why one class: a visual prompt (training) and a test-time defense (evaluation) each change one step of the
pipeline — the preprocessed pixels, or the pixels before encoding — and must keep every other behaviour of the
wrapped model exactly (tokenizer, temperature, towers, spatial tokens), so the delegation is written once.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .base import TextTokens, Tokenizer, VisionLanguageModel


class WrappedModel(VisionLanguageModel):
    """``base`` behind a wrapper: same spec, size, normalisation and backend; subclasses override one step."""

    def __init__(self, base: VisionLanguageModel) -> None:
        super().__init__(spec=base.spec, image_size=base.image_size,
                         image_mean=base.pixel_mean.flatten().tolist(), image_std=base.pixel_std.flatten().tolist(),
                         resize_mode=base.resize_mode)
        self.backend = base.backend
        self.base = base

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return self.base.preprocess(images)

    def _encode_normalized_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.base._encode_normalized_images(pixels)

    def _encode_normalized_images_spatial(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base._encode_normalized_images_spatial(pixels)

    def _encode_tokens(self, tokens: TextTokens) -> torch.Tensor:
        return self.base._encode_tokens(tokens)

    @property
    def tokenizer(self) -> Tokenizer:
        return self.base.tokenizer

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.base.logit_scale

    def _towers(self) -> dict[str, list[nn.Module]]:
        return self.base._towers()

    def token_embedding(self) -> nn.Embedding | None:
        return self.base.token_embedding()
