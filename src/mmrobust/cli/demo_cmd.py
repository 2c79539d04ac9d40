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
    epochs: int = typer.Option(2, "--epochs", help="Fine-tuning epochs per method (equal budgets)."),
    n_train: int = typer.Option(768, "--n-train", help="Training images per method (a fixed random subset of digits/train)."),
    n_eval: int = typer.Option(200, "--n-eval", help="Held-out test images scored per model."),
    lr: float = typer.Option(1e-4, "--lr", help="AdamW learning rate for every method."),
    seed: int = typer.Option(0, "--seed", help="Seed for data order, attacks and sub-sampling."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: best available)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate, fine-tune (clean, TeCoA, MMCoA) and re-evaluate; print one table, write JSON/CSV/PNG."""
    from ..demo import DemoConfig, run_demo

    config = DemoConfig(
        output_dir=output_dir, model=model, methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        eval_eps=eps, train_eps=train_eps, epochs=epochs, n_train=n_train, n_eval=n_eval, lr=lr, seed=seed, device=device,
        progress=not quiet,
    )
    run_demo(config, echo=typer.echo)
