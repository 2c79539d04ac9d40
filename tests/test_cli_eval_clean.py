"""``mmrobust eval`` (clean zero-shot) through the real CLI: valid reports, determinism, one-line errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrobust.cli.main import app


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def _eval(runner: CliRunner, *args: str):
    return runner.invoke(app, ["eval", "--model", "tiny", "--quiet", *args])


def _report(path: Path) -> dict:
    report = json.loads(path.read_text(encoding="utf-8"))
    assert report["task"] == "zeroshot_classification"
    clean = report["metrics"]["clean"]
    assert 0.0 <= report["accuracy"] <= 1.0 and report["accuracy"] == clean["accuracy"]
    assert clean["n"] == report["n_samples"] == len(report["sampling"]["indices"])
    indices = report["sampling"]["indices"]
    assert indices == sorted(set(indices))  # distinct, sorted
    return report


def _twice(runner: CliRunner, tmp_path: Path, *args: str) -> tuple[dict, dict]:
    reports = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.json"
        result = _eval(runner, *args, "--output", str(out))
        assert result.exit_code == 0, result.output
        assert "clean accuracy" in result.stdout
        reports.append(_report(out))
    return reports[0], reports[1]


def test_cifar10_report_is_valid_and_deterministic(runner, cifar10_root, tmp_path):
    first, second = _twice(runner, tmp_path, "--dataset", "cifar10", "--data-root", str(cifar10_root), "--n-samples", "200")
    assert first["n_samples"] == 200
    assert first["dataset"]["name"] == "cifar10" and len(first["dataset"]["classes"]) == 10
    assert first["accuracy"] == second["accuracy"]
    assert first["sampling"]["indices"] == second["sampling"]["indices"]
    assert first["sampling"]["indices_sha256"] == second["sampling"]["indices_sha256"]
    assert first["metrics"]["clean"]["per_class_accuracy"] == second["metrics"]["clean"]["per_class_accuracy"]


def test_tinyimagenet_report_is_valid_and_deterministic(runner, tinyimagenet_root, tmp_path):
    first, second = _twice(
        runner, tmp_path, "--dataset", "tinyimagenet", "--data-root", str(tinyimagenet_root), "--n-samples", "40"
    )
    assert first["dataset"]["split"] == "val" and len(first["dataset"]["classes"]) == 200
    assert first["accuracy"] == second["accuracy"]
    assert first["sampling"]["indices"] == second["sampling"]["indices"]


def test_seed_changes_the_sample(runner, tmp_path):
    reports = []
    for seed in ("0", "1"):
        out = tmp_path / f"seed{seed}.json"
        assert _eval(runner, "--dataset", "digits", "--n-samples", "30", "--seed", seed, "--output", str(out)).exit_code == 0
        reports.append(_report(out))
    assert reports[0]["sampling"]["indices"] != reports[1]["sampling"]["indices"]
    assert reports[1]["seed"] == 1


def test_digits_full_test_split(runner, tmp_path):
    from mmrobust.data.digits import digits_split_indices

    out = tmp_path / "digits.json"
    result = _eval(runner, "--dataset", "digits", "--output", str(out), "--logit-scale", "100")
    assert result.exit_code == 0, result.output
    report = _report(out)
    assert report["n_samples"] == len(digits_split_indices()["test"])
    assert report["logit_scale"] == 100.0


# ---------------------------------------------------------------------- bad input: one line, exit != 0, no file
def _write_cifar_batch(path: Path, n: int, rng: np.random.Generator) -> None:
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
    path.write_bytes(pickle.dumps(batch))


def _cifar_with_truncated_test_batch(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": names}))
    _write_cifar_batch(folder / "test_batch", 20, np.random.default_rng(0))
    data = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(data[: len(data) // 2])
    return folder / "test_batch"


def _imagefolder_with_corrupt_file(root: Path) -> Path:
    from PIL import Image

    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (20, 20), (10, 200, 30)).save(root / name / "good.png")
    bad = root / "dog" / "zz_broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return bad


def _bad_cases(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (CLI args, text the error line must contain)."""
    bad_image = _imagefolder_with_corrupt_file(tmp_path / "folder")
    bad_pickle = _cifar_with_truncated_test_batch(tmp_path / "cifar")
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    return {
        "unknown_model": (["--model", "nosuch:model", "--dataset", "digits"], "nosuch:model"),
        "unknown_dataset": (["--dataset", "imagenet-9000"], "imagenet-9000"),
        "missing_root": (["--dataset", "cifar10", "--data-root", str(tmp_path / "missing")], "does not exist"),
        "corrupt_image": (["--dataset", "imagefolder", "--data-root", str(tmp_path / "folder")], str(bad_image)),
        "truncated_pickle": (["--dataset", "cifar10", "--data-root", str(tmp_path / "cifar")], str(bad_pickle)),
        "too_many_samples": (["--dataset", "digits", "--n-samples", "100000"], "100000"),
        "unwritable_output": (["--dataset", "digits", "--n-samples", "5"], "a_file"),
    }


@pytest.mark.parametrize(
    "case",
    ["unknown_model", "unknown_dataset", "missing_root", "corrupt_image", "truncated_pickle", "too_many_samples",
     "unwritable_output"],
)
def test_bad_input_gives_one_line_and_no_report(runner, tmp_path, case):
    args, must_contain = _bad_cases(tmp_path)[case]
    out = tmp_path / "a_file" / "r.json" if case == "unwritable_output" else tmp_path / "r.json"
    result = runner.invoke(app, ["eval", "--model", "tiny", "--quiet", *args, "--output", str(out)])
    assert result.exit_code != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ") and must_contain in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not list(out.parent.glob("*.tmp")) if out.parent.is_dir() else True
