"""bench/findings_tables.py and bench/findings_plots.py (issue 15): the RESULTS_findings tables and figures are
rendered from study folders, so their comparisons must be the toolkit's paired tests on the same images."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from mmrobust.stats import mcnemar_exact
from mmrobust.studies.intervals import add_intervals, aggregate_seeds, decode

BENCH = Path(__file__).resolve().parents[1] / "bench"
KEYS = ("clean", "image", "text", "multimodal", "worst_case", "ood_clean", "ood_image", "ood_text",
        "ood_multimodal", "ood_worst_case")
PNG = b"\x89PNG\r\n\x1a\n"


def _module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(setting: str, method: str, size: int, bits: str, ood_images: str = "ood") -> dict:
    row = {"key": setting, "setting": setting, "method": method, "n_train_images": size, "n": len(bits),
           "images": "iid", "images_by_column": {k: ood_images for k in KEYS if k.startswith("ood_")},
           "correct": {k: bits for k in KEYS}, "unreliable": None, "sanity_ran": False}
    row.update({k: decode(bits).mean() for k in KEYS})
    return row


def _study(folder: Path, method: str, eps: float, seed_bits: dict[str, list[str]], ood_images: str = "ood") -> Path:
    settings = list(seed_bits)
    runs = [[_row(s, "none" if s == "none" else method, 10 * i, seed_bits[s][seed], ood_images)
             for i, s in enumerate(settings)] for seed in range(2)]
    rows = [add_intervals(r, pooled=[k for k in KEYS if k.startswith("ood_")]) for r in aggregate_seeds(runs, [0, 1], KEYS)]
    config = {"models": ["tiny"], "dataset": "digits", "ood_datasets": "cifar10", "eval_steps": 10, "eval_eps": 1 / 255,
              "text_attack": "embed-sub", "text_goal": "embedding-kl", "multimodal_attack": "sep", "method": method,
              "train_eps": eps}
    folder.mkdir(parents=True)
    (folder / "table.json").write_text(json.dumps({"study": "train-size", "title": "t", "config": config, "seeds": [0, 1],
                                                   "rows": rows, "reference": "none", "comparisons": []}))
    return folder


BITS = {"none": ["10000000", "11000000"], "full": ["11110000", "11111000"]}
OTHER = {"none": ["10000000", "11000000"], "full": ["11100000", "11000000"]}


def test_tables_compare_with_any_row_and_across_studies_on_the_same_images(tmp_path: Path) -> None:
    tables = _module("findings_tables")
    a = _study(tmp_path / "a", "mmcoa", 1 / 255, BITS)
    b = _study(tmp_path / "b", "tecoa", 1 / 255, OTHER)
    text = tables.render(a, ["clean", "ood_clean"], ["clean", "ood_clean"], b, reference="none")
    full_p = mcnemar_exact(decode("1111000011111000"), decode("1000000011000000")).p_value
    assert f"p={full_p:.2g}" in text and "| full | 56.2 ± 8.8" in text
    versus = text[text.index("`a` − `b`"):]
    assert f"p={mcnemar_exact(decode('1111000011111000'), decode('1110000011000000')).p_value:.2g}" in versus
    c = _study(tmp_path / "c", "tecoa", 1 / 255, OTHER, ood_images="elsewhere")
    across = tables.render(a, ["clean"], ["clean", "ood_clean"], c)
    assert "different images: not paired" in across[across.index("`a` − `c`"):]
    with pytest.raises(ValueError):
        tables.render(a, ["clean"], ["clean"], None, reference="no such row")


def test_plots_write_readable_figures(tmp_path: Path) -> None:
    plots = _module("findings_plots")
    a = _study(tmp_path / "a", "mmcoa", 1 / 255, BITS)
    b = _study(tmp_path / "b", "tecoa", 2 / 255, OTHER)
    for kind, call in (("bars", lambda out: plots.bars(a, out)), ("size", lambda out: plots.size([a, b], out)),
                       ("eps", lambda out: plots.train_eps([a, b], out))):
        out = tmp_path / f"{kind}.png"
        call(out)
        assert out.read_bytes()[:8] == PNG, kind


def test_a_sweep_tabulates_one_row_per_folder_against_the_reference_folder(tmp_path: Path) -> None:
    tables = _module("findings_tables")
    a = _study(tmp_path / "a", "mmcoa", 1 / 255, BITS)
    b = _study(tmp_path / "b", "mmcoa", 2 / 255, OTHER)
    text = tables.render_sweep([a, b], "full", "train_eps", ["clean"], ["clean"], reference=a)
    assert "| 1 | 56.2 ± 8.8" in text and "| 2 | 31.2 ± 8.8" in text and "| none |" in text
    p = mcnemar_exact(decode("1110000011000000"), decode("1111000011111000")).p_value
    assert "| 2 | -25.0 " in text and f"p={p:.2g}" in text and "| 1 | -" not in text.split("Each −")[1]
