"""Statistics in the study tables (issue 15): Wilson intervals, paired comparisons with a reference row, seeds.

Every number here is recomputed from the per-image outcomes the evaluation report stored, with the public
functions of :mod:`mmrobust.stats`; a wrong vector, a wrong pairing or a wrong pooling changes them. Runs on
the random ``tiny`` model with a few images (chance-level numbers; the code paths are what is tested).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrobust.cli.main import app
from mmrobust.stats import mcnemar_exact, paired_bootstrap, seed_summary, wilson_interval
from mmrobust.studies import StudyOptions, get_study, run_study
from mmrobust.studies.intervals import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, add_intervals, aggregate_seeds,
                                        compare_rows, decode, encode, outcomes_from_report)
from mmrobust.studies.tables import Column, format_table


def _run(name: str, out: Path, args: dict, **overrides) -> dict:
    settings = dict(output_dir=str(out), models=("tiny",), n_eval=12, batch_size=12, eval_steps=1,
                    text_attack="none", multimodal_attack="none", progress=False)
    settings.update(overrides)
    return run_study(get_study(name), StudyOptions(**settings), args, echo=lambda line: None)


def _vec(row: dict, key: str) -> np.ndarray:
    return decode(row["correct"][key])


def test_rows_keep_the_reports_outcomes_and_wilson_intervals_and_paired_comparisons(tmp_path: Path) -> None:
    out = tmp_path / "eps"
    result = _run("eps", out, {"eps": "2,64"}, reference="tiny_eps=2")
    rows = {r["key"]: r for r in result["rows"]}
    for row in rows.values():
        report = json.loads(Path(row["report"]).read_text())
        assert _vec(row, "clean").tolist() == report["per_example"]["clean"]
        assert _vec(row, "image").tolist() == report["per_example"]["pgd"]
        for key in ("clean", "image", "worst_case"):
            vec = _vec(row, key)
            assert vec.size == row["n"] == 12 and vec.mean() == pytest.approx(row[key])
            assert row["ci"][key] == pytest.approx(list(wilson_interval(int(vec.sum()), vec.size)))
    ref, other = rows["tiny_eps=2"], rows["tiny_eps=64"]
    assert ref["images"] == other["images"]  # same images: pairing allowed
    [comparison] = result["comparisons"]
    assert comparison["reference"] == "tiny @ eps 2/255" and comparison["row"] == "tiny @ eps 64/255"
    for key in ("clean", "image"):
        entry, a, b = comparison["columns"][key], _vec(other, key), _vec(ref, key)
        boot = paired_bootstrap(a, b, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
        assert entry["difference"] == pytest.approx(a.mean() - b.mean())
        assert (entry["low"], entry["high"]) == pytest.approx((boot.low, boot.high))
        assert entry["p_value"] == pytest.approx(mcnemar_exact(a, b).p_value)
        assert (entry["only_row"], entry["only_reference"]) == (int((a & ~b).sum()), int((~a & b).sum()))
    assert comparison["columns"]["clean"]["difference"] == 0.0  # eps does not touch clean accuracy
    assert "paired differences vs. reference 'tiny_eps=2'" in result["comparison_table"]
    low, high = other["ci"]["image"]
    assert f"[{100 * low:.1f}, {100 * high:.1f}]" in result["table"]
    with open(out / "table.csv", newline="") as handle:
        saved = {r["eps"]: r for r in csv.DictReader(handle)}
    assert float(saved["64.0"]["image_low"]) == pytest.approx(low)
    assert float(saved["64.0"]["image_high"]) == pytest.approx(high)


def test_classes_drops_get_paired_intervals_and_rows_on_other_images_are_not_paired(tmp_path: Path) -> None:
    result = _run("classes", tmp_path / "classes", {"classes": "2,10"}, n_eval=20, batch_size=20)
    assert result["comparisons"] == []  # default: every k has its own images
    for row in result["rows"]:
        clean, image = _vec(row, "clean"), _vec(row, "image")
        boot = paired_bootstrap(clean, image, n_resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
        assert row["image_drop"] == pytest.approx(clean.mean() - image.mean())
        assert row["ci"]["image_drop"] == pytest.approx([boot.low, boot.high])
    k2, k10 = result["rows"]
    assert k2["images"] != k10["images"]
    assert compare_rows(k10, k2)["clean"] == {"note": "different images: not paired"}


def test_seeds_aggregate_mean_sd_and_pooled_interval(tmp_path: Path) -> None:
    out = tmp_path / "seeds"
    result = _run("eps", out, {"eps": "8"}, n_eval=8, batch_size=8, seeds=(0, 1))
    [row] = result["rows"]
    per_seed = [json.loads((out / f"seed-{s}" / "table.json").read_text())["rows"][0] for s in (0, 1)]
    assert [r["seed"] for r in (json.loads((out / f"seed-{s}" / "table.json").read_text()) for s in (0, 1))] == [0, 1]
    assert per_seed[0]["images"] != per_seed[1]["images"]  # each seed samples its own images
    assert row["seeds"] == [0, 1] and result["seeds"] == [0, 1]
    for key in ("clean", "image"):
        vectors = [_vec(r, key) for r in per_seed]
        summary = seed_summary([int(v.sum()) for v in vectors], [v.size for v in vectors])
        assert row[key] == pytest.approx(np.mean([v.mean() for v in vectors]))
        assert row["sd"][key] == pytest.approx(np.std([v.mean() for v in vectors], ddof=1), nan_ok=True)
        assert row["mean_ci"][key] == pytest.approx([summary.mean_low, summary.mean_high], nan_ok=True)
        pooled = np.concatenate(vectors)
        assert _vec(row, key).tolist() == pooled.tolist()
        assert row["ci"][key] == pytest.approx(list(wilson_interval(int(pooled.sum()), 16)))
    assert (out / "models").is_dir() and not (out / "seed-0" / "models").exists()  # pinned once
    assert "±" in result["table"]
    again = _run("eps", out, {"eps": "8"}, n_eval=8, batch_size=8, seeds=(0, 1))
    assert again["cells"] == {"total": 2, "reused": 2, "computed": 0}


def test_seed_aggregation_and_rendering_on_known_vectors() -> None:
    def row(seed_bits: str, key: str = "a") -> dict:
        vec = decode(seed_bits)
        return {"key": key, "n": vec.size, "clean": float(vec.mean()), "correct": {"clean": seed_bits},
                "images": seed_bits, "unreliable": None, "sanity_ran": False}

    runs = [[row("1111000000")], [row("1111110000")], [row("1111111100")]]
    [agg] = aggregate_seeds(runs, [0, 1, 2], ["clean"])
    add_intervals(agg)
    assert agg["clean"] == pytest.approx(0.6) and agg["sd"]["clean"] == pytest.approx(0.2)
    assert agg["ci"]["clean"] == pytest.approx(list(wilson_interval(18, 30)))
    assert agg["mean_ci"]["clean"] == pytest.approx([0.6 - 4.302652730 * 0.2 / 3 ** 0.5,
                                                     0.6 + 4.302652730 * 0.2 / 3 ** 0.5])
    low, high = wilson_interval(18, 30)
    text = format_table([agg], [Column("clean", "clean")])
    assert f"60.0% ± 20.0 [{100 * low:.1f}, {100 * high:.1f}]" in text
    assert encode(decode("0110")) == "0110"


def test_report_outcomes_follow_by_modality() -> None:
    report = {"per_example": {"clean": [1, 1, 1, 0], "pgd": [1, 0, 1, 0], "apgd": [1, 1, 0, 0],
                              "sep": [0, 1, 1, 0], "worst_case": [0, 0, 0, 0]},
              "metrics": {"attacks": {"pgd": {"modality": "image"}, "apgd": {"modality": "image"},
                                      "sep": {"modality": "multimodal"}}}}
    outcomes = outcomes_from_report(report)
    assert outcomes == {"clean": "1110", "image": "1000", "multimodal": "0110", "worst_case": "0000"}
    assert outcomes_from_report({"metrics": {}}) == {}


def test_clean_only_reports_keep_per_image_outcomes(tmp_path: Path) -> None:
    from mmrobust.eval.run import EvalConfig, run_evaluation

    report = run_evaluation(EvalConfig(model="tiny", dataset="digits", n_samples=10, batch_size=10, progress=False))
    clean = report["per_example"]["clean"]
    assert len(clean) == 10 and np.mean(clean) == pytest.approx(report["accuracy"])


def test_bad_reference_and_seeds_are_one_line(tmp_path: Path) -> None:
    base = ["study", "eps", "--model", "tiny", "--eps", "4", "-n", "4", "-b", "4", "--eval-steps", "1", "-q",
            "--text-attack", "none", "--multimodal-attack", "none", "--output-dir", str(tmp_path / "x")]
    for extra, message in ((["--reference", "nothing"], "--reference 'nothing' names no row"),
                           (["--seeds", "0,0"], "--seeds lists a value twice"),
                           (["--seeds", "1,-2"], "--seeds: '-2' is not an integer of at least 0")):
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


def test_error_bar_lengths_are_never_negative_and_follow_the_interval() -> None:
    from mmrobust.studies.plots import error_lengths

    low, high = wilson_interval(0, 60)  # the lower bound at 0 % may sit a rounding error above 0
    assert error_lengths([0.0, 0.5, None], [(low, high), (0.4, 0.7), None]) == [
        [0.0, pytest.approx(10.0), 0.0], [pytest.approx(100 * high), pytest.approx(20.0), 0.0]]


def test_a_hand_edited_outcome_vector_is_refused() -> None:
    from mmrobust.studies.runner import check_cell_result

    good = {"clean": 0.5, "image": 0.25, "n": 4, "correct": {"clean": "1100", "image": "1000"}}
    assert check_cell_result(good) is None
    assert "disagrees" in check_cell_result({**good, "correct": {"clean": "1110", "image": "1000"}})
    assert "per-image" in check_cell_result({**good, "correct": {"clean": "11", "image": "1000"}})
    assert "per-image" in check_cell_result({**good, "correct": {"clean": "11x0", "image": "1000"}})


def test_seeded_comparisons_add_the_seed_level_interval() -> None:
    def row(bits: str) -> dict:
        vec = decode(bits)
        return {"key": "k", "n": vec.size, "clean": float(vec.mean()), "correct": {"clean": bits}, "images": "same"}

    a = aggregate_seeds([[row("1110")], [row("1100")], [row("1111")]], [0, 1, 2], ["clean"])[0]
    b = aggregate_seeds([[row("1100")], [row("1100")], [row("1100")]], [0, 1, 2], ["clean"])[0]
    entry = compare_rows(a, b, ["clean"])["clean"]
    diffs = [0.25, 0.0, 0.5]
    half = 4.302652730 * float(np.std(diffs, ddof=1)) / 3 ** 0.5
    assert entry["per_seed"] == pytest.approx(diffs)
    assert (entry["seed_low"], entry["seed_high"]) == pytest.approx((0.25 - half, 0.25 + half))
    assert entry["p_value"] == pytest.approx(mcnemar_exact(decode(a["correct"]["clean"]),
                                                           decode(b["correct"]["clean"])).p_value)


def test_columns_on_other_images_pair_by_their_own_fingerprint_and_seed_sizes() -> None:
    """The OOD columns of a fine-tuning study are measured on other images (and counts) than the IID ones:
    they pair only when their own images agree, and the seed-level interval splits them by their own counts."""
    def row(iid: str, ood: str, ood_images: str = "ood") -> dict:
        return {"key": "k", "n": len(iid), "clean": decode(iid).mean(), "ood_clean": decode(ood).mean(),
                "correct": {"clean": iid, "ood_clean": ood}, "images": "iid",
                "images_by_column": {"ood_clean": ood_images}}

    a = aggregate_seeds([[row("1100", "111000")], [row("1110", "111100")]], [0, 1], ["clean", "ood_clean"])[0]
    b = aggregate_seeds([[row("1000", "100000")], [row("1000", "110000")]], [0, 1], ["clean", "ood_clean"])[0]
    assert a["seed_sizes"] == [4, 4] and a["seed_sizes_by_column"] == {"ood_clean": [6, 6]}
    add_intervals(a, pooled=["ood_clean"])
    assert a["ci"]["ood_clean"] == pytest.approx(list(wilson_interval(7, 12)))
    entry = compare_rows(a, b, ["clean", "ood_clean"])["ood_clean"]
    assert entry["per_seed"] == pytest.approx([2 / 6, 2 / 6])
    assert entry["p_value"] == pytest.approx(mcnemar_exact(decode("111000111100"), decode("100000110000")).p_value)
    other = aggregate_seeds([[row("1000", "100000", "elsewhere")], [row("1000", "110000", "elsewhere")]], [0, 1],
                            ["clean", "ood_clean"])[0]
    columns = compare_rows(a, other, ["clean", "ood_clean"])
    assert "difference" in columns["clean"] and columns["ood_clean"] == {"note": "different images: not paired"}
