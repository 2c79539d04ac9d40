"""``mmrobust eval``: zero-shot evaluation of one model on one dataset, one JSON report per run."""

from __future__ import annotations

from typing import Any

import typer

from ..eval.distributed import is_main_process
from ..eval.run import EvalConfig, run_evaluation
from .errors import user_errors_exit
from .options import flags, values_for, with_options


def eval_config(shared: dict[str, Any], **run: Any) -> EvalConfig:
    """The EvalConfig of the evaluation flags' values (``--eps K`` -> a fraction there)."""
    return EvalConfig(**{**values_for(EvalConfig, shared), **run})


@user_errors_exit
@with_options(flags(EvalConfig))
def eval_command(**shared: Any) -> None:
    """Evaluate zero-shot classification or image-text retrieval (clean, or under attacks); one JSON report."""
    config = eval_config(shared)
    output = config.output
    config.validate()
    if config.task == "classification" and is_main_process():
        announce_attacks(config)
    announce = typer.echo if config.progress and is_main_process() else None
    report = run_evaluation(config, announce=announce)
    if not is_main_process():  # under torchrun rank 0 alone prints the summary (every rank holds the same report)
        return
    if report["task"] in ("retrieval", "robust_retrieval"):
        print_retrieval_summary(report, output)
        return
    clean = report["metrics"]["clean"]
    typer.echo(
        f"{report['model']['spec']} on {report['dataset']['name']}/{report['dataset']['split']} "
        f"(n={report['n_samples']}, seed={report['seed']}): clean accuracy "
        f"{100 * clean['accuracy']:.2f}% ± {100 * clean['std_error']:.2f}"
    )
    if "defense" in report:
        typer.echo(defense_line(report["defense"]))
    if "ensemble" in report:
        typer.echo(f"  ensemble {report['ensemble']['mode']}, precision {report['precision']}")
    for name, block in report["metrics"].get("attacks", {}).items():
        typer.echo(f"  {name:<12} robust accuracy {100 * block['accuracy']:.2f}%  "
                   f"(attacked {block['n_attacked']}, broke {block['n_broken']}, {block['seconds']:.1f}s)")
    if "worst_case" in report["metrics"]:
        typer.echo(f"  worst case   robust accuracy {100 * report['metrics']['worst_case']['accuracy']:.2f}%")
        if report.get("unreliable"):
            typer.echo(f"  UNRELIABLE: failed sanity checks {', '.join(report['sanity']['failed'])}", err=True)
        elif report.get("sanity", {}).get("ran"):
            typer.echo(f"  sanity checks passed: {', '.join(report['sanity']['checks_run'])}")
    typer.echo(f"report: {output}")


def defense_line(defense: dict) -> str:
    """The defended model and, plainly, whether its robustness was measured with adaptive gradients."""
    how = (f"adaptive: gradients through the unrolled counterattack ({defense['gradient']})" if defense["adaptive"]
           else "non-adaptive gradients only (straight-through): could hide gradient masking; "
                "--ttc-gradient bpda or unrolled for the adaptive evaluation")
    return (f"  defense {defense['name']} (eps {defense['eps_255']:g}/255, {defense['steps']} steps, "
            f"tau {defense['tau']:g}, beta {defense['beta']:g}): {how}")


def announce_attacks(config: EvalConfig) -> None:
    """Print what will run before it runs: the attacks, the budget actually used, and the preset's note."""
    from ..attacks.image.eval_attacks import threat_model_description
    from ..attacks.presets import get_preset
    from ..attacks.registry import ATTACKS
    from ..attacks.options import default_eps
    from ..options.parse import normalize_norm

    names, values = config.resolve_attacks()
    if not names:
        return
    line = f"attacks: {', '.join(names)}"
    if config.preset:
        line += f" (preset {config.preset})"
    if any(ATTACKS[n].modality != "text" for n in names):
        norm = normalize_norm(values.get("norm") or "linf")
        eps = values.get("eps") or default_eps(norm)
        budget = threat_model_description(norm, eps)
        shown = f"{budget['eps_255']:g}/255 L-inf" if "eps_255" in budget else f"{eps:g} L2"
        line += f"; eps {shown}" + ("" if values.get("eps") is not None else " (default: the study's budget; set --eps)")
    typer.echo(line)
    if config.preset and get_preset(config.preset).note:
        typer.echo(f"note: {get_preset(config.preset).note}")


def print_retrieval_summary(report: dict, output: str) -> None:
    """Recall (the model's score) and attack success rate (the attack's score), each labelled."""
    from ..eval.retrieval_summary import summary_lines

    for line in summary_lines(report):
        typer.echo(line)
    typer.echo(f"report: {output}")
