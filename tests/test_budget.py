"""Planned work and its ceilings (issue 22, deliverable 3): every long command prints its plan in one line
(unless ``-q``) and refuses, in one line naming the ceiling and ``--allow-long-run``, a batch larger than its
split and a plan estimated (one step timed on the first batch) at over a week — before the work starts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import mmrobust.utils.budget as budget
from mmrobust.cli.main import app

EVAL = ["eval", "-m", "tiny", "-d", "digits", "-n", "8", "-b", "4", "-a", "pgd", "--no-sanity"]
TRAIN = ["train", "-m", "tiny", "--method", "mmcoa", "-d", "digits", "--n-train", "8", "-b", "4", "--epochs", "1",
         "--n-eval", "4"]
HUGE = "1000000000"


def run(args: list[str]) -> tuple[int, list[str], float]:
    """(exit status, the output's lines, seconds) of ``mmrobust ARGS`` in this process."""
    t0 = time.perf_counter()
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output.splitlines(), time.perf_counter() - t0


def refusal(lines: list[str]) -> str:
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, lines
    return errors[0]


def test_eval_refuses_a_billion_steps_in_seconds(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    status, lines, seconds = run([*EVAL, "--steps", HUGE, "-q", "-o", str(out)])
    assert status == 2 and seconds < 30, (seconds, lines)
    line = refusal(lines)
    assert "over the ceiling of 7 days" in line and "lower --steps or --n-samples or pass --allow-long-run" in line
    assert "attack steps" in line and "timed on the first batch of 4 images" in line
    assert not out.exists() and not list(tmp_path.glob("*.state.json"))


def test_eval_refuses_a_batch_larger_than_the_split_and_the_flag_lifts_it(tmp_path: Path) -> None:
    status, lines, _ = run(["eval", "-m", "tiny", "-d", "digits", "-n", "8", "-b", HUGE, "-q", "-o",
                            str(tmp_path / "r.json")])
    assert status == 2
    assert refusal(lines) == ("error: --batch-size 1,000,000,000 exceeds the ceiling of 450 (the 450 images in "
                              "digits/test, at least 256); lower it or pass --allow-long-run")
    status, lines, _ = run(["eval", "-m", "tiny", "-d", "digits", "-n", "8", "-b", HUGE, "-q", "--allow-long-run",
                            "-o", str(tmp_path / "r.json")])
    assert status == 0 and (tmp_path / "r.json").is_file(), lines


def test_the_flag_lifts_the_time_ceiling(tmp_path: Path, monkeypatch) -> None:
    """A ceiling every run exceeds (monkeypatched) refuses a 2-step run; --allow-long-run runs it."""
    monkeypatch.setattr(budget, "WEEK_S", 1e-12)
    status, lines, _ = run([*EVAL, "--steps", "2", "-q", "-o", str(tmp_path / "r.json")])
    assert status == 2 and "pass --allow-long-run" in refusal(lines)
    status, lines, _ = run([*EVAL, "--steps", "2", "-q", "--allow-long-run", "-o", str(tmp_path / "r.json")])
    assert status == 0 and (tmp_path / "r.json").is_file(), lines


def test_eval_prints_its_plan_unless_quiet(tmp_path: Path) -> None:
    status, lines, _ = run([*EVAL, "--steps", "2", "-o", str(tmp_path / "a.json")])
    assert status == 0 and "plan: 8 images × 1 attack × 2 steps = 16 image-steps" in lines, lines
    status, lines, _ = run([*EVAL, "--steps", "2", "-q", "-o", str(tmp_path / "b.json")])
    assert status == 0 and not any(line.startswith("plan:") for line in lines), lines


def test_train_plans_and_refuses(tmp_path: Path) -> None:
    status, lines, seconds = run([*TRAIN, "--steps", HUGE, "-o", str(tmp_path / "a")])
    assert status == 2 and seconds < 30, (seconds, lines)
    assert "plan: 1 epoch × 2 steps per epoch × 1,000,000,000 attack steps = 2,000,000,000 attack steps" in lines
    line = refusal(lines)
    assert "forward-backward passes" in line and "lower --steps or --epochs or pass --allow-long-run" in line
    status, lines, _ = run([*TRAIN, "-b", HUGE, "-q", "-o", str(tmp_path / "b")])
    assert status == 2 and refusal(lines).startswith("error: --batch-size 1,000,000,000 exceeds the ceiling of 1,347")
    assert not (tmp_path / "a" / "checkpoints").exists() and not (tmp_path / "b" / "report.json").exists()


def test_benchmark_plans_and_refuses(tmp_path: Path) -> None:
    args = ["benchmark", "-m", "tiny", "--datasets", "digits", "-n", "8", "-b", "4", "-a", "pgd", "--no-sanity",
            "--steps", HUGE, "-o", str(tmp_path / "bench")]
    status, lines, seconds = run(args)
    assert status == 2 and seconds < 30, (seconds, lines)
    assert "plan: 1 model × 1 dataset × 8 images × 1 attack × 1,000,000,000 steps = 8,000,000,000 image-steps" in lines
    assert "pass --allow-long-run" in refusal(lines)


def test_study_refusal_names_the_study_flag(tmp_path: Path) -> None:
    args = ["study", "eps", "-m", "tiny", "--eps", "4", "--text-attack", "none", "--multimodal-attack", "none",
            "--eval-steps", HUGE, "-n", "8", "-b", "4", "--no-sanity", "-o", str(tmp_path / "study")]
    status, lines, seconds = run(args)
    assert status == 2 and seconds < 60, (seconds, lines)
    assert lines[0] == "plan: 1 cell × 1 seed × 8 images × 1 attack × 1,000,000,000 steps = 8,000,000,000 image-steps"
    assert "lower --eval-steps or --n-samples or pass --allow-long-run" in refusal(lines)


def test_allow_long_run_is_one_declaration() -> None:
    """One field (BudgetOptions.allow_long_run) gives every long command its flag."""
    from test_option_declarations import _flags_of

    for command in ("eval", "train", "benchmark", "study eps", "study train-size", "study classes"):
        assert "--allow-long-run" in _flags_of(command), command
    src = Path(__file__).resolve().parents[1] / "src" / "mmrobust"
    declared = [p for p in src.rglob("*.py") if "allow_long_run: bool" in p.read_text(encoding="utf-8")]
    assert [p.name for p in declared] == ["run.py"] and declared[0].parent.name == "options"


@pytest.mark.parametrize("seconds, text", [(42, "42 s"), (3 * 3600, "3.0 h"), (10 * 86400, "10.0 days"),
                                           (3 * 365 * 86400, "3.0 years")])
def test_duration_reads(seconds: float, text: str) -> None:
    assert budget.duration(seconds) == text
