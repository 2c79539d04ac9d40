"""The one model interface every attack, defense and evaluation in mmrobust talks to.

Why pixels in [0, 1] with preprocessing *inside* the model: adversarial perturbations, eps-balls and
clipping are defined in pixel space, so the model must own resizing and normalisation (the most repeated
question in the attack libraries' trackers is where normalisation goes; the answer is "inside").
Every backend (open_clip, Hugging Face, mmrobust's own checkpoints, the ``tiny`` test model) is an adapter
that subclasses :class:`VisionLanguageModel` and implements three small hooks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TextTokens:
    """A tokenised batch of texts, the common currency between tokenizers and text towers.

    ``attention_mask`` is None for towers that find the end of text themselves (CLIP's causal tower).
    ``n_truncated`` counts texts that did not fit the context and were cut, so callers can say so.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None = None
    n_truncated: int = 0
    texts: list[str] = field(default_factory=list)

    def to(self, device: torch.device | str) -> "TextTokens":
        mask = None if self.attention_mask is None else self.attention_mask.to(device)
        return TextTokens(self.input_ids.to(device), mask, self.n_truncated, self.texts)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


class Tokenizer(Protocol):
    """Turns strings into :class:`TextTokens`; ``context_length`` is the most tokens a text may have."""

    context_length: int

    def __call__(self, texts: Sequence[str]) -> TextTokens: ...


class VisionLanguageModel(nn.Module, ABC):
    """A CLIP-style dual encoder seen through pixel space.

    Subclasses implement :meth:`_encode_normalized_images`, :meth:`_encode_tokens`, the ``tokenizer``
    and ``logit_scale`` properties, and :meth:`_towers` (which modules are the image and text sides, used
    to build the named parameter groups that fine-tuning chooses from).
    """

    #: short backend name written into reports and checkpoints ("native", "open_clip", "hf")
    backend: str = "abstract"

    def __init__(
        self,
        *,
        spec: str,
        image_size: int,
        image_mean: Sequence[float],
        image_std: Sequence[float],
        resize_mode: str = "bicubic",
    ) -> None:
        super().__init__()
        self.spec = spec
        self.image_size = int(image_size)
        self.resize_mode = resize_mode
        # Non-persistent: mean/std are configuration, not weights, and must not collide with backend keys.
        self.register_buffer("pixel_mean", torch.tensor(list(image_mean)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(list(image_std)).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ backend hooks
    @abstractmethod
    def _encode_normalized_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Backend image tower on already resized and normalised pixels -> N x D features."""

    @abstractmethod
    def _encode_tokens(self, tokens: TextTokens) -> torch.Tensor:
        """Backend text tower on tokens -> N x D features."""

    def _encode_normalized_images_spatial(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Optional hook: ``(pooled N x D, spatial N x P x D)`` from one pass of the image tower.

        ``pooled`` is what :meth:`_encode_normalized_images` returns; ``spatial`` are the P = h x w grid
        tokens (a ViT's patch tokens, a CNN's last feature map) in row-major order, each sent through the same
        final norm and projection as the pooled token, so they live in the joint image-text space.
        """
        raise NotImplementedError(f"{type(self).__name__} ({self.spec}) does not expose spatial image tokens")

    @property
    @abstractmethod
    def tokenizer(self) -> Tokenizer:
        """The tokenizer matching the text tower."""

    @property
    @abstractmethod
    def logit_scale(self) -> torch.Tensor:
        """The multiplicative temperature (already exponentiated), a scalar tensor."""

    @abstractmethod
    def _towers(self) -> dict[str, list[nn.Module]]:
        """Modules making up the "image" and "text" sides (projections included)."""

    # ------------------------------------------------------------------ public interface
    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize [0, 1] pixels to the native size and normalise; differentiable, so attacks see through it."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape N x 3 x H x W, got {tuple(images.shape)}")
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(
                images, size=(self.image_size, self.image_size), mode=self.resize_mode, align_corners=False
            )
        return (images - self.pixel_mean) / self.pixel_std

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed images given as pixels in [0, 1] (N x 3 x H x W, any H, W)."""
        features = self._encode_normalized_images(self.preprocess(images))
        return F.normalize(features, dim=-1) if normalize else features

    def encode_image_and_spatial(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pooled N x D, spatial N x P x D)`` of [0, 1] pixels from one forward pass, both unnormalised.

        ``pooled`` equals :meth:`encode_image`; ``spatial`` are the grid tokens projected into the joint space
        (what text-guided attention, e.g. TGA-ZSR, compares with a text embedding). Backends without such
        tokens raise ``NotImplementedError``.
        """
        return self._encode_normalized_images_spatial(self.preprocess(images))

    def encode_image_spatial(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """The N x P x D spatial tokens of :meth:`encode_image_and_spatial` (``normalize``: each token to unit
        L2 norm over D)."""
        spatial = self.encode_image_and_spatial(images)[1]
        return F.normalize(spatial, dim=-1) if normalize else spatial

    def tokenize(self, texts: Sequence[str]) -> TextTokens:
        """Tokenise strings with the model's own tokenizer, on the model's device."""
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer(list(texts)).to(self.device)

    def encode_text(self, texts: Sequence[str] | TextTokens | torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """Embed texts given as strings, :class:`TextTokens` or a tensor of token ids."""
        if isinstance(texts, torch.Tensor):
            tokens = TextTokens(texts.to(self.device))
        elif isinstance(texts, TextTokens):
            tokens = texts.to(self.device)
        else:
            tokens = self.tokenize(texts)
        features = self._encode_tokens(tokens)
        return F.normalize(features, dim=-1) if normalize else features

    def forward(self, images: torch.Tensor, texts: Sequence[str] | TextTokens) -> torch.Tensor:
        """CLIP's pairwise logits: ``logit_scale * cos(image_i, text_j)``, shape N_images x N_texts."""
        image_features = self.encode_image(images, normalize=True)
        text_features = self.encode_text(texts, normalize=True)
        return self.logit_scale * image_features @ text_features.t()

    def named_parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Named parameters per group: ``image``, ``text``, ``other`` (e.g. logit scale) and ``all``.

        Fine-tuning picks a group by name (the study's "which parameters are trained" axis).
        """
        towers = self._towers()
        ids: dict[str, set[int]] = {
            side: {id(p) for module in modules for p in module.parameters()} for side, modules in towers.items()
        }
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {"image": [], "text": [], "other": [], "all": []}
        for name, param in self.named_parameters():
            groups["all"].append((name, param))
            if id(param) in ids.get("image", set()):
                groups["image"].append((name, param))
            elif id(param) in ids.get("text", set()):
                groups["text"].append((name, param))
            else:
                groups["other"].append((name, param))
        return groups

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Like :meth:`named_parameter_groups` without the names."""
        return {k: [p for _, p in v] for k, v in self.named_parameter_groups().items()}

    def token_embedding(self) -> nn.Embedding | None:
        """The text tower's word-embedding table, if it has one (used by embedding-space text attacks)."""
        return None

    def describe(self) -> dict[str, Any]:
        """What reports record about the model."""
        n_params = sum(p.numel() for p in self.parameters())
        return {
            "spec": self.spec,
            "backend": self.backend,
            "image_size": self.image_size,
            "context_length": getattr(self.tokenizer, "context_length", None),
            "n_parameters": n_params,
        }

    @property
    def device(self) -> torch.device:
        try:
            return next(self.parameters()).device
        except StopIteration:
            return self.pixel_mean.device

    def write_checkpoint_files(self, folder: Path) -> None:
        """Backend files a checkpoint needs besides weights and config (e.g. tokenizer files); none by default."""

    def checkpoint_config(self) -> dict[str, Any]:
        """How to rebuild this model's architecture when loading an mmrobust checkpoint of it."""
        raise NotImplementedError(f"{type(self).__name__} cannot be saved as an mmrobust checkpoint")
