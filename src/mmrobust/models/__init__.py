"""Models: one interface (:class:`VisionLanguageModel`), one adapter per backend, one spec registry."""

from .base import TextTokens, Tokenizer, VisionLanguageModel
from .checkpoint import load_checkpoint, save_checkpoint
from .registry import list_models, load_model, parse_spec

__all__ = [
    "TextTokens",
    "Tokenizer",
    "VisionLanguageModel",
    "load_checkpoint",
    "save_checkpoint",
    "list_models",
    "load_model",
    "parse_spec",
]
