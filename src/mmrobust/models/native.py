"""mmrobust's own CLIP: configurable image and text towers, linear projections and a learned temperature.

Used by the ``tiny`` test model, the offline proxy models and every checkpoint mmrobust writes for them.
The config dict fully describes the architecture so a checkpoint folder rebuilds it without code.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import TextTokens, Tokenizer, VisionLanguageModel
from .tokenizers import WordPieceTokenizer, default_vocab_file
from .towers import build_image_tower, build_text_tower

#: CLIP's pixel statistics (OpenAI), the default normalisation of mmrobust's own models
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: resize modes NativeCLIP handles itself (see :meth:`NativeCLIP.preprocess`)
ANTIALIASED_RESIZE_MODES = ("area", "bicubic-aa", "bilinear-aa")


class NativeCLIP(VisionLanguageModel):
    """Dual encoder built from a config::

        {"image_size": 32, "embed_dim": 64, "image_mean": [...], "image_std": [...],
         "image_tower": {"type": "vit", ...}, "text_tower": {"type": "causal_transformer", ...},
         "tokenizer": {"type": "wordpiece", "context_length": 32}, "init_logit_scale": 2.659}
    """

    backend = "native"

    def __init__(self, config: dict[str, Any], spec: str = "native", vocab_file: str | Path | None = None) -> None:
        super().__init__(
            spec=spec,
            image_size=config["image_size"],
            image_mean=config.get("image_mean", CLIP_MEAN),
            image_std=config.get("image_std", CLIP_STD),
            resize_mode=config.get("resize_mode", "bicubic"),
        )
        self.config = copy.deepcopy(config)
        embed_dim = int(config["embed_dim"])
        self.image_tower = build_image_tower(config["image_tower"])
        self.text_tower = build_text_tower(config["text_tower"])
        self.image_projection = nn.Linear(self.image_tower.output_dim, embed_dim, bias=False)
        self.text_projection = nn.Linear(self.text_tower.output_dim, embed_dim, bias=False)
        self.log_logit_scale = nn.Parameter(torch.tensor(float(config.get("init_logit_scale", math.log(1 / 0.07)))))
        tok_cfg = config.get("tokenizer", {"type": "wordpiece"})
        if tok_cfg.get("type", "wordpiece") != "wordpiece":
            raise ValueError(f"unknown tokenizer type {tok_cfg.get('type')!r}")
        self.vocab_file = Path(vocab_file) if vocab_file is not None else default_vocab_file()
        self._tokenizer = WordPieceTokenizer(self.vocab_file, context_length=tok_cfg.get("context_length", 32))
        self.max_logit_scale = float(config.get("max_logit_scale", 100.0))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """As the base class, plus two anti-aliased resize modes for models trained on downscaled photos.

        ``"area"`` (box filter) and ``"bicubic-aa"`` / ``"bilinear-aa"`` (``antialias=True``) avoid the
        aliasing plain bicubic produces when shrinking e.g. 64 px Tiny-ImageNet images to 32 px; they are
        differentiable, so attacks still see through them. Other modes behave exactly as before.
        """
        if self.resize_mode not in ANTIALIASED_RESIZE_MODES:
            return super().preprocess(images)
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape N x 3 x H x W, got {tuple(images.shape)}")
        if images.shape[-2:] != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            if self.resize_mode == "area":
                images = F.interpolate(images, size=size, mode="area")
            else:
                mode = self.resize_mode.removesuffix("-aa")
                images = F.interpolate(images, size=size, mode=mode, align_corners=False, antialias=True)
        return (images - self.pixel_mean) / self.pixel_std

    def _encode_normalized_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_projection(self.image_tower(pixels))

    def _encode_normalized_images_spatial(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The tower's ``forward_spatial`` (pooled and grid features) through the image projection."""
        forward_spatial = getattr(self.image_tower, "forward_spatial", None)
        if forward_spatial is None:
            return super()._encode_normalized_images_spatial(pixels)
        pooled, spatial = forward_spatial(pixels)
        return self.image_projection(pooled), self.image_projection(spatial)

    def _encode_tokens(self, tokens: TextTokens) -> torch.Tensor:
        return self.text_projection(self.text_tower(tokens))

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def logit_scale(self) -> torch.Tensor:
        # Clamped like CLIP's training (<= 100) so a fine-tune cannot blow up the temperature.
        return self.log_logit_scale.exp().clamp(max=self.max_logit_scale)

    def _towers(self) -> dict[str, list[nn.Module]]:
        return {"image": [self.image_tower, self.image_projection], "text": [self.text_tower, self.text_projection]}

    def token_embedding(self) -> nn.Embedding | None:
        emb = getattr(self.text_tower, "token_embedding", None)
        return emb if isinstance(emb, nn.Embedding) else None

    def checkpoint_config(self) -> dict[str, Any]:
        return {"backend": self.backend, "architecture": copy.deepcopy(self.config)}
