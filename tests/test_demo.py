"""``mmrobust demo`` end to end on the tiny model (code paths only; the real demo runs on proxy:digits)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mmrobust.demo import COLUMNS, DemoConfig, format_table, run_demo
from mmrobust.errors import ConfigError


def test_demo_writes_table_json_csv_and_plot(tmp_path: Path) -> None:
    lines: list[str] = []
    config = DemoConfig(
        output_dir=str(tmp_path / "demo"), model="tiny", methods=("clean", "tecoa", "mmcoa"), train_eps=8 / 255, eval_eps=8 / 255,
        train_steps=1, eval_steps=2, epochs=1, batch_size=8, lr=1e-3, n_train=16, n_eval=16, eval_batch_size=16,
        progress=False, sanity=False,
    )
    result = run_demo(config, echo=lines.append)
    assert all(row["checks"] == "unchecked" for row in result["rows"])  # never "ok" without the checks
    assert [row["method"] for row in result["rows"]] == ["none", "clean", "tecoa", "mmcoa"]
    for row in result["rows"]:
        for column in COLUMNS:
            assert 0.0 <= row[column] <= 1.0
        assert row["worst_case"] <= min(row["clean"], row["image"], row["text"], row["multimodal"]) + 1e-9
    assert result["rows"][1]["trained_parameters"] > 0
    out = tmp_path / "demo"
    saved = json.loads((out / "demo.json").read_text())
    assert saved["eps"] == {"train": "8/255", "eval": "8/255"}
    with open(out / "demo.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["method"] for r in table] == ["none", "clean", "tecoa", "mmcoa"]
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from test_report_html import Page

    page = Page((out / "demo.html").read_text(encoding="utf-8"))  # the demo's self-contained page
    assert [r[0] for r in page.table("Accuracy % [95 % Wilson]")[1:]] == ["none", "clean", "tecoa", "mmcoa"]
    assert len(page.images) == 4 and all(src.startswith("data:image/png;base64,") for src in page.images)
    text = "\n".join(lines)
    assert "worst-case" in text and "mmcoa" in text and "8/255" in text and "demo.html" in text
    assert len(list((out / "runs").glob("mmcoa-*/final/mmrobust.json"))) == 1  # the studies' run layout


def test_format_table_and_bad_config() -> None:
    row = {"method": "none", "clean": 0.5, "image": 0.25, "text": None, "multimodal": 0.0, "worst_case": 0.0}
    text = format_table([row])
    assert "50.0%" in text and "25.0%" in text and " -" in text
    with pytest.raises(ConfigError, match="unknown --method"):
        DemoConfig(methods=("magic",)).validate()
    with pytest.raises(ConfigError, match="255/255"):
        DemoConfig(eval_eps=0).validate()
    with pytest.raises(ConfigError, match="255/255"):
        DemoConfig(eval_eps=16).validate()  # K where a fraction belongs: refused, not silently 16 x the range
