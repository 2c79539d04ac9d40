"""Zero-shot classification over a subset of k classes: the study's "attack strength vs. number of classes".

Why a view and not a filter: a k-class task needs both fewer images (those of the chosen classes) *and* a
k-way classifier (only the chosen class prompts compete), with labels renumbered 0..k-1 so every metric,
attack and sanity check sees an ordinary k-class dataset.

The classes are chosen by a seeded permutation and the first k taken, so for one seed the subsets are
nested (the 5-class task contains the 2-class one) and a sweep over k changes one thing at a time.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..data.base import ImageClassificationDataset
from ..errors import ConfigError


def choose_classes(n_classes: int, k: int, seed: int = 0) -> list[int]:
    """``k`` distinct class ids out of ``n_classes``, deterministic in ``seed``, sorted (nested in ``k``)."""
    if isinstance(k, bool) or int(k) != k:
        raise ConfigError(f"--n-classes must be an integer, got {k!r}")
    k = int(k)
    if k < 2:
        raise ConfigError(f"--n-classes must be at least 2 (one class is a trivial task), got {k}")
    if k > n_classes:
        raise ConfigError(f"--n-classes {k} exceeds the dataset's {n_classes} classes")
    if k == n_classes:
        return list(range(n_classes))
    order = np.random.default_rng(seed).permutation(n_classes)
    return sorted(int(c) for c in order[:k])


class ClassSubsetView(ImageClassificationDataset):
    """The images of ``class_ids`` only, relabelled 0..k-1 in the order of ``class_ids``."""

    def __init__(self, base: ImageClassificationDataset, class_ids: Sequence[int], seed: int | None = None) -> None:
        class_ids = [int(c) for c in class_ids]
        super().__init__(
            name=base.name, split=base.split, classes=[base.classes[c] for c in class_ids],
            templates=base.templates, root=base.root,
            class_synonyms=[base.class_synonyms[c] for c in class_ids],
        )
        self.base = base
        self.class_ids = class_ids
        self.seed = seed
        base_labels = np.asarray(base.labels)
        self.base_indices = np.flatnonzero(np.isin(base_labels, class_ids))
        remap = np.full(len(base.classes), -1, dtype=np.int64)
        remap[class_ids] = np.arange(len(class_ids))
        self._labels = remap[base_labels[self.base_indices]]

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def __len__(self) -> int:
        return len(self.base_indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, _ = self.base[int(self.base_indices[index])]
        return image, int(self._labels[index])

    def describe(self) -> dict[str, Any]:
        return {
            **self.base.describe(),
            "n_total": len(self),
            "n_classes": len(self.classes),
            "class_subset": {"k": len(self.class_ids), "of": len(self.base.classes), "class_ids": self.class_ids,
                             "seed": self.seed, "base_n_total": len(self.base)},
        }


def select_classes(dataset: ImageClassificationDataset, k: int | None, seed: int = 0) -> ImageClassificationDataset:
    """``dataset`` itself when ``k`` is None, else its k-class view (same ``seed`` -> same classes)."""
    if k is None:
        return dataset
    return ClassSubsetView(dataset, choose_classes(len(dataset.classes), k, seed), seed=seed)
