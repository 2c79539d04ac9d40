"""scikit-learn's real ``digits`` (1,797 handwritten 8 x 8 images, 10 classes), with a fixed split.

The embedded offline dataset: it ships with scikit-learn, so the README's main job needs no download.
The train/test split is fixed (stratified, seed 0, 25 % test) so every run and every proxy model agree
on which images are held out.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DatasetError
from .base import TensorImageDataset
from .templates import DIGIT_TEMPLATES

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def digits_split_indices() -> dict[str, np.ndarray]:
    """The fixed train/test indices into ``sklearn.datasets.load_digits()``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    train, test = train_test_split(np.arange(len(labels)), test_size=0.25, random_state=0, stratify=labels)
    return {"train": np.sort(train), "test": np.sort(test), "all": np.arange(len(labels))}


def load_digits(root: object = None, split: str = "test") -> TensorImageDataset:
    """``root`` is ignored (the data ships with scikit-learn); split is train, test or all."""
    from sklearn.datasets import load_digits as sk_load_digits

    splits = digits_split_indices()
    if split not in splits:
        raise DatasetError(f"digits has splits {sorted(splits)}, not {split!r}")
    bunch = sk_load_digits()
    index = splits[split]
    gray = np.round(bunch.images[index] / 16.0 * 255.0).astype(np.uint8)  # values 0..16 -> 0..255
    images = torch.from_numpy(gray).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return TensorImageDataset(
        images, bunch.target[index].tolist(), name="digits", split=split, classes=DIGIT_NAMES,
        templates=DIGIT_TEMPLATES,
    )
