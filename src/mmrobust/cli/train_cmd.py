"""``mmrobust train``: (adversarial) fine-tuning with MMCoA or a baseline; torchrun-ready.

Single process: ``mmrobust train --model proxy:digits --method mmcoa --dataset digits --output-dir runs/mmcoa``.
Data-parallel: ``torchrun --nproc-per-node 2 -m mmrobust.cli.main train ...`` (gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

from typing import Any, Mapping

import typer

from ..options.run import SeedsOptions
from ..training.config import TrainConfig, eps_label
from .errors import user_errors_exit
from .interrupts import INTERRUPTED
from .options import flags, method_flags, method_values, values_for, with_options

#: an interrupted fine-tune whose rerun needs --resume (a plain rerun refuses a folder holding a checkpoint)
INTERRUPTED_NEEDS_RESUME = "interrupted; rerun the same command with --resume to resume"


def interrupted_line(arguments: Mapping[str, Any]) -> str:
    """The one line of an interrupted ``train``: it names ``--resume`` only when the rerun needs it.

    Why not resume by default: ``train`` refuses a folder that holds a run unless told ``--resume``, so a
    typo in ``-o`` never continues someone else's run. ``--seeds`` resumes each seed by itself, and before
    the first checkpoint the same command simply starts again."""
    from ..training.checkpointing import has_checkpoint

    if arguments.get("resume") or arguments.get("seeds") or not arguments.get("output_dir"):
        return INTERRUPTED
    return INTERRUPTED_NEEDS_RESUME if has_checkpoint(arguments["output_dir"]) else INTERRUPTED


@user_errors_exit(interrupted=interrupted_line)
@with_options(flags(TrainConfig), method_flags(), flags(SeedsOptions))
def train_command(**shared: Any) -> None:
    """Fine-tune a model with a defense and write a loadable checkpoint (OUTPUT_DIR/final) and a report."""
    from ..training import train

    config = TrainConfig(**values_for(TrainConfig, shared, norm="linf"), method_options=method_values(shared))
    seeds = values_for(SeedsOptions, shared).get("seeds")
    output_dir = config.output_dir
    if seeds is not None:
        _train_seeds(config, seeds)
        return
    report = train(config, announce=typer.echo if config.progress else None)
    if report.get("distributed", {}).get("world_size", 1) > 1 and "timings" not in report:
        return  # non-zero ranks stay quiet; rank 0 prints the summary
    trainable = report["trainable"]
    typer.echo(
        f"{report['method']} on {report['data']['train']['name']} ({report['data']['train']['n_used']} images, "
        f"{report['global_steps']} steps, eps {eps_label(config.eps)}): trained {trainable['mode']} = "
        f"{trainable['n_trainable_parameters']:,} of {trainable['n_total_parameters']:,} parameters"
    )
    final = report.get("final_eval") or {}
    if final:
        robust = f", PGD {100 * final['pgd_accuracy']:.2f}%" if "pgd_accuracy" in final else ""
        typer.echo(f"held-out clean accuracy {100 * final['clean_accuracy']:.2f}%{robust} (n={final['n']})")
    typer.echo(f"model: ckpt:{report['final_checkpoint']}")
    typer.echo(f"report: {output_dir}/report.json")


def _train_seeds(config: Any, seeds: tuple[str, ...]) -> None:
    """``--seeds``: one fine-tune per seed, then the seeds' summary (see :mod:`mmrobust.training.seeds`)."""
    import os

    from ..errors import ConfigError
    from ..stats import format_interval
    from ..training.seeds import train_seeds

    try:
        seed_list = [int(s) for s in seeds]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {seeds!r}") from None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--seeds runs the seeds one after another; under torchrun start one run per --seed")
    from functools import partial

    from ..training import train

    summary = train_seeds(config, seed_list, partial(train, announce=typer.echo if config.progress else None))
    for run in summary["runs"]:
        typer.echo(f"seed {run['seed']}: model ckpt:{run['final_checkpoint']}")
    for metric, s in summary["final_eval"].items():
        typer.echo(f"held-out {metric.replace('_', ' ')}: {100 * s['mean']:.1f} ± {100 * s['sd']:.1f} over "
                   f"{s['n_seeds']} seeds (t interval [{100 * s['mean_low']:.1f}, {100 * s['mean_high']:.1f}]); pooled "
                   f"{format_interval(s['pooled_successes'] / s['pooled_n'], s['pooled_low'], s['pooled_high'])} "
                   f"(n={s['pooled_n']})")
    typer.echo(f"summary: {config.output_dir}/seeds.json")
