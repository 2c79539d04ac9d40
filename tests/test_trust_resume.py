"""Saved state is validated before use (issue 9, item 4): a hand-edited training checkpoint, proxy training state
or study cell is refused with one line saying how to start over, never half-trusted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from mmrobust.cli.main import app
from mmrobust.errors import ModelLoadError
from mmrobust.models.checkpoint import file_sha256


def _one_line_exit_2(result, *fragments: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


TRAIN = ["train", "-m", "tiny", "--method", "clean", "-d", "digits", "-q", "--epochs", "1", "--n-train", "8",
         "--n-eval", "4", "-b", "8"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One finished one-epoch run; each test edits its own copy."""
    run = tmp_path_factory.mktemp("trained") / "run"
    result = CliRunner().invoke(app, [*TRAIN, "-o", str(run)])
    assert result.exit_code == 0, result.output
    return run


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


@pytest.mark.parametrize("position, fragment", [
    ({"epoch": 7, "step_in_epoch": 0, "global_step": 7}, "beyond this run's 1 epochs"),
    ({"epoch": -1, "step_in_epoch": 0, "global_step": 0}, "invalid position"),
    ({"epoch": "0", "step_in_epoch": 0, "global_step": 0}, "invalid position"),
])
def test_a_hand_edited_training_position_is_refused(trained_run, tmp_path, position, fragment):
    run = _copy(trained_run, tmp_path)
    latest_path = run / "checkpoints" / "latest.json"
    latest = json.loads(latest_path.read_text())
    state_path = run / "checkpoints" / latest["folder"] / "training_state.pt"
    state = torch.load(state_path, weights_only=True)
    state["position"] = position
    torch.save(state, state_path)
    latest["training_state_sha256"] = file_sha256(state_path)  # a careful editor also fixes the checksum
    latest_path.write_text(json.dumps(latest))
    _one_line_exit_2(CliRunner().invoke(app, [*TRAIN, "-o", str(run), "--resume"]), fragment, "new --output-dir")


def test_a_checkpoint_pointer_outside_the_run_is_refused(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    latest_path = run / "checkpoints" / "latest.json"
    latest_path.write_text(json.dumps({**json.loads(latest_path.read_text()), "folder": "../../elsewhere"}))
    _one_line_exit_2(CliRunner().invoke(app, [*TRAIN, "-o", str(run), "--resume"]), "corrupt checkpoint pointer")


@pytest.mark.parametrize("edit, fragment", [
    ({"epoch": 10**6}, "epoch 1000000 is not in 0..3"),
    ({"epoch": 1, "history": []}, "history does not list 1 epochs"),
    ({"epoch": 1, "history": [{}], "train_seconds": -5}, "train_seconds"),
    ({"epoch": 1, "history": [{}], "train_seconds": 1.0, "model": {"nope": torch.zeros(1)}}, "RuntimeError"),
])
def test_a_hand_edited_proxy_training_state_is_refused(tmp_path, edit, fragment):
    from mmrobust.models.tiny import build_tiny
    from mmrobust.proxy.training import _restore

    state = {"epoch": 0, "history": [], "train_seconds": 0.0, "model": {}, "optimizer": {}, **edit}
    run = SimpleNamespace(recipe=SimpleNamespace(epochs=3))
    path = tmp_path / "entry" / "state" / "train_state.pt"
    with pytest.raises(ModelLoadError, match=fragment) as info:
        _restore(state, path, build_tiny(seed=0), run, SimpleNamespace())
    assert f"delete {tmp_path / 'entry'}" in str(info.value)


def test_a_hand_edited_study_cell_is_refused(tmp_path):
    out = tmp_path / "study"
    args = ["study", "eps", "-o", str(out), "-m", "tiny", "-q", "-n", "4", "--eps", "4", "--text-attack", "none",
            "--multimodal-attack", "none", "--no-sanity", "--eval-steps", "1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    (cell,) = (out / "cells").glob("*.json")
    record = json.loads(cell.read_text())
    record["result"]["clean"] = 3.5  # "350 %"
    cell.write_text(json.dumps(record))
    _one_line_exit_2(CliRunner().invoke(app, args), str(cell), "clean = 3.5", "delete it")
