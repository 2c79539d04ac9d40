"""CLIP's causal text tower at toy scale: features are read at the end-of-text token."""

from __future__ import annotations

import torch
from torch import nn

from ..base import TextTokens
from .transformer_block import PreNormBlock


class CausalTextTower(nn.Module):
    """Token + position embeddings -> causal pre-norm blocks -> LayerNorm at the last real token.

    Why the last real token: with a causal mask it is the only position that has seen the whole text
    (CLIP pools at the end-of-text token the same way). Padding after it cannot influence it, so batches
    are cut at their longest text with identical features.
    """

    def __init__(self, vocab_size: int, context_length: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.output_dim = width
        self.context_length = context_length
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positions = nn.Parameter(torch.randn(context_length, width) * 0.01)
        self.blocks = nn.ModuleList(PreNormBlock(width, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def forward(self, tokens: TextTokens) -> torch.Tensor:
        ids = tokens.input_ids
        mask = tokens.attention_mask if tokens.attention_mask is not None else (ids != 0).long()
        lengths = mask.sum(dim=1).clamp(min=1)
        length = int(lengths.max())
        ids = ids[:, :length]
        x = self.token_embedding(ids) + self.positions[:length]
        causal = torch.ones(length, length, dtype=torch.bool, device=ids.device).tril()
        for block in self.blocks:
            x = block(x, attn_mask=causal)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0], device=x.device), lengths - 1]
