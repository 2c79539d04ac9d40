"""``mmrobust demo``: attack, defend and re-attack the embedded proxy:digits model, offline, in minutes."""

from __future__ import annotations

from typing import Optional

import typer

from .errors import user_errors_exit


@user_errors_exit
def demo_command(
    output_dir: str = typer.Option("mmrobust-demo", "--output-dir", "-o", help="Folder for demo.json, demo.csv, demo.png and the runs."),
    model: str = typer.Option("proxy:digits", "--model", "-m", help="Model to attack and fine-tune."),
    methods: str = typer.Option("clean,tecoa,mmcoa", "--methods", help="Fine-tuning methods to compare (comma-separated)."),
    eps: float = typer.Option(16.0, "--eps", help="Evaluation PGD radius k (k/255); digits are upsampled 8x8, so 1/255 does not bite."),
    train_eps: float = typer.Option(16.0, "--train-eps", help="Training PGD radius k (k/255)."),
    epochs: int = typer.Option(4, "--epochs", help="Fine-tuning epochs per method (equal budgets)."),
    n_train: Optional[int] = typer.Option(
        None, "--n-train", help="Training images per method (a fixed random subset of digits/train; default all)."
    ),
    n_eval: int = typer.Option(450, "--n-eval", help="Held-out test images scored per model (digits/test has 450)."),
    lr: float = typer.Option(1e-4, "--lr", help="AdamW learning rate for every method."),
    text_goal: str = typer.Option(
        "zero-shot-margin", "--text-goal",
        help="Goal of the evaluation text attack: zero-shot-margin (task-aware, stronger) or embedding-kl (the study's).",
    ),
    sanity: bool = typer.Option(True, "--sanity/--no-sanity", help="Robustness sanity checks on every evaluation."),
    seed: int = typer.Option(0, "--seed", help="Seed for data order, attacks and sub-sampling."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: best available)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate, fine-tune (clean, TeCoA, MMCoA) and re-evaluate; print one table, write JSON/CSV/PNG."""
    from ..demo import DemoConfig, run_demo

    config = DemoConfig(
        output_dir=output_dir, model=model, methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        eval_eps=eps, train_eps=train_eps, epochs=epochs, n_train=n_train, n_eval=n_eval, lr=lr, seed=seed, device=device,
        eval_text_goal=text_goal, sanity=sanity,
        progress=not quiet,
    )
    run_demo(config, echo=typer.echo)
