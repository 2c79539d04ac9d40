"""Planned work and its ceilings: say what a long command will do, and refuse what it could never finish.

Why: a typo (``--steps 1000000000``, ``-b 1000000000``) used to start a run that would take years or die
mid-way; now every long command (eval, benchmark, train, the studies) prints its plan in one line and refuses,
in one line naming the ceiling and :data:`ALLOW_FLAG`, a batch larger than its split and a plan whose estimate
exceeds :data:`WEEK_S`. The estimate is measured, not guessed: one gradient step on the first batch is timed
(:func:`time_step`) and multiplied by the planned number of such steps, before the real work starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable, Mapping, Sequence

from ..errors import ConfigError

#: the flag that lifts every ceiling below (the field ``allow_long_run`` of :class:`mmrobust.options.run.BudgetOptions`)
ALLOW_FLAG = "--allow-long-run"
#: the longest estimated run started without ALLOW_FLAG
WEEK_S = 7 * 24 * 3600.0
#: a batch up to this size is never refused, whatever the split: every command's default batch (64-128) runs on
#: a small folder dataset as before; above it, a batch larger than the split is a typo
BATCH_FLOOR = 256


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
    """Refuse a batch larger than the split it reads (a typo; the batch would be the split anyway); batches up
    to :data:`BATCH_FLOOR` always pass."""
    ceiling = max(split_size, BATCH_FLOOR)
    if not allow and batch_size > ceiling:
        raise ConfigError(f"{flag} {batch_size:,} exceeds the ceiling of {ceiling:,} (the {split_size:,} images in "
                          f"{split}, at least {BATCH_FLOOR}); lower it or pass {ALLOW_FLAG}")


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


@dataclass(frozen=True)
class OverBudget:
    """The numbers of a refused estimate; the message names the flags of the command that runs it."""

    estimate: float
    steps: int
    step_seconds: float
    what: tuple[str, str]
    flags: tuple[str, ...]
    ceiling: float

    def message(self) -> str:
        return (f"the plan would take about {duration(self.estimate)} ({self.steps:,} {self.what[0]} × "
                f"{self.step_seconds:.2g} s, {self.what[1]}), over the ceiling of {self.ceiling / 86400:g} days; "
                f"lower {' or '.join(self.flags)} or pass {ALLOW_FLAG}")


class BudgetError(ConfigError):
    """An estimate over the ceiling. A command whose flags differ from the run's own (a study's ``--eval-steps``
    sizes an evaluation's ``--steps``) re-raises it with :meth:`naming`."""

    def __init__(self, over: OverBudget) -> None:
        super().__init__(over.message())
        self.over = over

    def naming(self, flags: Mapping[str, str]) -> "BudgetError":
        """The same refusal naming the caller's flags (``{"--steps": "--eval-steps"}``)."""
        return BudgetError(replace(self.over, flags=tuple(flags.get(f, f) for f in self.over.flags)))


def check_estimate(step_seconds: float, steps: int, what: tuple[str, str], allow: bool, flags: Sequence[str],
                   ceiling: float | None = None) -> float:
    """Refuse a run whose estimate (``steps`` × ``step_seconds``, measured on the first batch) exceeds ``ceiling``.

    ``what``: (what a step is, where one was timed), e.g. ``("attack steps", "one timed on the first batch")``;
    ``flags``: the options that size the run."""
    estimate = step_seconds * steps
    ceiling = WEEK_S if ceiling is None else ceiling
    if not allow and estimate > ceiling:
        raise BudgetError(OverBudget(estimate, steps, step_seconds, what, tuple(flags), ceiling))
    return estimate
