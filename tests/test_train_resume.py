"""A run killed with SIGKILL mid-epoch resumes from its last checkpoint and ends with identical weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmrobust.training import TrainConfig, train

KILL_AT = (1, 1)  # (epoch, step) both 0-based: the second step of the second epoch


def config(output_dir: Path, resume: bool = False) -> TrainConfig:
    return TrainConfig(
        model="tiny", method="mmcoa", dataset="digits", output_dir=str(output_dir), epochs=2, batch_size=8,
        n_train=24, n_eval=8, lr=1e-3, eps=8 / 255, alpha=2 / 255, steps=2, train="full",
        checkpoint_every_steps=2, progress=False, resume=resume, seed=3,
    )


CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_train_resume import KILL_AT, config
from mmrobust.training import train

def hook(info):
    if (info.epoch, info.step_in_epoch) == KILL_AT:
        Path({marker!r}).write_text(str(info.global_step))
        time.sleep(120)

train(config(Path({output!r})), step_hook=hook)
"""


def start_child(output_dir: Path, marker: Path) -> subprocess.Popen:
    """A fresh interpreter, not a fork: a child forked after another test has run torch on two OpenMP threads
    can hang in its first parallel region (libgomp is not fork-safe), which CI saw as a run that never ended."""
    code = CHILD.format(tests=str(Path(__file__).parent), marker=str(marker), output=str(output_dir))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def final_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(output_dir / "final" / "model.safetensors"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    killed_dir, marker = tmp_path / "killed", tmp_path / "reached"
    child = start_child(killed_dir, marker)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not marker.exists():
            child.kill()
            pytest.fail(f"the training child never reached the kill point: {child.communicate(timeout=30)[1][-2000:]}")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:  # never leave a child that would keep the test run alive
            child.kill()
            child.wait(30)
    assert not (killed_dir / "final").exists()
    latest = (killed_dir / "checkpoints" / "latest.json").read_text()
    assert '"epoch": 1' in latest and '"step_in_epoch": 1' in latest  # a mid-epoch checkpoint is current

    resumed = train(config(killed_dir, resume=True))
    assert resumed["resumed"] is True
    reference = train(config(tmp_path / "uninterrupted"))
    assert resumed["global_steps"] == reference["global_steps"] == 6
    a, b = final_weights(killed_dir), final_weights(tmp_path / "uninterrupted")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resume by {(a[name] - b[name]).abs().max()}"
    assert [h["train_loss"] for h in resumed["history"]] == pytest.approx(
        [h["train_loss"] for h in reference["history"]], rel=1e-6
    )
