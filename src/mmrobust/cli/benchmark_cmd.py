"""``mmrobust benchmark``: models x datasets with the eval options, one table, plot and averages."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..benchmark import BenchmarkConfig, run_benchmark
from ..eval.run import EvalConfig
from .errors import user_errors_exit


@user_errors_exit
def benchmark_command(
    model: List[str] = typer.Option(..., "--model", "-m", help="Model spec; repeat for several models."),
    datasets: str = typer.Option(
        ..., "--datasets", "-d",
        help="Comma list of datasets, wds:FOLDER|HUB_ID, @study, @clip-benchmark, or a file with one spec per line.",
    ),
    output: str = typer.Option(..., "--output", "-o", help="Benchmark folder (cells/, table.*, heatmap.png)."),
    iid: Optional[str] = typer.Option(None, "--iid", help="The fine-tuning set's own dataset: a row apart, not averaged."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder holding the dataset files."),
    n_samples: Optional[int] = typer.Option(None, "--n-samples", "-n", help="Images per dataset (fixed seeded subset)."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Images per batch."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: best available)."),
    seed: int = typer.Option(0, "--seed", help="Seed for sub-sampling and attacks; recorded."),
    templates: Optional[str] = typer.Option(None, "--templates", help="Prompt templates (default: each dataset's)."),
    attack: Optional[str] = typer.Option(None, "--attack", "-a", help="Comma-separated attacks (see `mmrobust attacks`)."),
    eps: Optional[float] = typer.Option(None, "--eps", help="Budget K: K/255 for linf."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Attack iterations (default 10)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    no_sanity: bool = typer.Option(False, "--no-sanity", help="Skip the robustness sanity checks (verdict: unchecked)."),
) -> None:
    """Evaluate every model on every dataset (resumable cell by cell) and write one table and heat map."""
    eval_config = EvalConfig(model="", dataset="", data_root=data_root, n_samples=n_samples, batch_size=batch_size,
                             device=device, seed=seed, templates=templates, progress=not quiet, attacks=attack,
                             eps=eps, steps=steps, sanity=not no_sanity)
    table = run_benchmark(BenchmarkConfig(models=list(model), datasets=datasets, output_dir=output, eval=eval_config,
                                          iid=iid))
    typer.echo(f"{table['cells_run']} cell(s) run, {table['cells_reused']} reused; tables: {output}/table.md, "
               f"table.csv, table.json; plot: {output}/heatmap.png")
