"""``run_benchmark``: validate the lists, run or reuse every cell, write table.{csv,json,md} and the heat map.

Order of work: expand and check every dataset item (an unknown one stops here, before any model loads);
then per model, load it once and run its cells dataset by dataset. A dataset whose files are missing
becomes a row saying so and how to get them; a dataset that fails mid-run becomes a "failed" row; the
other cells still run. Model and option errors stop the run (they would fail every cell the same way).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..data.catalog import Catalog, expand_dataset_list
from ..errors import ConfigError, DatasetError
from ..eval.run import EvalConfig
from ..models import load_model
from ..utils.device import resolve_device
from ..utils.files import atomic_write, output_lock, write_json_atomic
from .cells import cell_path, run_cell
from .datasets import RETRIEVAL, missing_message, open_dataset, plan_datasets
from .plot import heatmap
from .protocols import protocol_configs, protocol_names
from .retrieval_cells import retrieval_attack_names, retrieval_cell_config, retrieval_row
from .table import average_row, cell_row, csv_lines, markdown, missing_row, paired_rows, protocol_ranks


#: every cell runs each attack on every clean-correct image: the table's family columns (image, text,
#: multimodal) are standalone robust accuracies, as the study reports them. The cascade's later attacks only
#: see what earlier ones spared, so its per-attack numbers are cumulative; the worst case is the same either way.
ENSEMBLE = "each"


@dataclass
class BenchmarkConfig:
    """Models x datasets with one evaluation setup; ``eval`` carries every eval option (its model,
    dataset and output fields are replaced per cell). ``iid`` names the fine-tuning set's own dataset."""

    models: list[str]
    datasets: str | list[str]
    output_dir: str
    eval: EvalConfig
    iid: str | None = None
    #: retrieval cells' attacks ("pgd,co-attack", "none"); None = one per family of the run's attacks
    retrieval_attacks: str | None = None
    title: str = "mmrobust benchmark"
    #: display names of models (spec -> label) in the tables and the plot; the specs stay in table.json
    labels: dict[str, str] | None = None
    plot: bool = True
    log: Any = field(default=None, repr=False)
    #: several jobs (a SLURM job array) share ``output_dir``: cells are claimed one by one instead of the folder
    share_output: bool = False


def _say(config: BenchmarkConfig, text: str) -> None:
    print(text, file=config.log or sys.stderr, flush=True)


def _items(config: BenchmarkConfig) -> list[str]:
    items = expand_dataset_list(config.datasets)
    if config.iid is not None and config.iid not in items:
        items.append(config.iid)
    return items


def run_benchmark(config: BenchmarkConfig) -> dict[str, Any]:
    """Run (or reuse) every cell and write the tables and the plot; returns the table dict.

    The folder is locked while this runs: a second benchmark on the same ``-o`` is refused with one line.
    """
    if not config.models:
        raise ConfigError("give at least one --model")
    if len(set(config.models)) != len(config.models):
        raise ConfigError(f"a model is listed twice in --model: {config.models}")
    out = Path(config.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} exists and is not a directory")
    choices = plan_datasets(_items(config), Catalog(), config.eval.data_root)  # unknown datasets stop here
    if protocol_names(config.eval):  # --preset a,b,c: one column group per protocol, on the same images
        protocols = protocol_configs(config.eval)  # validates every protocol, before any model loads
        retrieval_sets = [c.item for c in choices if c.task == RETRIEVAL]
        if retrieval_sets:
            raise ConfigError(f"several --preset protocols compare classification protocols; benchmark the "
                              f"retrieval sets ({', '.join(retrieval_sets)}) separately")
        retrieval: list[str] = []
    else:
        config.eval.validate()  # every run and attack option, before any model loads
        protocols = {None: config.eval}
        retrieval = retrieval_attack_names(config.eval, config.retrieval_attacks)
        if any(c.task == RETRIEVAL for c in choices):
            retrieval_cell_config(config.eval, retrieval).validate()
    from .distribute import benchmark_context

    dctx = benchmark_context(config.eval.device)  # torchrun: cells or images across ranks (.distribute)
    device = str(dctx.device)
    locked = out if dctx.is_main and not config.share_output else None
    with output_lock(locked, "benchmark folder", folder=True):
        return _run_cells(config, out, choices, device, retrieval, dctx, protocols)


def _run_cells(config: BenchmarkConfig, out: Path, choices: list, device: str, retrieval: list[str],
               dctx: Any = None, protocols: dict[str | None, EvalConfig] | None = None) -> dict[str, Any]:
    from .distribute import gather_results, mode, my_cells, run_claimed
    from ..utils.distributed import DistributedContext

    dctx = dctx or DistributedContext(device=resolve_device(device))
    t0 = time.perf_counter()
    protocols = protocols or {None: config.eval}
    plan = [(model_spec, choice, protocol) for model_spec in config.models for choice in choices
            for protocol in protocols]
    how = mode(len(plan), dctx)
    models: dict[str, Any] = {}

    dealt = my_cells(len(plan), dctx, how)
    # the progress across cells (each cell's own batches show below it); its rate is the running estimate
    bar = tqdm(total=len(dealt), desc="cells", unit="cell", file=config.log or sys.stderr,
               disable=not (config.eval.progress and dctx.is_main))

    def one(i: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        model_spec, choice, protocol = plan[i]
        if model_spec not in models:
            models.clear()  # one model in memory at a time (cells come model by model)
            models[model_spec] = load_model(model_spec, device=device)
        result = _one_cell(config, out, models[model_spec], model_spec, choice, device, retrieval, how == "images",
                           protocol, protocols[protocol])
        bar.update(1)
        return result

    say = (lambda text: _say(config, text))
    with bar:
        mine = run_claimed(dealt, lambda i: cell_path(out, *_cell_names(plan[i])), one, config.share_output, say,
                           dctx, how)
    results = gather_results(mine, len(plan), dctx, how)
    if results is None:  # not rank 0: rank 0 writes the tables
        dctx.barrier()
        return {"rank": dctx.rank, "cells_run_here": len(mine)}
    rows: list[dict[str, Any]] = []
    reports: dict[tuple, dict[str, Any]] = {}
    for model_spec in config.models:
        for protocol in protocols:
            for (spec, choice, p), (row, report) in zip(plan, results):
                if spec != model_spec or p != protocol:
                    continue
                rows.append(row)
                if report is not None:
                    reports[(model_spec, choice.item) + ((protocol,) if protocol else ())] = report
            rows.append(average_row(model_spec, rows, protocol))
    table = _table(config, choices, rows, reports, retrieval, t0, [p for p in protocols if p])
    if table["presets"]:
        table["n_requested"] = next(iter(protocols.values())).n_samples  # the one sample of every protocol
        table["ranking"] = protocol_ranks(rows, config.models, table["presets"])
    if dctx.enabled:
        table["distributed"] = {"world_size": dctx.world_size, "unit": how}
    write_tables(out, table, config)
    dctx.barrier()
    return table


def _cell_names(cell: tuple[str, Any, str | None]) -> tuple[str, str, str | None]:
    return cell[0], cell[1].item, cell[2]


def _one_cell(config: BenchmarkConfig, out: Path, model: Any, model_spec: str, choice: Any, device: str,
              retrieval: list[str], shard: bool = True, protocol: str | None = None,
              eval_config: EvalConfig | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(table row, report or None) of one (model, dataset[, protocol]) cell: run, reused, missing or failed."""
    eval_config = eval_config or config.eval
    role = RETRIEVAL if choice.task == RETRIEVAL else "iid" if choice.item == config.iid else "ood"
    where_said = f"[{model_spec} | {choice.item}" + (f" | {protocol}]" if protocol else "]")
    tag = {"protocol": protocol} if protocol else {}
    dataset = open_dataset(choice, eval_config.data_root, eval_config.split)
    if dataset is None:
        message = missing_message(choice, eval_config.data_root)
        _say(config, f"{where_said} missing: {message}")
        return {**missing_row(model_spec, choice.item, role, "missing", message), **tag}, None
    n = eval_config.n_samples
    cell_config = dataclasses.replace(eval_config, model=model_spec, dataset=choice.spec, device=device,
                                      n_samples=None if n is None or n >= len(dataset) else n,
                                      ensemble=ENSEMBLE)
    if choice.task == RETRIEVAL:
        cell_config = retrieval_cell_config(cell_config, retrieval)
    else:
        too_few = _too_few_classes(cell_config, len(dataset.classes))
        if too_few:  # e.g. tecoa's apgd-dlr on a two-class set: this cell fails, the others run
            _say(config, f"{where_said} failed: {too_few}")
            return {**missing_row(model_spec, choice.item, role, "failed", too_few), **tag}, None
    path = cell_path(out, model_spec, choice.item, protocol)
    try:
        announce = (lambda line: _say(config, f"{where_said} {line}")) if eval_config.progress else None
        report, reused = run_cell(cell_config, path, model, choice.item, shard=shard, announce=announce)
    except DatasetError as exc:
        _say(config, f"{where_said} failed: {exc}")
        return {**missing_row(model_spec, choice.item, role, "failed", str(exc)), **tag}, None
    where = str(path.relative_to(out))
    row = (retrieval_row(model_spec, choice.item, report, where, reused) if choice.task == RETRIEVAL
           else cell_row(model_spec, choice.item, report, where, reused, role))
    row.update(tag)
    clean = row["families"].get("clean", {})
    metric = "mean R@1" if choice.task == RETRIEVAL else "accuracy"
    _say(config, f"{where_said} {'reused' if reused else 'done'}: n={row['n']} "
                 f"clean {metric} {100 * clean.get('accuracy', float('nan')):.1f}% ({row['verdict']})")
    return row, report


def _too_few_classes(cell_config: EvalConfig, n_classes: int) -> str | None:
    """Why the cell's attacks cannot run on ``n_classes`` classes (an attack's ``min_classes``), else None."""
    from ..attacks.registry import build_attacks

    n = min(n_classes, cell_config.classes or n_classes)
    short = [a for a in build_attacks(*cell_config.resolve_attacks()) if n < getattr(a, "min_classes", 0)]
    if not short:
        return None
    return (f"{', '.join(a.name for a in short)} needs at least {max(a.min_classes for a in short)} classes; "
            f"this task has {n} (drop it with --attack)")


def _table(config: BenchmarkConfig, choices: list, rows: list, reports: dict, retrieval: list[str],
           t0: float, presets: list[str] | None = None) -> dict[str, Any]:
    paired = paired_rows(rows, reports, config.models, config.eval.seed)
    return {"presets": list(presets or []),
        "title": config.title, "models": list(config.models), "labels": dict(config.labels or {}), "datasets": [c.item for c in choices],
        "dataset_specs": {c.item: c.spec for c in choices}, "iid": config.iid, "rows": rows, "paired": paired,
        "n_requested": config.eval.n_samples, "seed": config.eval.seed, "attacks": config.eval.attacks,
        "preset": config.eval.preset, "retrieval_attacks": retrieval if any(c.task == RETRIEVAL for c in choices)
        else None, "eps": config.eval.eps, "wall_s": round(time.perf_counter() - t0, 2),
        "cells_reused": sum(1 for r in rows if r.get("reused")),
        "cells_run": sum(1 for r in rows if r.get("reused") is False),
    }


def write_tables(out: Path, table: dict[str, Any], config: BenchmarkConfig) -> None:
    write_json_atomic(out / "table.json", table)
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv_lines(table["rows"]))
    atomic_write(out / "table.csv", lambda tmp: tmp.write_text(buffer.getvalue(), encoding="utf-8"))
    text = markdown(table["rows"], table["paired"], table["models"], config.title, table["labels"],
                    table.get("presets"))
    atomic_write(out / "table.md", lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    if config.plot:
        heatmap(table["rows"], table["models"], out / "heatmap.png", config.title, table["labels"],
                table.get("presets"))
