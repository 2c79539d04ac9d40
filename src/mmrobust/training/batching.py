"""Which training images, in which order, on which process: a pure function of (seed, epoch, rank).

Why stateless: a resumed or data-parallel run must see exactly the batches an uninterrupted single-process
run sees. Deriving each epoch's permutation from ``(seed, epoch)`` means there is no sampler state to save,
and a global batch is split across ranks by position, so the union over ranks is the single-process batch.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.sampling import subsample_indices
from ..errors import DatasetError


def training_indices(labels: np.ndarray, n_train: int | None, shots: int | None, seed: int) -> list[int]:
    """The fixed training subset: all, ``n_train`` at random, or ``shots`` per class (seeded, fixed once).

    Unlike the reference's sampler, the k-shot set is drawn once and reused every epoch (the reference pops
    new images each epoch, so its "k-shot" run sees k x epochs images per class).
    """
    if shots is None:
        return subsample_indices(len(labels), n_train, seed)
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < shots:
            raise DatasetError(f"--shots {shots}: class {int(label)} has only {len(members)} training images")
        chosen.extend(int(i) for i in rng.choice(members, size=shots, replace=False))
    return sorted(chosen)


def epoch_order(indices: Sequence[int], seed: int, epoch: int) -> list[int]:
    """The training subset shuffled for ``epoch`` (the same on every process and after a resume)."""
    rng = np.random.default_rng([int(seed), int(epoch), 0x5EED])
    return [int(indices[i]) for i in rng.permutation(len(indices))]


def global_batches(order: Sequence[int], batch_size: int, world_size: int = 1) -> list[list[int]]:
    """Consecutive global batches; a last batch smaller than ``world_size`` is dropped (a rank would be empty)."""
    batches = [list(order[start : start + batch_size]) for start in range(0, len(order), batch_size)]
    if batches and len(batches[-1]) < world_size:
        batches.pop()
    return batches


def shard(batch: Sequence[int], rank: int, world_size: int) -> list[int]:
    """This rank's contiguous slice of a global batch (sizes differ by at most one)."""
    n = len(batch)
    start = rank * n // world_size
    stop = (rank + 1) * n // world_size
    return list(batch[start:stop])
