"""Tests only: small, *accurate* vision-language models built in a second, for robust-evaluation tests.

Why: the random ``tiny`` CLIP is at chance level, so "robust < clean" or "a huge eps drives accuracy to 0"
cannot be observed on it. ``prototype_digits_model`` is a real (if simple) zero-shot classifier on the
digits data: the image tower is a ridge-regression linear map (~94 % test accuracy) and the text tower maps a prompt to the one-hot vector of the digit name it
contains. ``MaskedGradientModel`` wraps any model and quantises its input with ``round()``, so its input
gradients are zero everywhere: the textbook gradient-masking defence the sanity checks must flag.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mmrobust.data.digits import DIGIT_NAMES, load_digits
from mmrobust.models.base import TextTokens, VisionLanguageModel


class _NameTokenizer:
    """Maps each text to the index of the (first) class name it contains (-1 if none)."""

    context_length = 1

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)

    def __call__(self, texts: Sequence[str]) -> TextTokens:
        ids = []
        for text in texts:
            words = text.lower().replace(".", " ").split()
            ids.append(next((i for i, name in enumerate(self.names) if name in words), 0))
        return TextTokens(torch.tensor(ids)[:, None], texts=list(texts))


class PrototypeVLM(VisionLanguageModel):
    backend = "test-prototype"

    def __init__(self, prototypes: torch.Tensor, mean_image: torch.Tensor, names: Sequence[str], scale: float = 30.0):
        super().__init__(spec="test:prototype-digits", image_size=8, image_mean=(0.0, 0.0, 0.0),
                         image_std=(1.0, 1.0, 1.0))
        self.image_proj = nn.Linear(prototypes.shape[1], prototypes.shape[0], bias=True)
        with torch.no_grad():
            self.image_proj.weight.copy_(prototypes)
            self.image_proj.bias.copy_(-(prototypes @ mean_image))
        self.text_table = nn.Embedding(len(names), len(names))
        with torch.no_grad():
            self.text_table.weight.copy_(torch.eye(len(names)))
        self._tokenizer = _NameTokenizer(names)
        self.register_buffer("_scale", torch.tensor(float(scale)))

    def _encode_normalized_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_proj(pixels.flatten(1))

    def _encode_tokens(self, tokens: TextTokens) -> torch.Tensor:
        return self.text_table(tokens.input_ids[:, 0])

    @property
    def tokenizer(self) -> _NameTokenizer:
        return self._tokenizer

    @property
    def logit_scale(self) -> torch.Tensor:
        return self._scale

    def _towers(self) -> dict[str, list[nn.Module]]:
        return {"image": [self.image_proj], "text": [self.text_table]}


def prototype_digits_model(ridge: float = 1.0) -> PrototypeVLM:
    """A linear digits classifier as a VLM: ridge regression onto one-hot labels (~94 % test accuracy),
    fit in closed form on the fixed train split in milliseconds; one grey channel, replicated 3 times."""
    train = load_digits(split="train")
    gray = torch.stack([train[i][0][0] for i in range(len(train))]).flatten(1)  # N x 64
    targets = torch.nn.functional.one_hot(torch.tensor(train.labels), 10).float()
    mean = gray.mean(dim=0)
    centred = gray - mean
    weights = torch.linalg.solve(centred.T @ centred + ridge * torch.eye(centred.shape[1]),
                                 centred.T @ (targets - targets.mean(dim=0)))  # 64 x 10
    per_channel = weights.T / 3
    return PrototypeVLM(torch.cat([per_channel] * 3, dim=1), torch.cat([mean] * 3), DIGIT_NAMES).eval()


class MaskedGradientModel(PrototypeVLM):
    """The prototype model behind ``round()`` input quantisation: zero input gradients, same predictions."""

    backend = "test-masked"

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return super().preprocess(torch.round(images * 255) / 255)


def masked_digits_model() -> MaskedGradientModel:
    base = prototype_digits_model()
    model = MaskedGradientModel.__new__(MaskedGradientModel)
    nn.Module.__init__(model)
    model.__dict__.update({k: v for k, v in base.__dict__.items()})
    model.spec = "test:masked-prototype-digits"
    return model.eval()
