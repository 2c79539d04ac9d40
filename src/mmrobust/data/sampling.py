"""Deterministic sub-sampling: the same seed gives the same images on every machine and run.

The indices are recorded in reports (with a hash), so "n = 1000" always names a concrete, reproducible set.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from ..errors import DatasetError


def subsample_indices(n_total: int, n_samples: int | None, seed: int = 0) -> list[int]:
    """``n_samples`` distinct indices drawn with numpy's PCG64 under ``seed``, sorted; all if None."""
    if n_samples is None:
        return list(range(n_total))
    if n_samples < 1:
        raise DatasetError(f"--n-samples must be at least 1, got {n_samples}")
    if n_samples > n_total:
        raise DatasetError(f"--n-samples {n_samples} is larger than the split ({n_total} images)")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n_total, size=n_samples, replace=False))


def indices_sha256(indices: Sequence[int]) -> str:
    """A short, order-sensitive fingerprint of an index list."""
    return hashlib.sha256(",".join(str(int(i)) for i in indices).encode()).hexdigest()
