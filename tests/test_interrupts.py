"""Ctrl-C (SIGINT) and SIGTERM during a long command: one stderr line, exit 130 / 143, nothing half-written, and
the rerun resumes to per-example outcomes identical to an uninterrupted run.

Each command runs as a real subprocess (a fresh interpreter, one OpenMP thread); the signal is sent once the
command's resume state is on disk (polled, never a timer), and the child holds right after that first write
(:data:`HOLD_CHILD`), so the interruption always lands mid-run, however loaded the machine. The
reruns and the uninterrupted references run in this process (``CliRunner``): an interpreter start costs more
than these tiny runs. ``proxy build`` has no CLI knob to shrink its recipe (a real digits build takes about a
minute per epoch here), so its child patches in test_proxy's shrunken recipe before calling the same CLI app.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from mmrobust.cli.interrupts import INTERRUPTED
from mmrobust.cli.main import app
from mmrobust.cli.train_cmd import INTERRUPTED_NEEDS_RESUME

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

SRC = str(Path(__file__).resolve().parents[1] / "src")
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
#: a small robust evaluation with several batches (8 of 4 images) whose attack dominates its time
EVAL_ARGS = ["-m", "tiny", "-d", "digits", "-n", "32", "-b", "4", "-a", "pgd", "--steps", "200", "--no-sanity", "-q"]


#: ``mmrobust ARGS`` whose first write of its resume state (``OWNER.ATTR``) then holds for up to two minutes: the
#: test signals while the child provably sits mid-run with its state on disk. Without the hold, a tiny run's
#: remaining work after its first state write can be a few seconds, which a starved poller on a loaded
#: machine may miss (the run then ends before the signal and the test fails for no fault of the code).
HOLD_CHILD = """
import importlib, sys, time
module, _, path = {owner!r}.partition(":")
owner = importlib.import_module(module)
for part in filter(None, path.split(".")):
    owner = getattr(owner, part)
original = getattr(owner, {attr!r})

def held(*args, **kwargs):
    out = original(*args, **kwargs)
    time.sleep(120)
    return out

setattr(owner, {attr!r}, held)
from mmrobust.cli.main import app
app(sys.argv[1:])
"""
EVAL_STATE = HOLD_CHILD.format(owner="mmrobust.eval.resume:StateFile", attr="save")
TRAIN_CHECKPOINT = HOLD_CHILD.format(owner="mmrobust.training.trainer_resume", attr="save_training_checkpoint")


def interrupt_when(args: list[str], ready: Callable[[], bool], sig: signal.Signals,
                   code: str | None = None) -> tuple[int, str]:
    """Start ``mmrobust ARGS`` (or ``python -c CODE ARGS``), send ``sig`` once ``ready()`` holds, return
    (exit status, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)}
    start = ["-m", "mmrobust.cli.main"] if code is None else ["-c", code]
    child = subprocess.Popen([sys.executable, *start, *args], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ready() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if child.poll() is not None or not ready():
            child.kill()
            pytest.fail(f"the command ended or stalled before its state file appeared: {child.communicate()[1][-2000:]}")
        child.send_signal(sig)
        _, err = child.communicate(timeout=60)
        return child.returncode, err
    finally:
        if child.poll() is None:  # never leave a child running
            child.kill()
            child.wait(30)


def invoke(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def assert_interrupted(status: int, err: str, sig: signal.Signals, line: str = INTERRUPTED) -> None:
    assert status == EXIT[sig], f"exit status {status} (0: the run finished before the signal), stderr {err!r}"
    assert err.splitlines() == [line], err


def no_temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.tmp")]


def report(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def eval_reference(tmp_path_factory) -> dict:
    """The uninterrupted evaluation of EVAL_ARGS (eval and the benchmark's cell measure the same images)."""
    out = tmp_path_factory.mktemp("reference") / "r.json"
    invoke(["eval", *EVAL_ARGS, "-o", str(out)])
    return report(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_eval_interrupted_then_resumed(tmp_path: Path, sig: signal.Signals, eval_reference: dict) -> None:
    out = tmp_path / "r.json"
    state = out.with_name(out.name + ".state.json")
    status, err = interrupt_when(["eval", *EVAL_ARGS, "-o", str(out)], state.is_file, sig, code=EVAL_STATE)
    assert_interrupted(status, err, sig)
    assert not out.exists() and state.is_file() and not no_temp_files(tmp_path)
    assert json.loads(state.read_text())["next_position"] < 32  # stopped mid-run, resumable

    invoke(["eval", *EVAL_ARGS, "-o", str(out)])
    resumed = report(out)
    assert resumed["resume"]["resumed_from_position"] > 0
    assert resumed["per_example"] == eval_reference["per_example"]
    assert not state.exists()


def test_train_interrupted_then_resumed(tmp_path: Path) -> None:
    args = ["train", "-m", "tiny", "--method", "mmcoa", "-d", "digits", "--n-train", "12", "-b", "4", "--epochs",
            "1", "--steps", "20", "--checkpoint-every", "1", "--n-eval", "8", "--lr", "1e-3", "--train", "full", "-q"]
    run = tmp_path / "run"
    latest = run / "checkpoints" / "latest.json"
    status, err = interrupt_when([*args, "-o", str(run)], latest.is_file, signal.SIGINT, code=TRAIN_CHECKPOINT)
    assert_interrupted(status, err, signal.SIGINT, INTERRUPTED_NEEDS_RESUME)
    assert not (run / "report.json").exists() and not (run / "final").exists() and not no_temp_files(run)

    invoke([*args, "-o", str(run), "--resume"])
    invoke([*args, "-o", str(tmp_path / "reference")])
    resumed, reference = report(run / "report.json"), report(tmp_path / "reference" / "report.json")
    assert resumed["resumed"] is True
    assert resumed["final_eval"]["clean_accuracy"] == reference["final_eval"]["clean_accuracy"]
    a, b = load_file(str(run / "final" / "model.safetensors")), load_file(str(tmp_path / "reference" / "final" /
                                                                             "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_benchmark_interrupted_then_resumed(tmp_path: Path, eval_reference: dict) -> None:
    args = ["benchmark", *EVAL_ARGS, "--datasets", "digits"]
    out = tmp_path / "bench"
    state = out / "cells" / "tiny__digits.json.state.json"
    status, err = interrupt_when([*args, "-o", str(out)], state.is_file, signal.SIGTERM, code=EVAL_STATE)
    assert_interrupted(status, err, signal.SIGTERM)
    assert not (out / "cells" / "tiny__digits.json").exists(), sorted(map(str, out.rglob("*")))
    assert not (out / "table.json").exists() and not no_temp_files(out), sorted(map(str, out.rglob("*")))

    invoke([*args, "-o", str(out)])
    cell = report(out / "cells" / "tiny__digits.json")
    assert cell["resume"]["resumed_from_position"] > 0
    assert cell["per_example"] == eval_reference["per_example"]


def test_study_interrupted_then_resumed(tmp_path: Path) -> None:
    args = ["study", "eps", "-m", "tiny", "--eps", "4", "--text-attack", "none", "--multimodal-attack", "none",
            "--eval-steps", "200", "-n", "32", "-b", "4", "--no-sanity", "-q"]
    out = tmp_path / "study"

    def state_written() -> bool:
        return any((out / "reports").glob("*.state.json")) if (out / "reports").is_dir() else False

    status, err = interrupt_when([*args, "-o", str(out)], state_written, signal.SIGINT, code=EVAL_STATE)
    assert_interrupted(status, err, signal.SIGINT)
    assert not (out / "table.json").exists(), sorted(map(str, out.rglob("*")))
    assert not any((out / "cells").glob("*.json")), sorted(map(str, out.rglob("*")))
    assert not no_temp_files(out)

    invoke([*args, "-o", str(out)])
    invoke([*args, "-o", str(tmp_path / "reference")])
    rows, reference = report(out / "table.json")["rows"], report(tmp_path / "reference" / "table.json")["rows"]
    assert [r["correct"] for r in rows] == [r["correct"] for r in reference]


def test_every_long_command_handles_interrupts() -> None:
    """eval, train, benchmark, every study and proxy build run inside the one handler (user_errors_exit)."""
    from mmrobust.cli import benchmark_cmd, eval_cmd, proxy_cmd, study_cmd, train_cmd

    commands = [eval_cmd.eval_command, train_cmd.train_command, benchmark_cmd.benchmark_command,
                proxy_cmd.build_command, *(c.callback for c in study_cmd.study_app.registered_commands)]
    for command in commands:
        code = command.__code__
        assert code.co_name == "wrapper" and "sigterm_raises" in code.co_names, command


def test_sigterm_handler_is_restored_after_a_command() -> None:
    """No global state left behind: the previous SIGTERM handler is back after the command, even on error."""
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(app, ["eval", "-m", "tiny", "-d", "digits", "-b", "0", "-o", "x.json"])
    assert result.exit_code == 2
    assert signal.getsignal(signal.SIGTERM) is before


#: ``proxy build digits`` with test_proxy's shrunken recipe (the CLI has no knob to shrink it), 4 epochs so the
#: per-epoch state appears while epochs remain
PROXY_CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_proxy import SHRUNK
import mmrobust.proxy.build as build
from mmrobust.proxy.recipes import get_recipe
build.get_recipe = lambda name, overrides=None: get_recipe(name, {{**SHRUNK, "epochs": 4, **(overrides or {{}})}})
from mmrobust.cli.main import app
app(sys.argv[1:])
"""


def shrunk_proxy(monkeypatch) -> None:
    """The child's recipe in this process too (the rerun and the reference build)."""
    import mmrobust.proxy.build as build
    from mmrobust.proxy.recipes import get_recipe
    from test_proxy import SHRUNK

    monkeypatch.setattr(build, "get_recipe",
                        lambda name, overrides=None: get_recipe(name, {**SHRUNK, "epochs": 4, **(overrides or {})}))


def test_proxy_build_interrupted_then_resumed(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache"
    code = PROXY_CHILD.format(tests=str(Path(__file__).parent))

    def state_written() -> bool:
        return any(cache.glob("digits/*/state/train_state.pt"))

    status, err = interrupt_when(["proxy", "build", "digits", "--cache-dir", str(cache), "-q"], state_written,
                                 signal.SIGTERM, code=code)
    assert status == 143, err
    # the build logs each finished epoch (``mmrobust: digits epoch 1/4: ...``, with -q too); the interruption adds one line
    assert [line for line in err.splitlines() if not line.startswith("mmrobust: ")] == [INTERRUPTED], err
    assert err.splitlines()[-1] == INTERRUPTED
    assert not any(cache.glob("digits/*/manifest.json")) and not no_temp_files(cache)

    shrunk_proxy(monkeypatch)
    invoke(["proxy", "build", "digits", "--cache-dir", str(cache), "-q"])
    invoke(["proxy", "build", "digits", "--cache-dir", str(tmp_path / "reference"), "-q"])
    resumed = report(next(cache.glob("digits/*/manifest.json")))
    reference = report(next((tmp_path / "reference").glob("digits/*/manifest.json")))
    assert resumed["resumed_from_epoch"] >= 1
    assert resumed["weights_sha256"] == reference["weights_sha256"]
