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
) -> None:
    """Evaluate zero-shot classification and write one JSON report."""
    config = EvalConfig(
        model=model, dataset=dataset, data_root=data_root, split=split, n_samples=n_samples,
        batch_size=batch_size, device=device, seed=seed, templates=templates, output=output,
        logit_scale=logit_scale, progress=not quiet,
    )
    report = run_evaluation(config)
    clean = report["metrics"]["clean"]
    typer.echo(
        f"{report['model']['spec']} on {report['dataset']['name']}/{report['dataset']['split']} "
        f"(n={report['n_samples']}, seed={report['seed']}): clean accuracy "
        f"{100 * clean['accuracy']:.2f}% ± {100 * clean['std_error']:.2f}"
    )
    typer.echo(f"report: {output}")
