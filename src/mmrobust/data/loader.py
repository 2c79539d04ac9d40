"""Batches of a dataset in a fixed order: in-memory sets by tensor indexing, file-backed sets by a DataLoader.

Why two paths: CIFAR and digits live in one uint8 tensor, where indexing a whole batch is exact and
faster than any worker process. Tiny-ImageNet, ImageFolder and wds decode one file per image; there
``torch.utils.data.DataLoader`` worker processes decode the next batches while the model (or an attack)
works on the current one. The batch list is fixed by the caller (evaluation positions, a training epoch's
permutation), the DataLoader returns batches in that order whatever the number of workers, so results
do not depend on ``workers`` (tested).
"""

from __future__ import annotations

import os
from typing import Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from ..errors import DatasetError, MMRobustError
from .base import ImageClassificationDataset, SubsetView, TensorImageDataset

#: batches each worker decodes ahead (DataLoader's prefetch_factor)
PREFETCH_BATCHES = 2
#: the automatic worker count never exceeds this
MAX_AUTO_WORKERS = 4
#: below this many usable cores the automatic choice is 0 workers: on a (loaded) 2-core machine 1 or 2
#: workers made Tiny-ImageNet decoding 0.75-0.80x as fast as decoding in-process (bench/RESULTS_data_loader.md)
MIN_CORES_FOR_WORKERS = 4


def in_memory_view(dataset: ImageClassificationDataset) -> tuple[TensorImageDataset, list[int] | None] | None:
    """``(tensor dataset, index map)`` when ``dataset`` is (a subset chain of) an in-memory set, else None."""
    mapping: list[int] | None = None
    while isinstance(dataset, SubsetView):
        mapping = list(dataset.indices) if mapping is None else [dataset.indices[i] for i in mapping]
        dataset = dataset.base
    return (dataset, mapping) if isinstance(dataset, TensorImageDataset) else None


def auto_workers(dataset: ImageClassificationDataset) -> int:
    """0 for in-memory sets and on small machines; else half the cores, at most :data:`MAX_AUTO_WORKERS`."""
    if in_memory_view(dataset) is not None:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < MIN_CORES_FOR_WORKERS else min(MAX_AUTO_WORKERS, cores // 2)


def _stack(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        images = torch.stack([image for image, _ in items])
    except RuntimeError:
        sizes = sorted({tuple(image.shape) for image, _ in items})
        raise DatasetError(f"images of different sizes in one batch ({sizes[:3]}): this dataset needs a fixed "
                           f"image size") from None
    return images, torch.tensor([int(label) for _, label in items], dtype=torch.long)


def _one_line(exc: MMRobustError) -> MMRobustError:
    """A DataLoader worker re-raises our error with its traceback in the message; keep the last line."""
    text = str(exc)
    if "Original Traceback" not in text:
        return exc
    last = text.strip().splitlines()[-1]
    return type(exc)(last.split(": ", 1)[1] if ": " in last else last)


def iterate_index_batches(
    dataset: ImageClassificationDataset, batches: Sequence[Sequence[int]], workers: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` on the CPU for each index list in ``batches``, in order.

    ``workers=None`` chooses :func:`auto_workers`; ``0`` decodes in this process.
    """
    view = in_memory_view(dataset)
    if view is not None:
        base, mapping = view
        for batch in batches:
            rows = [int(i) if mapping is None else mapping[int(i)] for i in batch]
            index = torch.as_tensor(rows, dtype=torch.long)
            yield base.images[index].float().div_(255.0), torch.as_tensor(base.labels[rows], dtype=torch.long)
        return
    workers = auto_workers(dataset) if workers is None else int(workers)
    if workers < 0:
        raise DatasetError(f"--workers must be 0 or more, got {workers}")
    if workers == 0:
        for batch in batches:
            yield _stack([dataset[int(i)] for i in batch])
        return
    batch_list = [[int(i) for i in batch] for batch in batches]
    if len(batch_list) <= 1:  # nothing to decode ahead of
        for batch in batch_list:
            yield _stack([dataset[i] for i in batch])
        return
    loader = DataLoader(dataset, batch_sampler=batch_list, num_workers=min(workers, max(1, len(batch_list))),
                        collate_fn=_stack, prefetch_factor=PREFETCH_BATCHES, persistent_workers=False)
    try:
        yield from loader
    except MMRobustError as exc:
        raise _one_line(exc) from None
