"""``mmrobust benchmark`` on retrieval datasets: recall rows beside the classification rows, the same
numbers from the Karpathy and the webdataset layouts of one fixture, reuse, and the attack mapping."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrobust.benchmark.datasets import plan_datasets
from mmrobust.benchmark.retrieval_cells import retrieval_attack_names, retrieval_cell_config
from mmrobust.cli.main import app
from mmrobust.data.catalog import Catalog, expand_dataset_list
from mmrobust.data.wds import check_layout
from mmrobust.errors import DatasetError
from mmrobust.eval.run import EvalConfig


def _args(out: Path, root: Path) -> list[str]:
    return ["benchmark", "-m", "tiny", "-d", f"flickr30k,wds:{root / 'wds'},mscoco", "--data-root", str(root),
            "-n", "5", "-b", "3", "-a", "pgd,embed-sub", "--eps", "8", "--steps", "2", "--text-candidates", "3",
            "-q", "-o", str(out)]


def test_retrieval_rows_both_layouts_and_reuse(tin_captions: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "bench"
    first = runner.invoke(app, _args(out, tin_captions))
    assert first.exit_code == 0, first.output
    assert "2 cell(s) run, 0 reused" in first.output
    table = json.loads((out / "table.json").read_text())
    assert table["retrieval_attacks"] == ["pgd", "embed-sub"]
    rows = {r["dataset"]: r for r in table["rows"]}
    karpathy, wds = rows["flickr30k"], rows[f"wds:{tin_captions / 'wds'}"]
    assert karpathy["role"] == wds["role"] == "retrieval" and karpathy["status"] == "ok"
    assert rows["mscoco"]["status"] == "missing" and "dataset_coco.json" in rows["mscoco"]["message"]
    assert set(karpathy["families"]) == {"clean", "image", "text"}
    clean = karpathy["families"]["clean"]
    assert clean["t2i"]["n"] == 15 and clean["i2t"]["n"] == 5  # captions, images
    for block in (clean["t2i"], clean["i2t"]):
        assert block["low"] <= block["recall"] <= block["high"]
        assert block["n_correct"] == round(block["recall"] * block["n"])
    assert karpathy["families"]["image"]["attack"] == "pgd"
    # the same images and captions in two layouts give the same numbers
    assert karpathy["families"] == wds["families"]
    report = json.loads((out / karpathy["report"]).read_text())
    assert report["metrics"]["clean"]["recall"]["text_to_image"]["r@1"] == clean["t2i"]["recall"]
    assert report["attack_options"]["pgd"]["eps"] == pytest.approx(8 / 255)
    assert rows["average (OOD)"]["status"] == "empty"  # retrieval rows are not averaged with accuracies
    md = (out / "table.md").read_text()
    assert "### Image–text retrieval" in md and "(pgd)" in md
    with open(out / "table.csv") as handle:
        metrics = {(r["dataset"], r["family"], r["metric"]) for r in csv.DictReader(handle)}
    assert ("flickr30k", "image", "text->image R@1") in metrics and ("flickr30k", "clean", "image->text R@1") in metrics
    assert (out / "heatmap.png").stat().st_size > 5_000

    second = runner.invoke(app, _args(out, tin_captions))
    assert second.exit_code == 0 and "0 cell(s) run, 2 reused" in second.output


def test_family_mapping_and_options_for_retrieval_cells() -> None:
    config = EvalConfig(model="tiny", dataset="digits", attacks="apgd-ce,bert-attack,sep", mlm="folder",
                        eps=4 / 255, square_queries=None)
    assert retrieval_attack_names(config) == ["pgd", "bert-attack", "co-attack"]
    assert retrieval_attack_names(EvalConfig(model="tiny", dataset="digits", attacks="typo")) == ["typo"]
    assert retrieval_attack_names(config, "sga,pgd") == ["sga", "pgd"]
    assert retrieval_attack_names(config, "none") == []
    square = EvalConfig(model="tiny", dataset="digits", attacks="square", square_queries=50, eps=2 / 255)
    cell = retrieval_cell_config(square, retrieval_attack_names(square))
    assert (cell.task, cell.attacks, cell.preset) == ("retrieval", ["pgd"], None)
    assert cell.eps == pytest.approx(2 / 255) and cell.square_queries is None  # Square's option does not apply
    cell.validate()


def test_task_comes_from_catalog_registry_and_dataset_type(tmp_path: Path) -> None:
    folder = tmp_path / "wds_captions"
    folder.mkdir()
    (folder / "dataset_type.txt").write_text("retrieval\n")
    choices = plan_datasets(expand_dataset_list(f"cifar10,coco,@retrieval,wds:{folder}"), Catalog())
    assert {c.item: c.task for c in choices} == {
        "cifar10": "classification", "coco": "retrieval", "flickr30k": "retrieval", "mscoco": "retrieval",
        f"wds:{folder}": "retrieval"}
    with pytest.raises(DatasetError, match="retrieval dataset .* --task retrieval"):
        check_layout(folder, "test")
