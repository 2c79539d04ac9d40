"""``mmrobust benchmark``: cells, reuse, resume after a kill, missing and unknown datasets, tables."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrobust.benchmark import BenchmarkConfig, run_benchmark
from mmrobust.benchmark.cells import cell_key, finished_cell
from mmrobust.benchmark.table import family_vectors, paired_rows
from mmrobust.cli.main import app
from mmrobust.data import load_dataset
from mmrobust.data.wds_writer import write_wds
from mmrobust.errors import ConfigError
from mmrobust.eval.run import EvalConfig


@pytest.fixture(scope="module")
def small_wds(cifar10_root: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bench") / "wds_small"
    return write_wds(load_dataset("cifar10", cifar10_root), folder, indices=range(0, 1000, 20), max_count=20)


def _args(out: Path, root: Path, wds: Path, *extra: str) -> list[str]:
    return ["benchmark", "-m", "tiny", "-m", "tiny:1", "-d", f"wds:{wds},caltech256", "--iid", "cifar10",
            "--data-root", str(root), "-n", "24", "-b", "8", "-a", "pgd", "--eps", "1", "--steps", "2", "-q",
            "--no-sanity", "-o", str(out), *extra]


def test_benchmark_end_to_end_and_reuse(cifar10_root: Path, small_wds: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "bench"
    first = runner.invoke(app, _args(out, cifar10_root, small_wds))
    assert first.exit_code == 0, first.output
    assert "4 cell(s) run, 0 reused" in first.output
    table = json.loads((out / "table.json").read_text())
    rows = {(r["model"], r["dataset"]): r for r in table["rows"]}
    ok = rows[("tiny", f"wds:{small_wds}")]
    assert ok["status"] == "ok" and ok["n"] == 24 and set(ok["families"]) == {"clean", "image", "worst_case"}
    block = ok["families"]["clean"]
    assert block["low"] <= block["accuracy"] <= block["high"] and block["n"] == 24
    assert ok["verdict"] == "unchecked (disabled with --no-sanity)"
    missing = rows[("tiny", "caltech256")]
    assert missing["status"] == "missing" and "to get it" in missing["message"]
    assert rows[("tiny:1", "cifar10")]["role"] == "iid"
    average = rows[("tiny", "average (OOD)")]
    assert average["n_datasets"] == 1  # the IID row and the missing one are not averaged
    assert average["families"]["clean"]["accuracy"] == block["accuracy"]
    assert {p["family"] for p in table["paired"]} == {"clean", "image", "worst_case"}
    assert all(p["reference"] == "tiny" and p["model"] == "tiny:1" for p in table["paired"])
    md = (out / "table.md").read_text()
    assert "## tiny:1" in md and "IID: cifar10" in md and "missing:" in md and "McNemar" in md
    with open(out / "table.csv") as handle:
        assert len(list(csv.DictReader(handle))) >= 2 * (2 * 3 + 1)
    assert (out / "heatmap.png").stat().st_size > 10_000
    cells = sorted((out / "cells").glob("*.json"))
    assert len(cells) == 4
    stamps = [c.stat().st_mtime_ns for c in cells]

    second = runner.invoke(app, _args(out, cifar10_root, small_wds))
    assert second.exit_code == 0 and "0 cell(s) run, 4 reused" in second.output
    assert [c.stat().st_mtime_ns for c in cells] == stamps
    # another seed is another configuration: the finished cell is not reused for it
    report = json.loads(cells[0].read_text())
    config = EvalConfig(model="tiny", dataset=report["benchmark_cell"]["dataset_spec"])
    assert cell_key(config) != cell_key(dataclasses.replace(config, seed=1))
    assert finished_cell(cells[0], "another key") is None


def test_killed_benchmark_continues_where_it_stopped(cifar10_root: Path, small_wds: Path, tmp_path: Path,
                                                     monkeypatch) -> None:
    from mmrobust.benchmark import cells as cells_module

    real = cells_module.run_evaluation
    config = BenchmarkConfig(models=["tiny"], datasets=f"cifar10,wds:{small_wds}", output_dir=str(tmp_path / "b"),
                             eval=EvalConfig(model="", dataset="", data_root=str(cifar10_root), n_samples=24,
                                             batch_size=8, progress=False, attacks="pgd", eps=1 / 255, steps=2,
                                             sanity=False),
                             plot=False)

    def killed_in_second_cell(cfg, model=None):
        def after(done: int) -> None:
            if "wds" in cfg.dataset and done == 2:
                raise KeyboardInterrupt
        return real(cfg, model=model, after_batch=after)

    monkeypatch.setattr(cells_module, "run_evaluation", killed_in_second_cell)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(config)
    monkeypatch.setattr(cells_module, "run_evaluation", real)
    table = run_benchmark(config)
    assert (table["cells_reused"], table["cells_run"]) == (1, 1)
    resumed = json.loads(next((tmp_path / "b" / "cells").glob("*wds*.json")).read_text())
    assert resumed["resume"]["resumed_from_position"] == 16
    fresh = run_benchmark(BenchmarkConfig(**{**config.__dict__, "output_dir": str(tmp_path / "fresh")}))
    wds_row = lambda t: next(r for r in t["rows"] if r["dataset"].startswith("wds:"))  # noqa: E731
    assert wds_row(fresh)["families"] == wds_row(table)["families"]


def test_unknown_dataset_stops_before_any_work(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["benchmark", "-m", "tiny", "-d", "digits,not_a_set", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "unknown dataset 'not_a_set' in --datasets" in result.output
    assert not (tmp_path / "x").exists()


def test_paired_rows_use_the_same_images() -> None:
    def report(clean):
        return {"per_example": {"clean": clean}, "metrics": {}}

    rows = [{"model": m, "dataset": "d", "role": "ood", "status": "ok", "indices_sha256": "h", "families": {"clean": {}}}
            for m in ("a", "b")]
    reports = {("a", "d"): report([True] * 10), ("b", "d"): report([False] * 3 + [True] * 7)}
    (paired,) = paired_rows(rows, reports, ["a", "b"], seed=0)
    assert (paired["only_model"], paired["only_reference"], paired["n"]) == (0, 3, 10)
    assert paired["difference"] == pytest.approx(-0.3) and paired["mcnemar_p"] == pytest.approx(0.25)
    rows[1]["indices_sha256"] = "other"
    assert paired_rows(rows, reports, ["a", "b"], seed=0) == []
    assert np.array_equal(family_vectors(reports[("b", "d")])["clean"], [False] * 3 + [True] * 7)


def test_cascade_reports_give_only_their_standalone_family() -> None:
    per_example = {"clean": [True] * 4, "pgd": [True, False, True, True], "embed-sub": [True, False, False, True],
                   "worst_case": [True, False, False, True]}
    attacks = {"pgd": {"modality": "image"}, "embed-sub": {"modality": "text"}}
    each = {"per_example": per_example, "metrics": {"attacks": attacks}, "ensemble": {"mode": "each"}}
    cascade = {**each, "ensemble": {"mode": "cascade", "order": ["pgd", "embed-sub"]}}
    assert set(family_vectors(each)) == {"clean", "image", "text", "worst_case"}
    assert set(family_vectors(cascade)) == {"clean", "image", "worst_case"}  # text is cumulative there


def _protocol_args(out: Path, presets: str, *models: str) -> list[str]:
    return ["benchmark", *[w for m in models for w in ("-m", m)], "-d", "digits", "--preset", presets, "-n", "16",
            "-b", "8", "--eps", "8", "--steps", "2", "-q", "--no-sanity", "-o", str(out)]


def test_benchmark_compares_protocols_on_the_same_images(tmp_path: Path) -> None:
    """``--preset tecoa,tga-zsr``: one column group per protocol, the same images, the numbers of each preset
    run alone, and resumable cells keyed by the preset."""
    runner = CliRunner()
    out = tmp_path / "protocols"
    first = runner.invoke(app, _protocol_args(out, "tecoa,tga-zsr", "tiny", "tiny:1"))
    assert first.exit_code == 0, first.output
    assert "4 cell(s) run, 0 reused" in first.output and "on the same images: n=16" in first.output
    table = json.loads((out / "table.json").read_text())
    assert table["presets"] == ["tecoa", "tga-zsr"] and table["n_requested"] == 16
    cells = {(r["model"], r["protocol"]): r for r in table["rows"] if r["dataset"] == "digits"}
    assert set(cells) == {(m, p) for m in ("tiny", "tiny:1") for p in ("tecoa", "tga-zsr")}
    assert len({r["indices_sha256"] for r in cells.values()}) == 1  # every protocol, every model: same images
    assert {r["protocol"] for r in table["rows"] if r["role"] == "average"} == {"tecoa", "tga-zsr"}
    assert {p["protocol"] for p in table["paired"]} == {"tecoa", "tga-zsr"}
    md = (out / "table.md").read_text()
    assert "tecoa: image" in md and "tga-zsr: worst case" in md and "by protocol (rank among the models)" in md
    assert "Ranking changes between protocols:" in md and set(table["ranking"]["by_dataset"]["digits"]) == {
        "tecoa", "tga-zsr"}
    with open(out / "table.csv") as handle:
        assert {r["protocol"] for r in csv.DictReader(handle)} == {"tecoa", "tga-zsr"}
    assert sorted(p.name for p in (out / "cells").glob("*.json")) == [
        "tiny-1__digits__tecoa.json", "tiny-1__digits__tga-zsr.json", "tiny__digits__tecoa.json",
        "tiny__digits__tga-zsr.json"]
    tga = json.loads((out / "cells" / "tiny__digits__tga-zsr.json").read_text())
    assert tga["precision"] == "amp" and tga["autocast_dtype"] == "bfloat16"  # recorded (CPU: bf16)
    again = runner.invoke(app, _protocol_args(out, "tecoa,tga-zsr", "tiny", "tiny:1"))
    assert again.exit_code == 0 and "0 cell(s) run, 4 reused" in again.output

    for preset, models in (("tecoa", ("tiny", "tiny:1")), ("tga-zsr", ("tiny",))):  # each protocol alone
        alone = tmp_path / preset
        result = runner.invoke(app, _protocol_args(alone, preset, *models))
        assert result.exit_code == 0, result.output
        single = {r["model"]: r for r in json.loads((alone / "table.json").read_text())["rows"]
                  if r["dataset"] == "digits"}
        for model in models:
            assert single[model]["families"] == cells[(model, preset)]["families"]
            assert single[model]["indices_sha256"] == cells[(model, preset)]["indices_sha256"]


def test_protocol_flags_apply_where_read_and_are_refused_where_none_reads_them() -> None:
    from mmrobust.benchmark.protocols import protocol_configs

    base = EvalConfig(model="", dataset="", preset="robustvlm,tecoa")
    configs = protocol_configs(dataclasses.replace(base, target_classes=2, steps=3))
    assert configs["robustvlm"].target_classes == 2 and configs["tecoa"].target_classes is None  # APGD-T only
    assert configs["robustvlm"].steps == configs["tecoa"].steps == 3
    assert configs["robustvlm"].n_samples == configs["tecoa"].n_samples == 1000  # robustvlm's n, for both
    assert protocol_configs(dataclasses.replace(base, n_samples=50))["tecoa"].n_samples == 50
    with pytest.raises(ConfigError, match="--square-queries applies to none"):
        protocol_configs(dataclasses.replace(base, square_queries=8))
    with pytest.raises(ConfigError, match="no --attack"):
        protocol_configs(dataclasses.replace(base, attacks="pgd"))


def test_a_protocol_whose_attack_needs_more_classes_fails_its_cell_only(tmp_path: Path) -> None:
    out = tmp_path / "two"
    result = CliRunner().invoke(app, _protocol_args(out, "tecoa,tga-zsr", "tiny") + ["--n-classes", "2"])
    assert result.exit_code == 0, result.output
    rows = {r["protocol"]: r for r in json.loads((out / "table.json").read_text())["rows"] if r["dataset"] == "digits"}
    assert rows["tecoa"]["status"] == "failed" and "apgd-dlr needs at least 3 classes" in rows["tecoa"]["message"]
    assert rows["tga-zsr"]["status"] == "ok"


def test_protocol_ranks_show_where_the_ranking_changes() -> None:
    from mmrobust.benchmark.table import protocol_ranks

    def row(model, dataset, protocol, worst):
        return {"model": model, "dataset": dataset, "role": "ood", "status": "ok", "protocol": protocol,
                "families": {"worst_case": {"accuracy": worst}}}

    rows = [row("a", "d1", "p", 0.5), row("b", "d1", "p", 0.3), row("a", "d1", "q", 0.2), row("b", "d1", "q", 0.4),
            row("a", "d2", "p", 0.5), row("b", "d2", "p", 0.3), row("a", "d2", "q", 0.4), row("b", "d2", "q", 0.1)]
    ranks = protocol_ranks(rows, ["a", "b"], ["p", "q"])
    assert ranks["by_dataset"]["d1"] == {"p": {"a": 1, "b": 2}, "q": {"a": 2, "b": 1}}
    assert ranks["changes"] == ["d1"]
