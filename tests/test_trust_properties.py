"""Property: whatever option values a user types, ``eval`` and ``train`` either succeed with a valid report or
exit 2 with at most two lines on stderr — never a traceback, never a partial file (issue 9, item 3).

Drawn with ``hypothesis`` on the tiny model and a handful of images; ``derandomize`` keeps the suite stable
(the same examples every run), ``deadline=None`` because a busy 2-core machine makes timings meaningless.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from mmrobust.cli.main import app

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _known_gap(options: dict[str, object]) -> bool:
    """Values that still escape as a traceback until the registries branch (option validation) is merged;
    the lead deletes this filter after that merge."""
    seed = options.get("--seed")
    goal_images = options.get("--text-goal-images")
    return (isinstance(seed, int) and not 0 <= seed < 2**32) or (goal_images is not None and goal_images < 1)


def _argv(options: dict[str, object]) -> list[str]:
    argv: list[str] = []
    for name, value in options.items():
        if value is not None:
            argv += [name, str(value)]
    return argv


def _check_outcome(result, folder: Path, report: Path) -> dict | None:
    """Common half of the property; returns the parsed report on success."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {type(result.exception).__name__}: {result.exception}")
    assert result.exit_code in (0, 2), result.output[-800:]
    event(f"exit {result.exit_code}")
    leftovers = [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".lock"))]
    assert leftovers == [], leftovers
    if result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        assert 1 <= len(lines) <= 2, result.stderr
        assert not report.exists()
        return None
    return json.loads(report.read_text(encoding="utf-8"))


def _fraction(value: object) -> bool:
    return isinstance(value, (int, float)) and 0.0 <= value <= 1.0


def _mostly(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """Each option is usually valid, so that whole runs succeed too (the success half of the property)."""
    return st.one_of(valid, valid, valid, invalid)


eval_options = st.fixed_dictionaries({
    "--n-samples": st.integers(1, 6),  # their bad values are rows of test_trust_cli's table
    "--batch-size": st.integers(1, 5),
    "--seed": st.one_of(st.none(), st.integers(0, 9), st.integers(-2, 2**33)),
    "--n-classes": st.one_of(st.none(), st.none(), st.integers(2, 10), st.integers(-1, 12)),
    "--logit-scale": st.one_of(st.none(), st.none(), st.sampled_from([-100.0, 0.0, 1.0, 100.0, math.nan, math.inf])),
    "--attack": st.one_of(st.none(), st.lists(st.sampled_from(["pgd", "fgsm", "apgd-ce", "square", "typo", "nope"]),
                                              min_size=1, max_size=2, unique=True).map(",".join)),
    "--eps": st.one_of(st.sampled_from([0.5, 4.0]), st.sampled_from([0.5, 4.0, -1.0, 0.0, 300.0, math.nan])),
    "--steps": st.one_of(st.none(), st.integers(1, 3), st.integers(-1, 0)),
    "--norm": st.one_of(st.none(), st.sampled_from(["linf", "l2"]), st.just("l7")),
    "--restarts": st.one_of(st.none(), st.integers(1, 2), st.integers(-1, 0)),
    "--square-queries": st.one_of(st.none(), st.integers(1, 8), st.integers(-1, 0)),
    "--text-goal": st.one_of(st.none(), st.sampled_from(["embedding-kl", "zero-shot-margin"]), st.just("nope")),
    "--text-goal-images": st.one_of(st.none(), st.integers(1, 3), st.integers(-1, 0)),
}).filter(lambda o: not _known_gap(o))


@settings(max_examples=25, **SETTINGS)
@given(options=eval_options)
@example(options={"--n-samples": 5, "--batch-size": 2, "--attack": "pgd,square", "--eps": 4.0, "--steps": 2,
                  "--square-queries": 5})
def test_eval_succeeds_with_a_valid_report_or_fails_in_one_line(options):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report_path = folder / "r.json"
        argv = ["eval", "-m", "tiny", "-d", "digits", "-q", "--no-sanity", "-o", str(report_path), *_argv(options)]
        result = CliRunner().invoke(app, argv)
        report = _check_outcome(result, folder, report_path)
        if report is None:
            return
        n = report["n_samples"]
        assert 1 <= n <= options["--n-samples"] and report["sampling"]["seed"] == (options.get("--seed") or 0)
        assert 1 <= n <= options["--n-samples"] and len(report["sampling"]["indices"]) == n
        assert report["metrics"]["clean"]["n"] == n and _fraction(report["accuracy"])
        if options["--attack"]:
            assert _fraction(report["robust_accuracy"]) and report["robust_accuracy"] <= report["accuracy"]
            for block in report["metrics"]["attacks"].values():
                assert _fraction(block["accuracy"])
        assert sorted(p.name for p in folder.iterdir()) == ["r.json"]  # resume state removed once reported


train_options = st.fixed_dictionaries({
    "--method": _mostly(st.sampled_from(["clean", "tecoa", "fare", "mmcoa"]), st.just("nope")),
    "--epochs": _mostly(st.just(1), st.integers(-1, 0)),
    "--batch-size": st.integers(1, 8),
    "--n-train": st.integers(1, 12),
    "--steps": _mostly(st.integers(1, 2), st.just(0)),
    "--eps": _mostly(st.sampled_from(["1", "4/255", "2"]), st.sampled_from(["0", "abc", "-1", "300"])),
    "--lr": _mostly(st.just(1e-3), st.sampled_from([0.0, -1.0, math.nan])),
    "--train": _mostly(st.sampled_from(["full", "image", "prompt", "last-k"]), st.just("nope")),
    "--seed": st.integers(0, 3),
})


@settings(max_examples=6, **SETTINGS)
@given(options=train_options)
@example(options={"--method": "tecoa", "--epochs": 1, "--batch-size": 4, "--n-train": 8, "--steps": 1, "--eps": "2",
                  "--lr": 1e-3, "--train": "image", "--seed": 0})
def test_train_succeeds_with_a_checkpoint_or_fails_in_one_line(options):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        argv = ["train", "-m", "tiny", "-d", "digits", "-q", "-o", str(folder), "--n-eval", "4", *_argv(options)]
        result = CliRunner().invoke(app, argv)
        report = _check_outcome(result, Path(tmp), folder / "report.json")
        if report is None:
            assert not (folder / "final").exists()
            return
        assert len(report["history"]) == options["--epochs"] and report["method"] == options["--method"]
        assert (folder / "final" / "mmrobust.json").is_file()
