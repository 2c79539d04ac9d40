"""Intervals, paired comparisons and seed aggregation for study rows (issue 15).

Why: the study (Zhou et al. 2024) reports point accuracies; on a few hundred images a difference of a few
points is often noise. Every row therefore keeps its per-image outcomes (``row["correct"]``: one "0"/"1"
string per accuracy column, in the evaluation's image order) and the fingerprint of the images it was
measured on (``row["images"]``; a column measured on other images, such as a fine-tuning study's OOD
columns, names its own in ``row["images_by_column"]``), so that

* each accuracy gets a 95 % Wilson interval over images (:func:`mmrobust.stats.wilson_interval`);
* a difference computed *within* a row on the same images (the classes study's clean - attacked drop) gets a
  paired bootstrap interval;
* two rows measured on the same images can be compared with the exact McNemar test and a paired bootstrap
  interval of the difference (:func:`compare_rows`), and rows on different images are refused, not paired;
* runs with several seeds aggregate to mean ± sd, a t interval of the mean (training randomness) and the
  pooled Wilson interval over all (seed, image) outcomes (:func:`aggregate_seeds`).

Only the public functions of :mod:`mmrobust.stats` compute statistics here.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from ..stats import mcnemar_exact, paired_bootstrap, seed_summary, t_quantile_975, wilson_interval
from .grid import config_hash
from .tables import Column, format_table

#: accuracy columns of an evaluation (as in :data:`mmrobust.studies.runner.MODALITIES`)
ACCURACY_KEYS = ("clean", "image", "text", "multimodal", "worst_case")
#: bootstrap resamples per interval: enough for a stable 2.5 % percentile, cheap on n ~ 1000
BOOTSTRAP_RESAMPLES = 5000
BOOTSTRAP_SEED = 0


# ---------------------------------------------------------------------------------------- per-image outcomes
def encode(values: Sequence[bool] | np.ndarray) -> str:
    return "".join("1" if v else "0" for v in np.asarray(values, dtype=bool).tolist())


def decode(bits: str) -> np.ndarray:
    return np.frombuffer(bits.encode("ascii"), dtype=np.uint8) == ord("1")


def outcomes_from_report(report: Mapping[str, Any]) -> dict[str, str]:
    """Per-image correctness per accuracy column, as the report's ``by_modality`` accuracies count them.

    A modality's vector is the AND of its attacks' robust vectors (robust = correct clean *and* attacked);
    reports without ``per_example`` (written before it existed) give an empty dict.
    """
    per = report.get("per_example") or {}
    if "clean" not in per:
        return {}
    out = {"clean": encode(per["clean"])}
    by_modality: dict[str, np.ndarray] = {}
    for name, block in (report.get("metrics", {}).get("attacks") or {}).items():
        if name in per:
            vec = np.asarray(per[name], dtype=bool)
            by_modality[block["modality"]] = by_modality.get(block["modality"], vec) & vec
    out.update({m: encode(v) for m, v in by_modality.items()})
    if "worst_case" in per:
        out["worst_case"] = encode(per["worst_case"])
    return out


def images_fingerprint(report: Mapping[str, Any]) -> str:
    """Which images a report measured (dataset, split, class subset, sampled indices): paired tests need equal."""
    dataset = {k: v for k, v in report["dataset"].items() if k != "templates"}
    return config_hash({"dataset": dataset, "indices": report["sampling"]["indices_sha256"]})[:16]


def check_outcomes(result: Mapping[str, Any]) -> str | None:
    """What is wrong with a saved cell's per-image outcomes (None when they agree with its accuracies and n):
    the paired tests read them, so a damaged or hand-edited vector must be refused, not tested."""
    correct = result.get("correct")
    if correct is None:
        return None
    if not isinstance(correct, dict):
        return "correct is not a mapping of per-image outcomes"
    for key, bits in correct.items():
        if not isinstance(bits, str) or set(bits) - {"0", "1"} or len(bits) != result.get("n"):
            return f"correct[{key!r}] is not {result.get('n')} per-image outcomes"
        value = result.get(key)
        if isinstance(value, (int, float)) and abs(bits.count("1") / max(len(bits), 1) - value) > 1e-9:
            return f"correct[{key!r}] disagrees with {key} = {value!r}"
    return None


def fingerprint(row: Mapping[str, Any], key: str) -> str | None:
    """The images column ``key`` of ``row`` was measured on: its own entry, else the row's evaluation images."""
    return (row.get("images_by_column") or {}).get(key, row.get("images"))


def vector(row: Mapping[str, Any], key: str) -> np.ndarray | None:
    bits = (row.get("correct") or {}).get(key)
    return None if bits is None else decode(bits)


# ---------------------------------------------------------------------------------------- intervals
def wilson_for(row: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    """Wilson interval of ``row[key]`` from its outcomes (or, for old cells without them, from acc x n)."""
    vec = vector(row, key)
    if vec is not None:
        return wilson_interval(int(vec.sum()), int(vec.size))
    value, n = row.get(key), row.get("n_pooled") or row.get("n")
    if value is None or not n:
        return None
    return wilson_interval(int(round(value * n)), int(n))


def paired_interval(row: Mapping[str, Any], a: str, b: str) -> tuple[float, float] | None:
    """Bootstrap interval of ``acc(a) - acc(b)`` within one row (same images by construction)."""
    va, vb = vector(row, a), vector(row, b)
    if va is None or vb is None:
        return None
    d = paired_bootstrap(va, vb, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    return (d.low, d.high)


def add_intervals(row: dict[str, Any], paired: Mapping[str, tuple[str, str]] = (),
                  pooled: Sequence[str] = ()) -> dict[str, Any]:
    """Set ``row["ci"]``: Wilson per accuracy column, paired bootstrap per ``paired`` column (key -> (a, b)),
    and Wilson over the per-image outcomes of each ``pooled`` column that has them (e.g. the OOD columns)."""
    ci: dict[str, list[float]] = {}
    for key in ACCURACY_KEYS:
        interval = wilson_for(row, key) if row.get(key) is not None else None
        if interval is not None:
            ci[key] = list(interval)
    for key in pooled:
        if row.get(key) is not None and vector(row, key) is not None:
            ci[key] = list(wilson_for(row, key))
    for key, (a, b) in dict(paired).items():
        interval = paired_interval(row, a, b) if row.get(key) is not None else None
        if interval is not None:
            ci[key] = list(interval)
    row["ci"] = ci
    return row


def error_bar(row: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    """What a plot draws: the t interval over seeds when there are several, else the Wilson interval."""
    for block in ("mean_ci", "ci"):
        interval = (row.get(block) or {}).get(key)
        if interval is not None and all(math.isfinite(v) for v in interval):
            return (float(interval[0]), float(interval[1]))
    return None


def error_bar_note(rows: Sequence[Mapping[str, Any]]) -> str:
    seeds = len(rows[0].get("seeds") or []) if rows else 0
    if seeds > 1:
        return f"error bars: 95 % t interval of the mean over {seeds} seeds"
    return "error bars: 95 % Wilson interval over the evaluated images"


# ---------------------------------------------------------------------------------------- paired comparisons
def compare_rows(row: Mapping[str, Any], reference: Mapping[str, Any], keys: Sequence[str] = ACCURACY_KEYS
                 ) -> dict[str, dict[str, Any]]:
    """``row - reference`` per column on the same images: difference, bootstrap 95 % interval, McNemar p.

    A column is ``{"note": ...}`` instead when the rows were measured on different images (no pairing is
    possible) or lack per-image outcomes.
    """
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        if row.get(key) is None or reference.get(key) is None:
            continue
        images = fingerprint(row, key)
        if images is None or images != fingerprint(reference, key):
            out[key] = {"note": "different images: not paired"}
            continue
        va, vb = vector(row, key), vector(reference, key)
        if va is None or vb is None:
            out[key] = {"note": "no per-image outcomes (cell from an older version)"}
            continue
        boot = paired_bootstrap(va, vb, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
        test = mcnemar_exact(va, vb)
        out[key] = {"n": boot.n, "difference": boot.difference, "low": boot.low, "high": boot.high,
                    "p_value": test.p_value, "only_row": test.b, "only_reference": test.c,
                    **_seed_level(va, vb, (row.get("seed_sizes_by_column") or {}).get(key, row.get("seed_sizes")))}
    return out


def _seed_level(a: np.ndarray, b: np.ndarray, sizes: Sequence[int] | None) -> dict[str, Any]:
    """With several seeds: the per-seed differences, their mean and t interval. Why: the pooled bootstrap and
    McNemar count every (seed, image) pair as independent, which ignores training randomness and, when the
    seeds evaluate the same images, counts each image once per seed; the seed-level interval does neither."""
    if not sizes or len(sizes) < 2 or sum(sizes) != a.size:
        return {}
    bounds = np.cumsum([0, *sizes])
    diffs = [float(a[s:e].mean() - b[s:e].mean()) for s, e in zip(bounds[:-1], bounds[1:])]
    mean, sd, low, high = _mean_sd(diffs)
    return {"per_seed": diffs, "seed_sd": sd, "seed_low": low, "seed_high": high}


def format_difference(entry: Mapping[str, Any]) -> str:
    if "difference" not in entry:
        return "n/a"
    text = (f"{100 * entry['difference']:+.1f} [{100 * entry['low']:+.1f}, {100 * entry['high']:+.1f}] "
            f"p={entry['p_value']:.2g}")
    if "seed_low" in entry:
        text += f" seeds [{100 * entry['seed_low']:+.1f}, {100 * entry['seed_high']:+.1f}]"
    return text


def format_comparisons(comparisons: Sequence[dict[str, Any]], reference: str | None) -> str:
    """``row - reference`` per accuracy column: difference [paired bootstrap 95 % interval] exact McNemar p."""
    if not comparisons:
        return ""
    keys = list(dict.fromkeys(k for c in comparisons for k in c["columns"]))
    table_rows = [{"row": c["row"], "reference": c["reference"],
                   **{k: format_difference(c["columns"][k]) if k in c["columns"] else "-" for k in keys}}
                  for c in comparisons]
    columns = [Column("row", "row", "text"), Column("reference", "minus", "text"),
               *[Column(k, k, "text") for k in keys]]
    seeded = any("seed_low" in e for c in comparisons for e in c["columns"].values())
    return (f"paired differences vs. reference {reference!r} on the same images (percentage points "
            f"[paired bootstrap 95 % interval], exact McNemar p"
            + ("; seeds [t 95 % interval of the per-seed differences]" if seeded else "")
            + "):\n" + format_table(table_rows, columns))


# ---------------------------------------------------------------------------------------- seeds
def aggregate_seeds(runs: Sequence[Sequence[dict[str, Any]]], seeds: Sequence[int],
                    stat_keys: Sequence[str]) -> list[dict[str, Any]]:
    """One row per cell over the seeds' runs (same grid, same order): mean ± sd of every ``stat_keys`` column,
    its t interval (``mean_ci``), outcomes concatenated seed after seed (so the pooled interval and paired
    tests count every (seed, image) pair once), and a reliability that is ``ok`` only if every seed's is."""
    rows: list[dict[str, Any]] = []
    for group in zip(*runs):
        if len({r["key"] for r in group}) != 1:
            raise ValueError("seed runs have different grids")  # programming error: same cells per seed
        first = group[0]
        row = {k: v for k, v in first.items() if k not in ("correct", "ci", "ood_ci", "report", "checkpoint")}
        row["seeds"] = list(seeds)
        row["n_pooled"] = sum(int(r.get("n") or 0) for r in group)
        row["seed_sizes"] = [int(r.get("n") or 0) for r in group]
        row["images"] = config_hash([r.get("images") for r in group])[:16]
        own = set().union(*(set(r.get("images_by_column") or {}) for r in group))
        if own:
            row["images_by_column"] = {k: config_hash([fingerprint(r, k) for r in group])[:16] for k in sorted(own)}
        keys = set.intersection(*(set((r.get("correct") or {})) for r in group))
        row["correct"] = {k: "".join(r["correct"][k] for r in group) for k in sorted(keys)}
        if own:  # columns on other images have their own per-seed counts (for the seed-level intervals)
            row["seed_sizes_by_column"] = {k: [len(r["correct"][k]) for r in group] for k in sorted(keys & own)}
        row["per_seed"], row["sd"], row["mean_ci"] = {}, {}, {}
        for key in stat_keys:
            values = [r.get(key) for r in group]
            if any(v is None for v in values):
                row[key] = None
                continue
            mean, sd, low, high = _mean_sd(values)
            if key in ACCURACY_KEYS:  # the stats module's seed summary (same mean; checks the counts)
                summary = seed_summary([int(round(r[key] * r["n"])) for r in group], [int(r["n"]) for r in group])
                mean, sd, low, high = summary.mean, summary.sd, summary.mean_low, summary.mean_high
            row[key] = mean
            row["per_seed"][key] = values
            row["sd"][key] = sd
            row["mean_ci"][key] = [low, high]
        row["unreliable"] = any(r.get("unreliable") for r in group) or (
            None if any(r.get("unreliable") is None for r in group) else False)
        row["sanity_ran"] = all(r.get("sanity_ran") for r in group)
        row["sanity_failed"] = sorted({name for r in group for name in (r.get("sanity_failed") or [])})
        row["reused"] = all(r.get("reused") for r in group)
        rows.append(row)
    return rows


def _mean_sd(values: Sequence[float]) -> tuple[float, float, float, float]:
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if array.size < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sd = float(array.std(ddof=1))
    half = t_quantile_975(array.size - 1) * sd / math.sqrt(array.size)
    return mean, sd, mean - half, mean + half
