"""Seeding: one call makes python, numpy and torch deterministic for a run.

Why a function and not a global: the seed is part of each run's report, so callers pass it explicitly
and record it; nothing in mmrobust seeds behind the user's back.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator seeded the same way for local sampling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
