"""Statistics for accuracy tables: intervals, paired tests and seed aggregation.

Why: an accuracy on n = 200 images has a 95 % interval about ±7 points wide, and two models evaluated on the
*same* images must be compared with a paired test (their errors are correlated), not by eyeballing two
intervals. The study (Zhou et al. 2024) reports point accuracies only; these functions let every mmrobust
table say which differences are real. Pure functions on plain numbers/boolean vectors; numpy only (the
exact binomial tail is summed in log space, so no scipy is needed at runtime).

- :func:`wilson_interval`: Wilson score interval for a binomial proportion (Wilson 1927), which, unlike the
  normal "± 1.96 se" interval, stays inside [0, 1] and keeps its coverage at 0 % or 100 % accuracy.
- :func:`mcnemar_exact`: exact (binomial) McNemar test on the discordant pairs of two paired correctness
  vectors (McNemar 1947): only images where the two methods disagree carry information about the difference.
- :func:`paired_bootstrap`: percentile bootstrap over images of the accuracy difference (seeded).
- :func:`seed_summary`: mean ± sd over fine-tuning seeds with a t interval, and the pooled Wilson interval
  over all (seed, image) outcomes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

#: z for a two-sided 95 % interval
Z95 = 1.959963984540054

#: two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom (seed counts are small)
_T975 = [12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851, 2.364624252,
         2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830, 2.160368656, 2.144786688,
         2.131449546, 2.119905299, 2.109815578, 2.100922040, 2.093024054, 2.085963447, 2.079613845,
         2.073873068, 2.068657610, 2.063898562, 2.059538553, 2.055529439, 2.051830516, 2.048407142,
         2.045229642, 2.042272456]


def _as_bool(values: Sequence[bool] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-d vector of per-example outcomes, got shape {array.shape}")
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must hold booleans or 0/1")
    return array.astype(bool)


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n`` (default 95 %); (nan, nan) when n == 0."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _log_binom_pmf(k: np.ndarray, n: int) -> np.ndarray:
    from math import lgamma

    return np.array([lgamma(n + 1) - lgamma(i + 1) - lgamma(n - i + 1) for i in k]) - n * math.log(2)


class _Record:
    """Results are frozen dataclasses; ``as_dict`` gives their JSON-ready form."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class McNemarResult(_Record):
    """Discordant counts (``b``: only A right, ``c``: only B right) and the exact two-sided p-value."""

    n: int
    b: int
    c: int
    p_value: float


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemarResult:
    """Exact McNemar test of "A and B are equally accurate" on paired outcomes of the same images.

    Under the null each discordant image is A-only or B-only with probability 1/2, so ``b ~ Bin(b + c, 1/2)``;
    the two-sided p-value is ``min(1, 2 * P(X <= min(b, c)))`` (the conventional doubling, as scipy's
    ``binomtest`` gives for p = 1/2). No discordant pair gives p = 1.
    """
    a = _as_bool(correct_a, "correct_a")
    b_vec = _as_bool(correct_b, "correct_b")
    if a.shape != b_vec.shape:
        raise ValueError(f"paired vectors differ in length: {a.size} vs {b_vec.size} (must be the same images)")
    b = int((a & ~b_vec).sum())
    c = int((~a & b_vec).sum())
    m = b + c
    if m == 0:
        return McNemarResult(n=int(a.size), b=b, c=c, p_value=1.0)
    tail = np.exp(_log_binom_pmf(np.arange(min(b, c) + 1), m)).sum()
    return McNemarResult(n=int(a.size), b=b, c=c, p_value=float(min(1.0, 2.0 * tail)))


@dataclass(frozen=True)
class PairedDifference(_Record):
    """Accuracy of A minus accuracy of B on the same images, with a bootstrap interval."""

    n: int
    difference: float
    low: float
    high: float
    n_resamples: int
    seed: int


def paired_bootstrap(
    correct_a: Sequence[bool], correct_b: Sequence[bool], n_resamples: int = 10_000, seed: int = 0,
    confidence: float = 0.95,
) -> PairedDifference:
    """Percentile bootstrap of ``acc(A) - acc(B)``: resample *images* (both outcomes together), seeded.

    Resampling pairs keeps the correlation between A and B on each image, which is what makes a paired
    interval much narrower than two independent ones when the methods agree on most images.
    """
    a = _as_bool(correct_a, "correct_a")
    b = _as_bool(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in length: {a.size} vs {b.size} (must be the same images)")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    n = int(a.size)
    if n == 0:
        return PairedDifference(0, float("nan"), float("nan"), float("nan"), n_resamples, seed)
    diff = a.astype(np.int8) - b.astype(np.int8)
    rng = np.random.default_rng(seed)
    sums = np.empty(n_resamples, dtype=np.float64)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        sums[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].sum(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(sums / n, [tail, 1 - tail])
    return PairedDifference(n, float(diff.mean()), float(low), float(high), n_resamples, seed)


def t_quantile_975(dof: int) -> float:
    """Two-sided 95 % Student-t quantile (table up to 30 degrees of freedom, normal beyond)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {dof}")
    return _T975[dof - 1] if dof <= len(_T975) else Z95


@dataclass(frozen=True)
class SeedSummary(_Record):
    """Accuracies over fine-tuning seeds: mean, sample sd, t interval of the mean, pooled Wilson interval."""

    n_seeds: int
    mean: float
    sd: float
    mean_low: float
    mean_high: float
    pooled_successes: int
    pooled_n: int
    pooled_low: float
    pooled_high: float


def seed_summary(successes: Sequence[int], ns: Sequence[int]) -> SeedSummary:
    """Aggregate per-seed (successes, n): the seed-to-seed spread and the pooled image-level interval.

    The two answer different questions: the t interval of the mean covers training randomness (what
    another seed would give); the pooled Wilson interval covers only evaluation sampling. With one seed
    the sd and t interval are nan, honestly, rather than zero.
    """
    if len(successes) != len(ns) or not successes:
        raise ValueError("need one (successes, n) pair per seed, at least one")
    accs = np.array([s / n if n else float("nan") for s, n in zip(successes, ns)], dtype=np.float64)
    k = len(accs)
    mean = float(accs.mean())
    sd = float(accs.std(ddof=1)) if k > 1 else float("nan")
    half = t_quantile_975(k - 1) * sd / math.sqrt(k) if k > 1 else float("nan")
    total_s, total_n = int(sum(successes)), int(sum(ns))
    low, high = wilson_interval(total_s, total_n)
    return SeedSummary(k, mean, sd, mean - half, mean + half, total_s, total_n, low, high)


def format_interval(p: float, low: float, high: float, digits: int = 1) -> str:
    """``"42.0 [35.3, 49.0]"`` in percent; ``"n/a"`` for a missing value."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{100 * p:.{digits}f} [{100 * low:.{digits}f}, {100 * high:.{digits}f}]"
