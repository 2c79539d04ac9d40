"""``mmrobust train --seeds``: one fine-tune per seed under DIR/seed-S, finished seeds reused, and the
held-out accuracy summarised over seeds with the stats module (mean ± sd, t interval, pooled Wilson)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrobust.cli.main import app
from mmrobust.stats import seed_summary

TRAIN = ["train", "-m", "tiny", "--method", "clean", "-d", "digits", "-q", "--epochs", "1", "--n-train", "8",
         "--n-eval", "12", "-b", "8", "--lr", "1e-3"]


def test_seeds_train_each_seed_once_and_summarise_the_held_out_accuracy(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "runs"
    runner = CliRunner()
    first = runner.invoke(app, [*TRAIN, "--seeds", "0,1,2", "-o", str(out)])
    assert first.exit_code == 0, first.output
    summary = json.loads((out / "seeds.json").read_text())
    reports = [json.loads((out / f"seed-{s}" / "report.json").read_text()) for s in (0, 1, 2)]
    assert [r["config"]["seed"] for r in reports] == [0, 1, 2]
    assert [r["seed"] for r in summary["runs"]] == [0, 1, 2]
    finals = [r["final_eval"] for r in reports]
    expected = seed_summary([round(f["clean_accuracy"] * f["n"]) for f in finals], [f["n"] for f in finals])
    assert summary["final_eval"]["clean_accuracy"] == pytest.approx(expected.as_dict())
    assert "held-out clean accuracy" in first.output and "seeds.json" in first.output

    import mmrobust.training.trainer as trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("a finished seed was trained again"))
    again = runner.invoke(app, [*TRAIN, "--seeds", "0,1,2", "-o", str(out)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "seeds.json").read_text()) == summary
    # a finished seed of another recipe is refused in one line, not silently reused
    other = runner.invoke(app, [*TRAIN, "--lr", "1e-2", "--seeds", "0", "-o", str(out)])
    assert other.exit_code == 2 and "holds a finished run with other lr" in other.output


@pytest.mark.parametrize("seeds, message", [("0,x", "comma-separated integers"), ("1,1", "distinct seeds")])
def test_bad_seeds_are_one_line(seeds: str, message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [*TRAIN, "--seeds", seeds, "-o", str(tmp_path / "runs")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "runs").exists()
