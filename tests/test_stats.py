"""Statistics against hand-computed values and scipy (when installed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrobust.stats import (
    format_interval,
    mcnemar_exact,
    paired_bootstrap,
    seed_summary,
    t_quantile_975,
    wilson_interval,
)


def test_wilson_hand_computed() -> None:
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71676, half 1.96 * 0.16001 / 1.38416 = 0.22658
    low, high = wilson_interval(8, 10, z=1.96)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_edges_stay_in_unit_interval() -> None:
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_wilson_matches_statsmodels_formula_via_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(0, 7), (3, 7), (61, 200), (199, 200), (500, 1000)]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_mcnemar_hand_computed() -> None:
    # b = 1 (A only), c = 6 (B only): p = 2 * (C(7,0) + C(7,1)) / 2^7 = 2 * 8 / 128 = 0.125
    a = [True] * 1 + [False] * 6 + [True] * 10 + [False] * 3
    b = [False] * 1 + [True] * 6 + [True] * 10 + [False] * 3
    result = mcnemar_exact(a, b)
    assert (result.b, result.c, result.n) == (1, 6, 20)
    assert result.p_value == pytest.approx(0.125)
    assert mcnemar_exact(a, a).p_value == 1.0


def test_mcnemar_matches_scipy_binomtest() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.random(300) < 0.6
        b = np.where(rng.random(300) < 0.15, ~a, a)
        result = mcnemar_exact(a, b)
        m = result.b + result.c
        expected = stats.binomtest(result.b, m, 0.5).pvalue if m else 1.0
        assert result.p_value == pytest.approx(expected, rel=1e-9)


def test_mcnemar_rejects_unpaired() -> None:
    with pytest.raises(ValueError, match="same images"):
        mcnemar_exact([True, False], [True])


def test_paired_bootstrap_seeded_and_sensible() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(400) < 0.7
    b = a.copy()
    b[:40] = ~b[:40]  # B differs from A on 40 images
    first = paired_bootstrap(a, b, n_resamples=2000, seed=5)
    again = paired_bootstrap(a, b, n_resamples=2000, seed=5)
    assert first == again
    assert first.difference == pytest.approx(a.mean() - b.mean())
    assert first.low <= first.difference <= first.high
    # the paired interval is no wider than the sd of the discordant-pair difference predicts (x 1.5 slack)
    d = a.astype(int) - b.astype(int)
    assert first.high - first.low < 1.5 * 2 * 1.96 * d.std() / math.sqrt(d.size)
    same = paired_bootstrap(a, a, n_resamples=100)
    assert (same.low, same.high, same.difference) == (0.0, 0.0, 0.0)


def test_seed_summary_hand_computed() -> None:
    summary = seed_summary([50, 60, 70], [100, 100, 100])
    assert summary.mean == pytest.approx(0.6)
    assert summary.sd == pytest.approx(0.1)
    half = 4.302652730 * 0.1 / math.sqrt(3)
    assert (summary.mean_low, summary.mean_high) == pytest.approx((0.6 - half, 0.6 + half))
    assert (summary.pooled_successes, summary.pooled_n) == (180, 300)
    assert (summary.pooled_low, summary.pooled_high) == pytest.approx(wilson_interval(180, 300))
    single = seed_summary([5], [10])
    assert math.isnan(single.sd) and math.isnan(single.mean_low)


def test_t_quantile_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 5, 30):
        assert t_quantile_975(dof) == pytest.approx(stats.t.ppf(0.975, dof), rel=1e-8)


def test_format_interval() -> None:
    assert format_interval(0.42, 0.353, 0.49) == "42.0 [35.3, 49.0]"
    assert format_interval(float("nan"), 0, 0) == "n/a"
