"""Sharded evaluation (gloo, 2 and 3 CPU processes) gives the single process's per-example outcomes and numbers."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
from pathlib import Path

import pytest
import torch

from mmrobust.attacks.registry import parse_attack_list, values_read_by
from mmrobust.eval.run import ATTACK_FIELDS, EvalConfig, run_evaluation
from robust_test_models import prototype_digits_model
import gloo_processes
from gloo_processes import join_rank, report_to

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


def retrieval_config(output: Path, **kwargs) -> EvalConfig:
    base = dict(model="tiny", dataset="flickr30k", task="retrieval", batch_size=2, progress=False, eps=8 / 255,
                steps=2, text_candidates=3, attacks="pgd,typo,co-attack", output=str(output), seed=4)
    return EvalConfig(**(base | kwargs))


def kill_self_after(k: int):
    """``after_batch`` hook: SIGKILL this process once ``k`` batches are saved (as ``kill -9`` would)."""
    def hook(done: int) -> None:
        if done >= k:
            os.kill(os.getpid(), signal.SIGKILL)
    return hook


def _rank(rank: int, port: int, results: "multiprocessing.Queue", world: int, output: str, kwargs: dict,
          kill: tuple[int, int] | None = None) -> None:
    def work() -> dict:
        torch.set_num_threads(1)
        join_rank(rank, world, port)
        hook = kill_self_after(kill[1]) if kill is not None and kill[0] == rank else None
        if kwargs.get("task") == "retrieval":
            return run_evaluation(retrieval_config(Path(output), **kwargs), after_batch=hook)
        return run_evaluation(make_config(Path(output), **kwargs), model=prototype_digits_model(), after_batch=hook)

    report_to(results, rank, work)


def run_sharded(world: int, output: Path, **kwargs) -> dict[int, dict]:
    return gloo_processes.run(world, _rank, world, str(output), kwargs)


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


@pytest.mark.parametrize("world,sanity", [(2, False), (3, True)])
def test_sharded_robust_eval_equals_one_process(tmp_path: Path, world: int, sanity: bool) -> None:
    single = run_evaluation(make_config(tmp_path / "single.json", sanity=sanity), model=prototype_digits_model())
    assert single["metrics"]["attacks"]["typo"]["n_attacked"] > 0  # the text attack really ran on images
    out = tmp_path / f"w{world}.json"
    reports = run_sharded(world, out, sanity=sanity)
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


def test_resume_per_shard_after_kill_9_of_one_rank(tmp_path: Path) -> None:
    """Rank 1 is SIGKILLed after its first batch; rank 0 fails at the gather; a relaunch resumes both shards."""
    out = tmp_path / "killed.json"
    procs, _ = gloo_processes.start(2, _rank, 2, str(out), {}, (1, 1))
    for proc in procs:
        proc.join(120)
        if proc.is_alive():  # rank 0 waiting on a dead peer: torchrun's agent would stop it the same way
            proc.kill()
            proc.join()
    assert procs[1].exitcode == -signal.SIGKILL and not out.exists()
    states = {r: json.loads((tmp_path / f"killed.json.rank-{r}-of-2.state.json").read_text()) for r in range(2)}
    assert states[1]["next_position"] == 4  # one batch of rank 1 saved before the kill
    assert states[0]["next_position"] >= 4

    reports = run_sharded(2, out)
    single = run_evaluation(make_config(tmp_path / "single.json"), model=prototype_digits_model())
    for report in reports.values():
        assert report["resume"]["resumed_from_position"] is not None
        assert comparable(report) == comparable(single)


def test_sharded_retrieval_gathers_embeddings_before_ranking(tmp_path: Path, tin_captions: Path) -> None:
    single = run_evaluation(retrieval_config(tmp_path / "single.json", data_root=str(tin_captions)))
    reports = run_sharded(2, tmp_path / "w2.json", task="retrieval", data_root=str(tin_captions))
    assert single["per_query"]["co-attack"] != single["per_query"]["clean"]  # the attacks changed ranks
    for report in reports.values():
        assert report["per_query"] == single["per_query"]
        for name, block in single["metrics"]["attacks"].items():
            got = report["metrics"]["attacks"][name]
            assert {k: got[k] for k in ("recall", "attack_success_rate", "counts", "ball_check")} == \
                   {k: block[k] for k in ("recall", "attack_success_rate", "counts", "ball_check")}, name
    assert json.loads((tmp_path / "w2.json").read_text())["distributed"]["batches_per_rank"] == [2, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["single.json", "w2.json"]


def readme_torchrun_commands() -> list[list[str]]:
    """The ``torchrun ... -m mmrobust.cli.main ARGS`` lines of the README (bash blocks, continuations joined)."""
    import re
    import shlex

    readme = Path(__file__).resolve().parents[1] / "README.md"
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme.read_text(encoding="utf-8"), flags=re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            words = shlex.split(line, comments=True)
            if "torchrun" in words and "mmrobust.cli.main" in words:
                commands.append(words[words.index("mmrobust.cli.main") + 1 :])
    return commands


def test_readme_torchrun_commands_parse() -> None:
    """Every torchrun/SLURM line of the README names real options (the plain lines are tests/test_readme.py's)."""
    import typer

    from mmrobust.cli.main import app

    commands = readme_torchrun_commands()
    assert {c[0] for c in commands} >= {"eval", "benchmark"} and any("--share-output" in c for c in commands)
    for args in commands:
        command = typer.main.get_command(app)
        rest = list(args)
        while hasattr(command, "commands") and rest and rest[0] in command.commands:
            command = command.commands[rest.pop(0)]
        command.make_context(command.name, rest)  # a usage error on an unknown option


@pytest.mark.slow
def test_readme_torchrun_eval_runs_as_written_on_cpu(tmp_path: Path) -> None:
    """The README's torchrun eval line, run as written (2 gloo processes), equals one process."""
    import subprocess
    import sys

    args = next(c for c in readme_torchrun_commands() if c[0] == "eval")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m",
                           "mmrobust.cli.main", *args, "-q"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / args[args.index("-o") + 1]
    sharded = json.loads(out.read_text())
    single = subprocess.run([sys.executable, "-m", "mmrobust.cli.main", *args[:-1], "single.json", "-q"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    assert sharded["per_example"] == json.loads((tmp_path / "single.json").read_text())["per_example"]
