"""Image and text towers of mmrobust's own CLIP architecture, built from a config dict.

Adding a tower = one new file plus one line in ``IMAGE_TOWERS`` / ``TEXT_TOWERS``. A tower maps
normalised pixels (image) or :class:`~mmrobust.models.base.TextTokens` (text) to N x width features;
projections into the joint space live in :class:`~mmrobust.models.native.NativeCLIP`.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from .bert import BertTextTower
from .conv_net import ConvImageTower
from .text_transformer import CausalTextTower
from .vision_transformer import VisionTransformerTower

IMAGE_TOWERS: dict[str, Callable[..., nn.Module]] = {
    "vit": VisionTransformerTower,
    "convnet": ConvImageTower,
}
TEXT_TOWERS: dict[str, Callable[..., nn.Module]] = {
    "causal_transformer": CausalTextTower,
    "bert": BertTextTower,
}


def _build(registry: dict[str, Callable[..., nn.Module]], config: dict[str, Any], side: str) -> nn.Module:
    kind = config.get("type")
    if kind not in registry:
        raise ValueError(f"unknown {side} tower type {kind!r}; known: {sorted(registry)}")
    kwargs = {k: v for k, v in config.items() if k != "type"}
    return registry[kind](**kwargs)


def build_image_tower(config: dict[str, Any]) -> nn.Module:
    return _build(IMAGE_TOWERS, config, "image")


def build_text_tower(config: dict[str, Any]) -> nn.Module:
    return _build(TEXT_TOWERS, config, "text")
