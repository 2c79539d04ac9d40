"""``mmrobust eval``: zero-shot evaluation of one model on one dataset, one JSON report per run."""

from __future__ import annotations

from typing import Optional

import typer

from ..eval.run import EvalConfig, run_evaluation
from .errors import user_errors_exit


@user_errors_exit
def eval_command(
    model: str = typer.Option(..., "--model", "-m", help="Model spec: tiny, proxy:NAME, open_clip:ARCH[:TAG], hf:ID, ckpt:DIR."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name (see `mmrobust datasets`)."),
    output: str = typer.Option(..., "--output", "-o", help="Report file (JSON), written atomically."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder holding the dataset files."),
    split: Optional[str] = typer.Option(None, "--split", help="Dataset split (default: the dataset's test split)."),
    n_samples: Optional[int] = typer.Option(None, "--n-samples", "-n", help="Evaluate a fixed random subset of N images."),
    n_classes: Optional[int] = typer.Option(
        None, "--n-classes", help="K-way task on a fixed (seeded) subset of K classes and their images."
    ),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per batch."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: best available)."),
    seed: int = typer.Option(0, "--seed", help="Seed for sub-sampling and any randomness; recorded."),
    templates: Optional[str] = typer.Option(
        None, "--templates", help="Prompt templates: default (dataset's), study, clip, clip-cifar, digits, or a file."
    ),
    logit_scale: Optional[float] = typer.Option(
        None, "--logit-scale", help="Fix the temperature (the study evaluates at 100); default: the model's."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    attack: Optional[str] = typer.Option(
        None, "--attack", "-a",
        help="Comma-separated attacks (see `mmrobust attacks`), e.g. pgd,apgd,square. Every attack attacks every batch.",
    ),
    eps: Optional[float] = typer.Option(
        None, "--eps", help="Budget K: K/255 for --norm linf (e.g. 4 = 4/255); the raw L2 radius for --norm l2."
    ),
    norm: str = typer.Option("linf", "--norm", help="Threat model of image attacks: linf or l2."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Attack iterations (default 10)."),
    alpha: Optional[float] = typer.Option(
        None, "--alpha", help="PGD step size, same units as --eps (default eps/4)."
    ),
    restarts: int = typer.Option(1, "--restarts", help="Random restarts of PGD/APGD/Square (per-example worst kept)."),
    square_queries: Optional[int] = typer.Option(None, "--square-queries", help="Query budget of Square (default 1000)."),
    text_words: int = typer.Option(1, "--text-words", help="Text attacks: words changed per prompt."),
    mlm: Optional[str] = typer.Option(None, "--mlm", help="Text attacks: masked language model spec (BERT-Attack)."),
    text_candidates: int = typer.Option(10, "--text-candidates", help="Text attacks: substitution candidates per word."),
    text_attack: Optional[str] = typer.Option(
        None, "--text-attack", help="Text recipe inside sep/co-attack: bert-attack, embed-sub or typo."
    ),
    text_goal: str = typer.Option(
        "embedding-kl", "--text-goal",
        help="Text attacks' goal: embedding-kl (the study's, label-free), embedding-cos, or zero-shot-margin (task-aware).",
    ),
    text_goal_images: int = typer.Option(
        8, "--text-goal-images", help="zero-shot-margin: clean images per class the attacker may look at."
    ),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Continue an interrupted attack run from <output>.state.json."
    ),
    no_sanity: bool = typer.Option(False, "--no-sanity", help="Skip the robustness sanity checks (report says so)."),
) -> None:
    """Evaluate zero-shot classification (clean, or under attacks) and write one JSON report."""
    config = EvalConfig(
        model=model, dataset=dataset, data_root=data_root, split=split, n_samples=n_samples,
        batch_size=batch_size, device=device, seed=seed, templates=templates, output=output,
        logit_scale=logit_scale, progress=not quiet, attacks=attack, eps=eps, norm=norm, steps=steps,
        alpha=alpha, restarts=restarts, square_queries=square_queries, text_words=text_words, mlm=mlm,
        text_candidates=text_candidates, text_attack=text_attack, text_goal=text_goal,
        text_goal_images=text_goal_images, resume=resume, sanity=not no_sanity, classes=n_classes,
    )
    report = run_evaluation(config)
    clean = report["metrics"]["clean"]
    typer.echo(
        f"{report['model']['spec']} on {report['dataset']['name']}/{report['dataset']['split']} "
        f"(n={report['n_samples']}, seed={report['seed']}): clean accuracy "
        f"{100 * clean['accuracy']:.2f}% ± {100 * clean['std_error']:.2f}"
    )
    for name, block in report["metrics"].get("attacks", {}).items():
        typer.echo(f"  {name:<12} robust accuracy {100 * block['accuracy']:.2f}%  "
                   f"(success rate {100 * (block['attack_success_rate'] or 0):.1f}% of correct, {block['seconds']:.1f}s)")
    if "worst_case" in report["metrics"]:
        typer.echo(f"  worst case   robust accuracy {100 * report['metrics']['worst_case']['accuracy']:.2f}%")
        if report.get("unreliable"):
            typer.echo(f"  UNRELIABLE: failed sanity checks {', '.join(report['sanity']['failed'])}", err=True)
        elif report.get("sanity", {}).get("ran"):
            typer.echo(f"  sanity checks passed: {', '.join(report['sanity']['checks_run'])}")
    typer.echo(f"report: {output}")
