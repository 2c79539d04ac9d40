"""``mmrobust study``: every study writes its table and plot, finished cells are reused, bad input is one line.

Code paths only, on the random ``tiny`` model with two-cell grids, a few images and one short epoch (the
numbers themselves are chance level; measured tables are in ``bench/RESULTS_studies.md``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mmrobust.cli.main import app
from mmrobust.errors import ConfigError
from mmrobust.eval.class_subset import ClassSubsetView, choose_classes, select_classes
from mmrobust.studies import StudyOptions, get_study, run_study

PNG = b"\x89PNG\r\n\x1a\n"


def _options(out: Path, **overrides) -> StudyOptions:
    settings = dict(output_dir=str(out), models=("tiny",), n_eval=8, batch_size=8, eval_steps=1, epochs=1,
                    train_batch_size=8, train_steps=1, n_train=8, progress=False)
    settings.update(overrides)
    return StudyOptions(**settings)


def _run(name: str, out: Path, args: dict, **overrides) -> dict:
    return run_study(get_study(name), _options(out, **overrides), args, echo=lambda line: None)


def _check_outputs(out: Path, result: dict, n_rows: int) -> list[dict]:
    assert (out / "plot.png").read_bytes()[:8] == PNG
    saved = json.loads((out / "table.json").read_text())
    assert saved["study"] == result["study"] and saved["seed"] == 0
    assert saved["versions"]["torch"] and saved["config"]["models"] == ["tiny"]
    assert len(saved["rows"]) == n_rows == len(list((out / "cells").glob("*.json")))
    with open(out / "table.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == n_rows
    for row in saved["rows"]:
        for key in ("clean", "image", "text", "multimodal", "worst_case"):
            assert row[key] is None or 0.0 <= row[key] <= 1.0
        measured = [row[k] for k in ("clean", "image", "text", "multimodal") if row[k] is not None]
        assert row["worst_case"] <= min(measured) + 1e-9
        assert row["reliability"] == "unchecked"  # sanity checks off: never shown as checked
    return saved["rows"]


def test_eps_study_writes_outputs_and_resumes_only_missing_cells(tmp_path: Path, monkeypatch) -> None:
    import mmrobust.studies.eps as eps_module

    calls: list[float] = []
    real = eps_module.evaluate

    def counting(ctx, spec, path, **kwargs):
        calls.append(kwargs["eps"])
        return real(ctx, spec, path, **kwargs)

    monkeypatch.setattr(eps_module, "evaluate", counting)
    out = tmp_path / "eps"
    result = _run("eps", out, {"eps": "8,4"})
    rows = _check_outputs(out, result, 2)
    assert sorted(calls) == [4 / 255, 8 / 255] and [r["eps"] for r in rows] == [4.0, 8.0]
    assert "eps (k/255)" in result["table"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}

    again = _run("eps", out, {"eps": "4,8,2"})  # two finished cells, one new
    assert sorted(calls) == [2 / 255, 4 / 255, 8 / 255]
    assert again["cells"] == {"total": 3, "reused": 2, "computed": 1}
    assert all((out / "cells" / name).stat().st_mtime_ns == t for name, t in mtimes.items())

    changed = _run("eps", out, {"eps": "4"}, n_eval=6)  # another option -> another hash -> recomputed
    assert changed["cells"]["computed"] == 1 and changed["rows"][0]["n"] == 6


def test_classes_study_uses_k_class_subsets(tmp_path: Path) -> None:
    out = tmp_path / "classes"
    result = _run("classes", out, {"classes": "2,3"}, multimodal_attack="none")
    rows = _check_outputs(out, result, 2)
    assert [(r["classes"], r["n_classes"]) for r in rows] == [(2, 2), (3, 3)]
    for row in rows:
        assert row["chance"] == pytest.approx(1 / row["classes"])
        assert row["text_drop"] == pytest.approx(row["clean"] - row["text"])
        report = json.loads(Path(row["report"]).read_text())
        assert report["dataset"]["class_subset"]["k"] == row["classes"]


def test_class_subset_is_nested_relabelled_and_validated() -> None:
    from mmrobust.data import load_dataset

    assert set(choose_classes(10, 2, seed=1)) <= set(choose_classes(10, 5, seed=1))
    assert choose_classes(10, 10, seed=3) == list(range(10))
    base = load_dataset("digits", None, "test")
    view = select_classes(base, 3, seed=0)
    assert isinstance(view, ClassSubsetView) and len(view.classes) == 3
    assert set(view.labels.tolist()) == {0, 1, 2}
    image, label = view[0]
    original = base[int(view.base_indices[0])]
    assert torch.equal(image, original[0]) and view.classes[label] == base.classes[original[1]]
    assert select_classes(base, None) is base
    for bad in (1, 11):
        with pytest.raises(ConfigError, match="--n-classes"):
            choose_classes(10, bad)


def test_train_size_study_trains_shots_and_reuses_the_run(tmp_path: Path, monkeypatch) -> None:
    import mmrobust.studies.train_size as module

    out = tmp_path / "train-size"
    result = _run("train-size", out, {"shots": "1"}, multimodal_attack="none")
    rows = _check_outputs(out, result, 2)
    base, trained = rows
    assert base["method"] == "none" and base["trained_parameters"] == 0
    assert trained["n_train_images"] == 10 and trained["method"] == "mmcoa" and trained["train_steps"] == 2
    import mmrobust.training

    monkeypatch.setattr(mmrobust.training, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    # another evaluation option: both cells are re-evaluated, the fine-tuned checkpoint is reused
    again = _run("train-size", out, {"shots": "1"}, multimodal_attack="none", eval_steps=2)
    assert again["cells"]["computed"] == 2 and again["rows"][1]["checkpoint"] == trained["checkpoint"]
    monkeypatch.setattr(module, "train_and_evaluate", lambda *a, **k: pytest.fail("a finished cell was recomputed"))
    assert _run("train-size", out, {"shots": "1"}, multimodal_attack="none", eval_steps=2)["cells"]["reused"] == 2


def test_loss_ablation_study_passes_the_weights(tmp_path: Path) -> None:
    out = tmp_path / "loss"
    result = _run("loss-ablation", out, {"lambdas": "1:0", "baseline": True}, text_attack="none",
                  multimodal_attack="none")
    assert (out / "plot.png").read_bytes()[:8] == PNG
    trained = result["rows"][1]
    assert (trained["lambda_img"], trained["lambda_txt"]) == (1.0, 0.0)
    report = json.loads((Path(trained["checkpoint"]).parent / "report.json").read_text())
    assert report["config"]["lambda_img"] == 1.0 and report["config"]["lambda_txt"] == 0.0


def test_params_study_records_trained_parameter_counts(tmp_path: Path) -> None:
    out = tmp_path / "params"
    result = _run("params", out, {"modes": "image,last-k", "last_k": 2, "baseline": False}, text_attack="none",
                  multimodal_attack="none")
    assert (out / "plot.png").read_bytes()[:8] == PNG
    image, last = result["rows"]
    assert image["train_mode"] == "image" and last["train_mode"] == "last-k" and last["setting"] == "last-2"
    assert 0 < last["trained_parameters"] < image["trained_parameters"] < image["total_parameters"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eps", "--eps", ""], "--eps is empty"),
        (["eps", "--eps", "4,abc"], "--eps"),
        (["eps", "--eps", "4,4"], "twice"),
        (["eps", "--eps", "300"], "k/255"),
        (["eps", "--image-attack", "magic"], "unknown --image-attack"),
        (["eps", "--text-goal", "magic"], "unknown --text-goal"),
        (["classes", "--classes", "2,11"], "exceed"),
        (["classes", "--classes", "1,2"], "at least 2"),
        (["classes", "-m", "tiny", "-m", "tiny:1"], "one --model"),
        (["params", "--modes", "full,magic"], "unknown value 'magic'"),
        (["params", "--last-k", "0"], "--last-k must be a positive integer"),
        (["loss-ablation", "--lambdas", "0:0"], "both weights are 0"),
        (["loss-ablation", "--lambdas", "1"], "IMG:TXT"),
        (["train-size", "--shots", "", "--sizes", ""], "--shots and/or --sizes"),
        (["train-size", "--shots", "1000"], "smallest class"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, args: list[str], message: str) -> None:
    model = [] if "-m" in args else ["--model", "tiny"]
    result = CliRunner().invoke(app, ["study", *args, *model, "-q", "--output-dir", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "cells").exists()  # nothing ran


def test_unknown_study_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown study 'magic'"):
        get_study("magic")
    result = CliRunner().invoke(app, ["study", "magic"])
    assert result.exit_code == 2


def test_cli_runs_a_study_and_prints_the_table(tmp_path: Path) -> None:
    out = tmp_path / "cli-eps"
    args = ["study", "eps", "--model", "tiny", "--eps", "4", "-n", "8", "-b", "8", "--eval-steps", "1",
            "--text-attack", "none", "--multimodal-attack", "none", "-q", "--output-dir", str(out)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "image (pgd)" in first.output and "1 computed" in first.output and "unchecked" in first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "1 reused, 0 computed" in second.output


def test_unreliable_cells_are_marked_in_table_and_plot(tmp_path: Path) -> None:
    from mmrobust.studies.plots import Series, line_plot
    from mmrobust.studies.runner import reliability
    from mmrobust.studies.tables import Column, format_table

    rows = [
        {"eps": 4.0, "image": 0.5, "unreliable": True, "sanity_ran": True, "sanity_failed": ["large_eps"]},
        {"eps": 8.0, "image": 0.4, "unreliable": False, "sanity_ran": True, "sanity_failed": []},
        {"eps": 16.0, "image": 0.3, "unreliable": None, "sanity_ran": False, "sanity_failed": []},
    ]
    for row in rows:
        row["reliability"] = reliability(row)
    assert [r["reliability"] for r in rows] == ["UNRELIABLE (large_eps)", "ok", "unchecked"]
    text = format_table(rows, [Column("eps", "eps", "float"), Column("image", "image"),
                               Column("reliability", "checks", "text")])
    assert "UNRELIABLE (large_eps)" in text and "50.0%" in text
    line_plot(tmp_path / "p.png", [Series("image", [r["eps"] for r in rows], [r["image"] for r in rows],
                                          [bool(r["unreliable"]) for r in rows])],
              xlabel="eps", ylabel="accuracy", title="t")
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG


def test_eval_cli_n_classes(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["eval", "--model", "tiny", "--dataset", "digits", "--n-classes", "3",
                                      "--n-samples", "12", "-q", "--output", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["dataset"]["n_classes"] == 3 and len(report["dataset"]["classes"]) == 3
    assert report["dataset"]["class_subset"]["class_ids"] == choose_classes(10, 3, seed=0)
    bad = CliRunner().invoke(app, ["eval", "--model", "tiny", "--dataset", "digits", "--n-classes", "1", "-q",
                                   "--output", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2 and "--n-classes" in bad.stderr
