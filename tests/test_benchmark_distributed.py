"""Benchmark cells across torchrun ranks (gloo) and across independent jobs sharing one folder."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import torch

from mmrobust.benchmark import BenchmarkConfig, run_benchmark
from mmrobust.eval.run import EvalConfig
import gloo_processes
from gloo_processes import join_rank, report_to

torch_distributed = pytest.importorskip("torch.distributed")
if not torch_distributed.is_available() or not torch_distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

MODELS = ["tiny:0", "tiny:1", "tiny:2"]  # three cells on digits: more cells than 2 ranks


def config(out: Path, share: bool = False) -> BenchmarkConfig:
    return BenchmarkConfig(models=list(MODELS), datasets="digits", output_dir=str(out), plot=False, share_output=share,
                           eval=EvalConfig(model="", dataset="", n_samples=16, batch_size=8, progress=False,
                                           attacks="pgd", eps=4 / 255, steps=2, sanity=False, seed=2))


def _job(rank: int, port: int, results: "multiprocessing.Queue", world: int, out: str, share: bool) -> None:
    def work() -> dict:
        torch.set_num_threads(1)
        if world > 1:
            join_rank(rank, world, port)
        return run_benchmark(config(Path(out), share))

    report_to(results, rank, work)


def launch(n: int, world: int, out: Path, share: bool) -> dict[int, dict]:
    return gloo_processes.run(n, _job, world, str(out), share, timeout=150)


def rows(table: dict) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "reused"} for row in table["rows"]]


def test_cells_dealt_across_two_ranks_give_the_single_process_table(tmp_path: Path) -> None:
    single = run_benchmark(config(tmp_path / "single"))
    got = launch(2, 2, tmp_path / "ranks", share=False)
    table = got[0]
    assert table["distributed"] == {"world_size": 2, "unit": "cells"}
    assert rows(table) == rows(single) and table["paired"] == single["paired"]
    assert table["cells_run"] == 3 and got[1]["cells_run_here"] == 1  # rank 1 ran cell 1 of 0, 1, 2


def test_independent_jobs_sharing_a_folder_run_no_cell_twice(tmp_path: Path) -> None:
    single = run_benchmark(config(tmp_path / "single"))
    got = launch(2, 1, tmp_path / "shared", share=True)
    assert sum(t["cells_run"] for t in got.values()) == 3  # every cell ran exactly once over both jobs
    for table in got.values():
        assert table["cells_run"] + table["cells_reused"] == 3
        assert rows(table) == rows(single)
    assert not list((tmp_path / "shared" / "cells").glob(".*.claim"))  # claims released
