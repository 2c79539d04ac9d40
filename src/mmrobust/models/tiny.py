"""``tiny``: a randomly initialised CLIP that builds in well under a second, for tests and smoke runs.

Its accuracy is chance level: it exists to exercise code paths, never to measure robustness.
"""

from __future__ import annotations

import torch

from .native import NativeCLIP

TINY_CONFIG = {
    "image_size": 32,
    "embed_dim": 64,
    "image_tower": {"type": "vit", "image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "heads": 4},
    "text_tower": {"type": "causal_transformer", "vocab_size": 30522, "context_length": 32, "width": 64,
                   "layers": 2, "heads": 4},
    "tokenizer": {"type": "wordpiece", "context_length": 32},
}


def build_tiny(seed: int = 0, spec: str = "tiny") -> NativeCLIP:
    """The same weights for the same seed, without touching the global RNG."""
    devices = []  # fork_rng on CPU only; no CUDA state involved in building
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = NativeCLIP(TINY_CONFIG, spec=spec)
    return model.eval()
