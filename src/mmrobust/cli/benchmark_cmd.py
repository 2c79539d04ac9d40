"""``mmrobust benchmark``: models x datasets with eval's options (the same declarations), one table, plot and averages."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from ..benchmark import BenchmarkConfig, run_benchmark
from .errors import user_errors_exit
from ..eval.run import EvalConfig
from ..options.run import SharingOptions
from .eval_cmd import announce_attacks, eval_config
from .options import flags, with_options


@user_errors_exit
@with_options(flags(EvalConfig, exclude=("model", "dataset", "output", "task", "source_model", "classnames",
                                         "ensemble")), flags(SharingOptions))
# one names file cannot fit many datasets; the family columns need standalone attacks (benchmark.runner.ENSEMBLE)
def benchmark_command(
    model: List[str] = typer.Option(..., "--model", "-m", help="Model spec; repeat for several models (the first "
                                                             "is the reference of the paired comparisons)."),
    datasets: str = typer.Option(
        ..., "--datasets", "-d",
        help="Comma list of datasets (names, wds:FOLDER|HUB_ID), @study, @clip-benchmark, @retrieval, or a file "
             "with one spec per line. Retrieval sets (flickr30k, mscoco, retrieval wds folders) get recall rows.",
    ),
    output: str = typer.Option(..., "--output", "-o", help="Benchmark folder: cells/, table.{csv,json,md}, heatmap.png."),
    iid: Optional[str] = typer.Option(
        None, "--iid", help="The fine-tuning set's own dataset: evaluated too, shown apart, not in the OOD average."),
    retrieval_attack: Optional[str] = typer.Option(
        None, "--retrieval-attack",
        help="Retrieval datasets' attacks (see `mmrobust attacks`), or none. Default: one per family of the run's "
             "attacks: image -> pgd, text -> the text recipe, multimodal -> co-attack."),
    **shared: Any,
) -> None:
    """Evaluate every model on every dataset (resumable cell by cell); write one table and heat map."""
    share_output = bool(shared.pop("share_output"))
    config = eval_config(shared, model="", dataset="", output=None)
    from ..benchmark.protocols import protocol_configs, protocol_names
    from ..eval.distributed import is_main_process

    # --preset a,b,c: one column group per protocol, all on the same images (mmrobust.benchmark.protocols)
    protocols = protocol_configs(config) if protocol_names(config) else {None: config.validate()}
    if is_main_process():
        for protocol in protocols.values():
            announce_attacks(protocol)
            if config.progress:
                typer.echo(benchmark_plan(protocol, len(model), datasets, iid))
        if None not in protocols:
            n = next(iter(protocols.values())).n_samples
            typer.echo(f"protocols {', '.join(protocols)} on the same images: "
                       f"{'all' if n is None else f'n={n}'} per dataset, seed {config.seed}")
    table = run_benchmark(BenchmarkConfig(models=list(model), datasets=datasets, output_dir=output, eval=config,
                                          iid=iid, retrieval_attacks=retrieval_attack, share_output=share_output))
    if "rows" not in table:  # a torchrun rank other than 0: rank 0 wrote the tables
        return
    typer.echo(f"{table['cells_run']} cell(s) run, {table['cells_reused']} reused; tables: {output}/table.md, "
               f"table.csv, table.json; plot: {output}/heatmap.png")


def benchmark_plan(config: EvalConfig, n_models: int, datasets: str, iid: str | None) -> str:
    """``plan: 2 models × 3 datasets × 32 images × 1 attack × 10 steps = ...`` (the classification cells)."""
    from ..attacks.registry import build_attacks
    from ..data.catalog import expand_dataset_list
    from ..eval.budget import grid_plan
    from ..utils.budget import plural

    items = expand_dataset_list(datasets)
    n_datasets = len(items) + (iid is not None and iid not in items)
    grid = ((n_models, plural(n_models, "model")), (n_datasets, plural(n_datasets, "dataset")))
    return grid_plan(grid, config.n_samples, build_attacks(*config.resolve_attacks())).line()
