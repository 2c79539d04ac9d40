"""Rebuild a :class:`NativeCLIP` from a checkpoint config (the architecture is in the config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ModelLoadError
from .checkpoint import VOCAB_NAME
from .native import NativeCLIP


def from_checkpoint_config(config: dict[str, Any], folder: Path, spec: str, device: str = "cpu") -> NativeCLIP:
    """The model the config declares; ``device="meta"`` builds shapes only (checked before the real build)."""
    vocab = folder / VOCAB_NAME
    try:
        with torch.device(device):
            return NativeCLIP(config["architecture"], spec=spec, vocab_file=vocab if vocab.exists() else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"checkpoint {folder} has an invalid architecture config: {exc}") from None
