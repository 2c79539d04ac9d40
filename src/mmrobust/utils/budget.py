"""Planned work and its ceilings: say what a long command will do, and refuse what it could never finish.

Why: a typo (``--steps 1000000000``, ``-b 1000000000``) used to start a run that would take years or die
mid-way; now every long command (eval, benchmark, train, the studies) prints its plan in one line and refuses,
in one line naming the ceiling and :data:`ALLOW_FLAG`, a batch larger than its split and a plan whose estimate
exceeds :data:`WEEK_S`. The estimate is measured, not guessed: one gradient step on the first batch is timed
(:func:`time_step`) and multiplied by the planned number of such steps, before the real work starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from ..errors import ConfigError

#: the flag that lifts every ceiling below (the field ``allow_long_run`` of :class:`mmrobust.options.run.BudgetOptions`)
ALLOW_FLAG = "--allow-long-run"
#: the longest estimated run started without ALLOW_FLAG
WEEK_S = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Plan:
    """A command's planned work: its factors (``(count, unit)``, multiplied) and what one unit of work is."""

    factors: tuple[tuple[int, str], ...]
    #: what the product counts, e.g. "image-steps" (one attack step on one image)
    unit: str

    @property
    def total(self) -> int:
        product = 1
        for count, _ in self.factors:
            product *= int(count)
        return product

    def line(self) -> str:
        """``plan: 32 images × 1 attack × 10 steps = 320 image-steps``."""
        parts = " × ".join(f"{count:,} {unit}" for count, unit in self.factors)
        return f"plan: {parts} = {self.total:,} {self.unit}"


def plural(count: int, word: str) -> str:
    """``(1, "attack")`` -> ``attack``, ``(2, "attack")`` -> ``attacks``."""
    return word if count == 1 else word + "s"


def check_batch_size(batch_size: int, split_size: int, split: str, allow: bool, flag: str = "--batch-size") -> None:
    """Refuse a batch larger than the split it reads (a typo; the batch would be the split anyway)."""
    if not allow and batch_size > split_size:
        raise ConfigError(f"{flag} {batch_size:,} exceeds the ceiling of {split_size:,} (the images in {split}); "
                          f"lower it or pass {ALLOW_FLAG}")


def time_step(step: Callable[[], object]) -> float:
    """Seconds one call of ``step`` takes (the first call: warm-up included, so the estimate errs high)."""
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def duration(seconds: float) -> str:
    """``3.2 years``, ``5.0 days``, ``3.1 h``, ``42 s``: a human reading of an estimate."""
    for limit, size, unit in ((365 * 86400.0, 365 * 86400.0, "years"), (86400.0, 86400.0, "days"),
                              (3600.0, 3600.0, "h"), (60.0, 60.0, "min")):
        if seconds >= limit:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def check_estimate(step_seconds: float, steps: int, what: tuple[str, str], allow: bool, flags: Sequence[str],
                   ceiling: float = WEEK_S) -> float:
    """Refuse a run whose estimate (``steps`` × ``step_seconds``, measured on the first batch) exceeds ``ceiling``.

    ``what``: (what a step is, where one was timed), e.g. ``("attack steps", "one timed on the first batch")``;
    ``flags``: the options that size the run."""
    estimate = step_seconds * steps
    if not allow and estimate > ceiling:
        raise ConfigError(
            f"the plan would take about {duration(estimate)} ({steps:,} {what[0]} × {step_seconds:.2g} s, {what[1]}), "
            f"over the ceiling of {ceiling / 86400:g} days; lower {' or '.join(flags)} or pass {ALLOW_FLAG}")
    return estimate
