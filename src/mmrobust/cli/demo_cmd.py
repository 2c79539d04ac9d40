"""``mmrobust demo``: attack, defend and re-attack the embedded proxy:digits model, offline, in minutes."""

from __future__ import annotations

from typing import Any, Optional

import typer

from .errors import user_errors_exit
from .options import PROMPT, TEXT, pixels, with_options


@user_errors_exit
@with_options(TEXT, PROMPT)
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
    sanity: bool = typer.Option(True, "--sanity/--no-sanity", help="Robustness sanity checks on every evaluation."),
    seed: int = typer.Option(0, "--seed", help="Seed for data order, attacks and sub-sampling."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: best available)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    **shared: Any,
) -> None:
    """Evaluate, fine-tune (clean, TeCoA, MMCoA) and re-evaluate; print one table, write JSON/CSV/PNG.

    Without --text-goal the evaluation text attack uses zero-shot-margin (task-aware, stronger after
    fine-tuning); training keeps the study's embedding-kl."""
    from ..demo import DemoConfig, run_demo

    config = DemoConfig(
        output_dir=output_dir, model=model, methods=tuple(m.strip() for m in methods.split(",") if m.strip()),
        eval_eps=pixels(eps, "linf"), train_eps=pixels(train_eps, "linf", "--train-eps"), epochs=epochs,
        n_train=n_train, n_eval=n_eval, lr=lr, seed=seed, device=device, sanity=sanity, progress=not quiet,
        **{k: v for k, v in shared.items() if v is not None and k != "text_goal"},
        **({"eval_text_goal": shared["text_goal"]} if shared["text_goal"] else {}),
    )
    run_demo(config, echo=typer.echo)
