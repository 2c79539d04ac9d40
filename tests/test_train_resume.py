"""A run killed with SIGKILL mid-epoch resumes from its last checkpoint and ends with identical weights."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmrobust.training import StepInfo, TrainConfig, train

KILL_AT = (1, 1)  # (epoch, step) both 0-based: the second step of the second epoch


def config(output_dir: Path, resume: bool = False) -> TrainConfig:
    return TrainConfig(
        model="tiny", method="mmcoa", dataset="digits", output_dir=str(output_dir), epochs=2, batch_size=8,
        n_train=24, n_eval=8, lr=1e-3, eps=8 / 255, alpha=2 / 255, steps=2, train="full",
        checkpoint_every_steps=2, progress=False, resume=resume, seed=3,
    )


def _run_until_killed(output_dir: str, marker: str) -> None:
    """Child process: train, and at KILL_AT announce it and wait to be killed."""

    def hook(info: StepInfo) -> None:
        if (info.epoch, info.step_in_epoch) == KILL_AT:
            Path(marker).write_text(str(info.global_step))
            time.sleep(120)

    train(config(Path(output_dir)), step_hook=hook)


def final_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(output_dir / "final" / "model.safetensors"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    killed_dir, marker = tmp_path / "killed", tmp_path / "reached"
    context = multiprocessing.get_context("fork")  # inherits the imported modules: no second torch start-up
    child = context.Process(target=_run_until_killed, args=(str(killed_dir), str(marker)))
    child.start()
    deadline = time.monotonic() + 120
    while not marker.exists() and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the training child never reached the kill point"
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
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
