"""The batch loop of zero-shot classification: per-example predictions for a fixed index list.

Per-example correctness (not just an accuracy) is kept so attacks can be combined point-wise
(worst case over attacks) and runs can be resumed batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.base import ImageClassificationDataset
from ..data.loader import iterate_index_batches
from ..models.zeroshot import check_finite_logits
from ..stats import wilson_interval


@dataclass
class Batch:
    """One batch of the evaluation subset: positions in the index list, images and labels on ``device``."""

    positions: range
    images: torch.Tensor
    labels: torch.Tensor


def iterate_batches(
    dataset: ImageClassificationDataset,
    indices: Sequence[int],
    batch_size: int,
    device: torch.device | str,
    start_position: int = 0,
    progress: str | None = None,
    workers: int | None = None,
) -> Iterator[Batch]:
    """Yield batches of ``dataset[indices]`` in order, from ``start_position`` (for resumed runs).

    File-backed datasets are decoded by ``workers`` DataLoader processes ahead of use (None = automatic,
    see :func:`mmrobust.data.loader.auto_workers`); the batches are the same whatever ``workers`` is.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    starts = range(start_position, len(indices), batch_size)
    spans = [(start, min(start + batch_size, len(indices))) for start in starts]
    loaded = iterate_index_batches(dataset, [indices[a:b] for a, b in spans], workers)
    bar = tqdm(spans, desc=progress, unit="batch", disable=progress is None, leave=False)
    for (start, stop), (images, labels) in zip(bar, loaded):
        yield Batch(range(start, stop), images.to(device), labels.to(device))


@torch.no_grad()
def predict(
    classifier: Callable[[torch.Tensor], torch.Tensor],
    dataset: ImageClassificationDataset,
    indices: Sequence[int],
    batch_size: int,
    device: torch.device | str,
    progress: str | None = "clean",
) -> tuple[np.ndarray, np.ndarray]:
    """(predicted labels, true labels) for every index, in order."""
    preds, labels = [], []
    for batch in iterate_batches(dataset, indices, batch_size, device, progress=progress):
        logits = classifier(batch.images)
        check_finite_logits(logits, f"batch at position {batch.positions.start}")
        preds.append(logits.argmax(dim=1).cpu())
        labels.append(batch.labels.cpu())
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def accuracy_summary(correct: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float | int]:
    """Accuracy with its binomial standard error, 95 % Wilson interval and per-class accuracy."""
    n = int(correct.size)
    acc = float(correct.mean()) if n else float("nan")
    per_class = [float(correct[labels == c].mean()) if (labels == c).any() else None for c in range(n_classes)]
    return {
        "accuracy": acc,
        "n_correct": int(correct.sum()),
        "n": n,
        "std_error": float(np.sqrt(acc * (1 - acc) / n)) if n else float("nan"),
        "ci95_wilson": list(wilson_interval(int(correct.sum()), n)),
        "per_class_accuracy": per_class,
    }
