"""Seeding: one call makes python, numpy and torch deterministic for a run.

Why a function and not a global: the seed is part of each run's report, so callers pass it explicitly
and record it; nothing in mmrobust seeds behind the user's back.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ..errors import ConfigError

#: the largest seed every consumer accepts (torch generators take a signed 64-bit value)
MAX_SEED = 2**63 - 1


def check_seed(seed: object) -> int:
    """A seed as typed by a user: an integer in [0, 2**63 - 1], else one ConfigError line."""
    if isinstance(seed, bool) or not isinstance(seed, (int, float)) or int(seed) != seed or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be an integer from 0 to {MAX_SEED}, got {seed}")
    return int(seed)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU generator seeded the same way for local sampling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
