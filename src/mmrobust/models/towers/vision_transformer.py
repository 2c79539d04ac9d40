"""A small Vision Transformer image tower (CLS-token output), CLIP's image-encoder shape at toy scale."""

from __future__ import annotations

import torch
from torch import nn

from .transformer_block import PreNormBlock


class VisionTransformerTower(nn.Module):
    """Patchify -> [CLS] + positions -> pre-norm blocks -> LayerNorm(CLS)."""

    def __init__(self, image_size: int, patch_size: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.output_dim = width
        n_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.cls_token = nn.Parameter(torch.randn(width) * width**-0.5)
        self.positions = nn.Parameter(torch.randn(n_patches + 1, width) * 0.02)
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(PreNormBlock(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)

    def _tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positions)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.ln_post(self._tokens(pixels)[:, 0])

    def forward_spatial(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(CLS, patch tokens)``, both after ``ln_post`` (as CLIP's ViT applies it to every token): N x W and
        N x P x W, patches in row-major order."""
        x = self.ln_post(self._tokens(pixels))
        return x[:, 0], x[:, 1:]
