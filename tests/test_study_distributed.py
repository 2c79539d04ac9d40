"""Study cells across independent jobs sharing one folder (``--share-output``) and across torchrun ranks (gloo).

The jobs are real forked processes; independent jobs join no process group (as the tasks of a SLURM job array).
Each computed cell (and each fine-tune) leaves a marker file named after it and the process, so "no cell ran
twice" is counted, not inferred; a short sleep in every computed cell keeps both jobs busy at once.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import gloo_processes
from gloo_processes import join_rank, report_to
from mmrobust.studies import StudyOptions, get_study, run_study

torch_distributed = pytest.importorskip("torch.distributed")
if not torch_distributed.is_available() or not torch_distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

EPS = "1,2,4,8,16"  # five cells: more than two jobs or two ranks
NUMBERS = ("key", "clean", "image", "text", "multimodal", "worst_case", "n", "correct")


def options(out: Path, share: bool, **overrides) -> StudyOptions:
    settings = dict(output_dir=str(out), models=("tiny",), n_eval=8, batch_size=8, eval_steps=1, epochs=1,
                    train_batch_size=8, train_steps=1, n_train=8, progress=False, share_output=share,
                    text_attack="none")
    settings.update(overrides)
    return StudyOptions(**settings)


def numbers(result: dict) -> list[dict]:
    """A table's rows without what differs between runs of the same numbers (reused flag, report folder)."""
    return [{k: row.get(k) for k in NUMBERS} for row in result["rows"]]


def mark(markers: Path, name: str) -> None:
    markers.mkdir(parents=True, exist_ok=True)
    (markers / f"{name}@{os.getpid()}").touch()


def runs(markers: Path) -> list[str]:
    """What was computed, one entry per computation (the process id cut off)."""
    return sorted(p.name.split("@")[0] for p in markers.iterdir()) if markers.exists() else []


def count_work(markers: Path) -> None:
    """In this (forked) process: every computed cell and every fine-tune leaves a marker, then sleeps a little."""
    import mmrobust.studies.eps as eps_module
    import mmrobust.studies.runner as runner
    import mmrobust.training as training

    evaluate, train = eps_module.evaluate, training.train

    def counted_eval(ctx, spec, path, **kwargs):
        mark(markers, f"cell-{path.name.rsplit('-', 1)[0]}")
        time.sleep(0.3)
        return evaluate(ctx, spec, path, **kwargs)

    def counted_train(config, *args, **kwargs):
        mark(markers, f"train-{Path(config.output_dir).name}")
        time.sleep(0.3)
        return train(config, *args, **kwargs)

    eps_module.evaluate = counted_eval
    runner.evaluate = counted_eval  # the fine-tuning studies' evaluations (baseline, trained checkpoints)
    training.train = counted_train


#: another job, as far as the claims can tell: holds a claim file (flock) for a while, maybe puts a finished cell
#: in place, then exits (releasing the claim, as the kernel does when a job dies)
HOLDER = """
import fcntl, shutil, sys, time
handle = open(sys.argv[1], "a+")
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
if len(sys.argv) > 3:
    shutil.copy(sys.argv[3], sys.argv[4])
"""


def hold_claim(claim: Path, seconds: float, finished: tuple[Path, Path] | None = None) -> subprocess.Popen:
    """Start a process holding ``claim``; returns once it holds it."""
    claim.parent.mkdir(parents=True, exist_ok=True)
    extra = [str(p) for p in finished] if finished else []
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(claim), str(seconds), *extra],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _job(rank: int, port: int, results: "multiprocessing.Queue", world: int, study: str, args: dict, out: str,
         share: bool, markers: str) -> None:
    def work() -> dict:
        torch.set_num_threads(1)
        if world > 1:
            join_rank(rank, world, port)
        count_work(Path(markers))
        return run_study(get_study(study), options(Path(out), share), args, echo=lambda line: None)

    report_to(results, rank, work)


def launch(n: int, world: int, study: str, args: dict, out: Path, share: bool, markers: Path) -> dict[int, dict]:
    return gloo_processes.run(n, _job, world, study, args, str(out), share, str(markers), timeout=120)


def single(study: str, args: dict, out: Path) -> dict:
    return run_study(get_study(study), options(out, False), args, echo=lambda line: None)


def test_two_jobs_sharing_a_folder_run_every_eps_cell_once(tmp_path: Path) -> None:
    alone = single("eps", {"eps": EPS}, tmp_path / "single")
    markers = tmp_path / "markers"
    got = launch(2, 1, "eps", {"eps": EPS}, tmp_path / "shared", True, markers)
    done = runs(markers)
    assert len(done) == 5 and len(set(done)) == 5  # every cell computed, none twice
    pids = {p.name.split("@")[1] for p in markers.iterdir()}
    assert len(pids) == 2  # both jobs took cells
    assert sum(r["cells"]["computed"] for r in got.values()) == 5
    for result in got.values():  # each job waited for the other's cells, then tabulated all of them
        assert result["cells"]["total"] == 5 and numbers(result) == numbers(alone)
    assert (tmp_path / "shared" / "plot.png").is_file()
    assert not list((tmp_path / "shared").rglob(".*.claim"))  # every claim released


def test_two_jobs_sharing_a_fine_tuning_study_train_each_checkpoint_once(tmp_path: Path) -> None:
    args = {"shots": "1,2,3", "n_train_sizes": None, "baseline": True}
    markers = tmp_path / "markers"
    got = launch(2, 1, "train-size", args, tmp_path / "shared", True, markers)
    trained = [name for name in runs(markers) if name.startswith("train-")]
    assert len(trained) == 3 and len(set(trained)) == 3  # shots=1, 2, 3: each run trained by one job
    assert sum(r["cells"]["computed"] for r in got.values()) == 4  # and the baseline cell
    first, second = (numbers(r) for r in got.values())
    assert first == second and [row["key"] for row in first] == ["none", "shots=1", "shots=2", "shots=3"]
    runs_dir = tmp_path / "shared" / "runs"
    assert len([p for p in runs_dir.iterdir() if (p / "final").is_dir()]) == 3


def test_two_ranks_deal_the_cells_and_give_the_single_process_table(tmp_path: Path) -> None:
    alone = single("eps", {"eps": EPS}, tmp_path / "single")
    markers = tmp_path / "markers"
    got = launch(2, 2, "eps", {"eps": EPS}, tmp_path / "ranks", False, markers)
    done = runs(markers)
    assert len(done) == 5 and len(set(done)) == 5  # cells dealt: rank 0 took three, rank 1 two
    assert got[0]["distributed"] == {"world_size": 2, "unit": "cells"}
    assert numbers(got[0]) == numbers(alone) and got[0]["table"] and not got[1]["table"]  # rank 0 wrote it
    assert numbers(got[1]) == numbers(alone)  # every rank holds every cell (gathered)


def test_two_ranks_fine_tune_their_own_cells_alone_as_one_process_would(tmp_path: Path) -> None:
    """A fine-tuning cell dealt to a rank trains there alone (no collective with the other rank): its weights,
    hence its row, are the single process's."""
    args = {"shots": "1,2", "n_train_sizes": None, "baseline": True}  # three cells on two ranks
    alone = single("train-size", args, tmp_path / "single")
    got = launch(2, 2, "train-size", args, tmp_path / "ranks", False, tmp_path / "markers")
    assert got[0]["distributed"] == {"world_size": 2, "unit": "cells"}
    assert numbers(got[0]) == numbers(alone)
    assert len(runs(tmp_path / "markers")) == len(set(runs(tmp_path / "markers")))  # nothing done twice


def test_a_cell_held_by_a_job_that_dies_is_run_by_the_job_waiting_for_it(tmp_path: Path) -> None:
    """The held cell is deferred (the others run first), then waited for; its holder exits without it (a job
    killed mid-cell) and the waiting job runs it: every cell once, the table complete."""
    out, markers = tmp_path / "shared", tmp_path / "markers"
    holder = hold_claim(out / "cells" / ".tiny_eps=1.json.claim", 3.0)
    try:
        got = launch(1, 1, "eps", {"eps": EPS}, out, True, markers)
    finally:
        holder.kill()
        holder.wait()
    done = runs(markers)
    assert len(done) == 5 and len(set(done)) == 5 and got[0]["cells"]["computed"] == 5
    first = min(markers.iterdir(), key=lambda p: p.stat().st_mtime_ns).name
    assert not first.startswith("cell-tiny_eps=1@")  # deferred behind the free cells


def test_two_ranks_sharing_a_folder_read_back_together_a_cell_another_job_finished(tmp_path: Path) -> None:
    """Images mode (two cells, two ranks) on a shared folder: rank 0 waits for the cell another job holds while
    rank 1 waits at the barrier, so when that job finishes the cell both read it back (rank 1 alone computing
    it would hang in the sharded evaluation's collectives)."""
    alone = single("eps", {"eps": "1,2"}, tmp_path / "single")
    out, markers = tmp_path / "shared", tmp_path / "markers"
    finished = (tmp_path / "single" / "cells" / "tiny_eps=1.json", out / "cells" / "tiny_eps=1.json")
    holder = hold_claim(out / "cells" / ".tiny_eps=1.json.claim", 3.0, finished)
    try:
        got = launch(2, 2, "eps", {"eps": "1,2"}, out, True, markers)
    finally:
        holder.kill()
        holder.wait()
    assert got[0]["distributed"] == {"world_size": 2, "unit": "images"}
    assert runs(markers) == ["cell-tiny_eps=2"] * 2  # both ranks computed eps 2 together; eps 1 read back
    assert got[0]["cells"] == {"total": 2, "reused": 1, "computed": 1}
    assert numbers(got[0]) == numbers(alone) == numbers(got[1])


def test_the_cli_flag_claims_cells_instead_of_locking_the_folder(tmp_path: Path) -> None:
    """The flag reaches the study: without it the study takes the folder lock (refused while another run holds
    it); with it the study takes no folder lock, only claims, so every job on a shared folder must pass it."""
    from typer.testing import CliRunner

    from mmrobust.cli.main import app
    from mmrobust.utils.files import output_lock

    out = tmp_path / "study"
    command = ["study", "eps", "-m", "tiny", "--eps", "2", "-n", "4", "-b", "4", "--eval-steps", "1",
               "--text-attack", "none", "-q", "-o", str(out)]
    with output_lock(out, "study folder", folder=True):  # a study running there without --share-output
        refused = CliRunner().invoke(app, command)
        joined = CliRunner().invoke(app, command + ["--share-output"])
    assert refused.exit_code != 0 and "another mmrobust run" in refused.output
    assert joined.exit_code == 0, joined.output
    assert (out / "table.json").is_file()
