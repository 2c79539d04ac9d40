"""Sharded evaluation (gloo, 2 and 3 CPU processes) gives the single process's per-example outcomes and numbers."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest
import torch

from mmrobust.attacks.registry import parse_attack_list, values_read_by
from mmrobust.eval.run import ATTACK_FIELDS, EvalConfig, run_evaluation
from robust_test_models import prototype_digits_model

torch_distributed = pytest.importorskip("torch.distributed")
if not torch_distributed.is_available() or not torch_distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

#: cascade of an untargeted and a targeted white-box attack, the black-box Square and a text attack
ATTACKS = "apgd-ce,apgd-t,square,typo"


def make_config(output: Path, **kwargs) -> EvalConfig:
    base = dict(model="test:prototype", dataset="digits", n_samples=22, batch_size=4, attacks=ATTACKS,
                eps=12 / 255, steps=3, square_queries=12, target_classes=2, seed=7, progress=False,
                output=str(output), sanity=False)
    config = base | kwargs
    attack_values = {k: config.pop(k) for k in list(config) if k in ATTACK_FIELDS}
    return EvalConfig(**config, **values_read_by(parse_attack_list(config["attacks"]), attack_values))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rank(rank: int, world: int, port: int, output: str, kwargs: dict, results: "multiprocessing.Queue") -> None:
    try:
        torch.set_num_threads(1)
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                           "RANK": str(rank), "LOCAL_RANK": str(rank)})
        report = run_evaluation(make_config(Path(output), **kwargs), model=prototype_digits_model())
        results.put((rank, "ok", report))
    except BaseException as exc:  # report to the parent instead of dying silently
        results.put((rank, "error", f"{type(exc).__name__}: {exc}"))
        raise


def run_sharded(world: int, output: Path, **kwargs) -> dict[int, dict]:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    port = free_port()
    procs = [context.Process(target=_rank, args=(r, world, port, str(output), kwargs, results)) for r in range(world)]
    for proc in procs:
        proc.start()
    got = {}
    for _ in procs:
        rank, status, value = results.get(timeout=120)
        assert status == "ok", f"rank {rank}: {value}"
        got[rank] = value
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    return got


def comparable(report: dict) -> dict:
    """Everything a result depends on: per-example outcomes, metrics without timings, attack descriptions."""
    metrics = json.loads(json.dumps(report["metrics"]))
    for block in metrics["attacks"].values():
        block.pop("seconds")
    attacks = json.loads(json.dumps(report["attacks"]))
    for block in attacks:
        block.get("cost", {}).pop("seconds", None)  # wall time of the text search
    return {"per_example": report["per_example"], "metrics": metrics, "attacks": attacks,
            "accuracy": report["accuracy"], "robust_accuracy": report["robust_accuracy"],
            "sanity": report["sanity"].get("checks")}


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_robust_eval_equals_one_process(tmp_path: Path, world: int) -> None:
    single = run_evaluation(make_config(tmp_path / "single.json"), model=prototype_digits_model())
    assert single["metrics"]["attacks"]["typo"]["n_attacked"] > 0  # the text attack really ran on images
    out = tmp_path / f"w{world}.json"
    reports = run_sharded(world, out)
    written = json.loads(out.read_text())
    assert written["distributed"]["world_size"] == world
    assert sum(written["distributed"]["batches_per_rank"]) == 6
    for rank, report in reports.items():
        assert comparable(report) == comparable(single), f"rank {rank} of {world}"
    assert comparable(written) == comparable(json.loads((tmp_path / "single.json").read_text()))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(out.name)) == [out.name]  # states gone


def test_sharded_clean_eval_equals_one_process(tmp_path: Path) -> None:
    single = run_evaluation(make_config(tmp_path / "single.json", attacks=None), model=prototype_digits_model())
    reports = run_sharded(3, tmp_path / "w3.json", attacks=None)
    for report in reports.values():
        assert report["per_example"] == single["per_example"]
        assert report["metrics"] == single["metrics"]
