"""``mmrobust study ... --ood-dataset``: every row's model zero-shot on other datasets, as a benchmark under
DIR/ood/ whose averages become the study's OOD columns; reused on a second run; bad lists stop first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrobust.benchmark.study_ood import BenchmarkOOD
from mmrobust.benchmark.table import family_vectors
from mmrobust.cli.main import app
from mmrobust.stats import mcnemar_exact
from mmrobust.studies.ood import attach_outcomes


def _args(out: Path, root: Path, ood: str) -> list[str]:
    return ["study", "train-size", "-m", "tiny", "-d", "digits", "--shots", "1", "-n", "20", "-b", "20",
            "--epochs", "1", "--train-steps", "1", "--eval-steps", "1", "--ood-dataset", ood,
            "--data-root", str(root), "-q", "-o", str(out)]


def test_ood_rows_come_from_a_benchmark_of_the_rows_models(cifar10_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "study"
    first = runner.invoke(app, _args(out, cifar10_root, "cifar10,caltech256"))
    assert first.exit_code == 0, first.output
    assert "OOD clean (avg)" in first.output
    study = json.loads((out / "table.json").read_text())
    bench = json.loads((out / "ood" / "table.json").read_text())
    assert study["ood"]["datasets"] == ["cifar10", "caltech256"] and study["ood"]["missing"] == ["caltech256"]
    rows = {r["setting"]: r for r in study["rows"]}
    assert set(rows) == {"none (not fine-tuned)", "1-shot"}
    assert bench["models"][0].endswith("/models/tiny")  # the model before fine-tuning is the paired reference
    assert bench["labels"][bench["models"][1]] == "1-shot"
    averages = {r["model"]: r["families"] for r in bench["rows"] if r["role"] == "average"}
    for model, row in zip(bench["models"], (rows["none (not fine-tuned)"], rows["1-shot"])):
        assert row["ood_clean"] == averages[model]["clean"]["accuracy"]
        assert row["ood_worst_case"] == averages[model]["worst_case"]["accuracy"]
        assert row["ci"]["ood_clean"] == [averages[model]["clean"]["low"], averages[model]["clean"]["high"]]
        assert row["ood_n_datasets"] == 1
    assert bench["paired"] and all(p["model"] == bench["models"][1] for p in bench["paired"])
    # the study's own comparison covers the OOD average, paired on the OOD images (one dataset ran: its vectors)
    [comparison] = study["comparisons"]
    entry = comparison["columns"]["ood_clean"]
    assert entry["difference"] == pytest.approx(rows["1-shot"]["ood_clean"] - rows["none (not fine-tuned)"]["ood_clean"])
    vectors = [family_vectors(json.loads((out / "ood" / r["report"]).read_text()))["clean"]
               for model in bench["models"] for r in bench["rows"] if r["model"] == model and r["role"] == "ood"
               and r["status"] == "ok"]
    assert entry["p_value"] == pytest.approx(mcnemar_exact(vectors[1], vectors[0]).p_value)
    assert "ood_clean" in result_table(first.output)

    second = runner.invoke(app, _args(out, cifar10_root, "cifar10,caltech256"))
    assert second.exit_code == 0, second.output
    assert json.loads((out / "ood" / "table.json").read_text())["cells_reused"] == 2


def result_table(output: str) -> str:
    return output[output.index("paired differences"):]


def test_ood_outcomes_are_pooled_only_when_the_pooled_mean_is_the_average(tmp_path: Path) -> None:
    """Equal image counts: the datasets' outcomes one after another (their mean is the OOD average).
    Unequal counts would weight the larger set more, so no outcomes (and no OOD comparison) then."""
    def report(name: str, bits: str) -> dict:
        (tmp_path / name).write_text(json.dumps({"per_example": {"clean": [b == "1" for b in bits]}}))
        return {"status": "ok", "n": len(bits), "report": name, "dataset_spec": name, "indices_sha256": name}

    row: dict = {}
    attach_outcomes(row, [report("a.json", "1100"), report("b.json", "1000"),
                          {"status": "missing", "n": 0}], tmp_path, BenchmarkOOD())
    assert row["correct"] == {"ood_clean": "11001000"} and set(row["images_by_column"]) == {"ood_clean"}
    unequal: dict = {}
    attach_outcomes(unequal, [report("a.json", "1100"), report("c.json", "10")], tmp_path, BenchmarkOOD())
    assert unequal == {}


@pytest.mark.parametrize("ood, message", [("not_a_set", "unknown dataset 'not_a_set'"),
                                          ("flickr30k", "flickr30k is a retrieval set")])
def test_bad_ood_list_stops_before_any_model_is_pinned(ood: str, message: str, tmp_path: Path) -> None:
    out = tmp_path / "study"
    result = CliRunner().invoke(app, _args(out, tmp_path, ood))
    assert result.exit_code == 2 and message in result.output
    assert not (out / "models").exists()
