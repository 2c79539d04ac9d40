"""Data-parallel training on 2 CPU processes (gloo) matches a single process on the same global batches."""

from __future__ import annotations

import multiprocessing
import os
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmrobust.training import TrainConfig, train

torch_distributed = pytest.importorskip("torch.distributed")
if not torch_distributed.is_available() or not torch_distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)


def config(output_dir: Path) -> TrainConfig:
    # TeCoA without random start: every example's attack is independent of how the batch is split.
    return TrainConfig(
        model="tiny", method="tecoa", dataset="digits", output_dir=str(output_dir), epochs=2, batch_size=8,
        n_train=20, n_eval=10, lr=1e-3, eps=8 / 255, alpha=2 / 255, steps=2, train="full",
        attack_random_start=False, progress=False, seed=5, eval_batch_size=4,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rank(rank: int, world_size: int, port: int, output_dir: str, errors: "multiprocessing.Queue") -> None:
    try:
        torch.set_num_threads(1)
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world_size),
                           "RANK": str(rank), "LOCAL_RANK": str(rank)})
        train(config(Path(output_dir)))
    except BaseException as exc:  # report to the parent instead of dying silently
        errors.put(f"rank {rank}: {type(exc).__name__}: {exc}")
        raise


def test_two_process_gloo_matches_single_process(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    port = free_port()
    procs = [context.Process(target=_rank, args=(r, 2, port, str(tmp_path / "ddp"), errors)) for r in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(150)
    for proc in procs:
        if proc.is_alive():
            proc.kill()
    assert errors.empty(), errors.get()
    assert all(proc.exitcode == 0 for proc in procs), [proc.exitcode for proc in procs]

    single = train(config(tmp_path / "single"))
    ddp_report = __import__("json").loads((tmp_path / "ddp" / "report.json").read_text())
    assert ddp_report["distributed"]["world_size"] == 2
    assert ddp_report["global_steps"] == single["global_steps"] == 6
    a = load_file(str(tmp_path / "ddp" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "final" / "model.safetensors"))
    moved = 0.0
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=2e-5, rtol=1e-4, msg=f"{name} differs")
    initial = load_file(str(tmp_path / "single" / "final" / "model.safetensors"))
    from mmrobust.models.tiny import build_tiny

    start = build_tiny(0).state_dict()
    moved = max(float((initial[k] - start[k]).abs().max()) for k in initial if k in start)
    assert moved > 1e-4  # training did change the weights, so the comparison means something
    for key in ("train_loss",):
        assert [h[key] for h in ddp_report["history"]] == pytest.approx([h[key] for h in single["history"]], rel=1e-4)
    assert [h["eval"]["clean_accuracy"] for h in ddp_report["history"]] == [
        h["eval"]["clean_accuracy"] for h in single["history"]
    ]
