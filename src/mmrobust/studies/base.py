"""The shape of a study and the one function that runs any of them.

A study module defines a :class:`Study` subclass: how its command-line lists become validated arguments,
which cells its grid has, how one cell is computed, and how finished cells become a table and a plot.
:func:`run_study` does the rest the same way for all of them (pin models, run/resume cells, write outputs).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

from .grid import Cell, CellRecord, GridOutcome
from .intervals import ACCURACY_KEYS, add_intervals, aggregate_seeds, compare_rows, format_comparisons
from .ood import OOD_KEYS, check_ood, evaluate_ood, ood_columns
from .runner import MODALITIES, StudyContext, plan_line, prepare, reliability, run_cells, study_metadata
from .options import StudyOptions
from .tables import Column, write_table
from ..utils.cells import hold, mode
from ..utils.files import output_lock


class Study:
    """Base class; subclasses set ``name``, ``title``, ``trains`` and override the hooks."""

    name: str = ""
    title: str = ""
    #: whether cells fine-tune (then the training options enter each cell's hash)
    trains: bool = False
    #: how many --model values the study accepts
    max_models: int = 1
    #: differences computed within a row on the same images (column -> (a, b) meaning a - b): paired intervals
    paired_columns: Mapping[str, tuple[str, str]] = MappingProxyType({})

    def parse_args(self, raw: dict[str, Any], options: StudyOptions) -> dict[str, Any]:
        """Validate the study's own options (lists) into JSON-able values; raise ConfigError on bad input."""
        return dict(raw)

    def check(self, ctx: StudyContext) -> None:
        """Checks that need the data (run once, before models are pinned and any cell runs)."""

    def check_models(self, ctx: StudyContext) -> None:
        """Checks that need the pinned models (run once, before any cell)."""

    def cells(self, ctx: StudyContext) -> list[Cell]:
        raise NotImplementedError

    def compute(self, ctx: StudyContext, cell: Cell, digest: str) -> dict[str, Any]:
        raise NotImplementedError

    def columns(self, ctx: StudyContext) -> list[Column]:
        raise NotImplementedError

    def row(self, ctx: StudyContext, record: CellRecord) -> dict[str, Any]:
        """A table row: the cell's parameters, its result and its reliability verdict."""
        return {**record.cell.params, "model": record.cell.model, "key": record.cell.key, **record.result,
                "reliability": reliability(record.result), "reused": record.reused}

    def default_reference(self, ctx: StudyContext) -> str | None:
        """The row every other row is compared with when ``--reference`` is not given (None: no comparison).
        Default: the first cell (the model before fine-tuning, where the study has that cell)."""
        cells = self.cells(ctx)
        return cells[0].key if cells else None

    def group(self, row: dict[str, Any]) -> Any:
        """Rows are compared with the reference row of their group (eps: the reference model at the same eps)."""
        return None

    def label(self, row: dict[str, Any]) -> str:
        return str(row.get("setting") or row.get("key"))

    def plot(self, ctx: StudyContext, rows: Sequence[dict[str, Any]], path: Path) -> None:
        raise NotImplementedError


def validate_models(study: Study, options: StudyOptions) -> None:
    from ..errors import ConfigError

    if len(options.models) > study.max_models:
        raise ConfigError(f"study {study.name} takes {'one --model' if study.max_models == 1 else f'at most {study.max_models} models'}"
                          f", got {len(options.models)}")
    if len(set(options.models)) != len(options.models):
        raise ConfigError("a --model is given twice")


def run_study(
    study: Study,
    options: StudyOptions,
    raw_args: dict[str, Any],
    echo: Callable[[str], None] = print,
    ood: Any = None,
) -> dict[str, Any]:
    """Run (or resume) ``study``; write cells, ``table.csv``, ``table.json``, ``plot.png``; return the table.

    ``ood``: the benchmark backend of ``--ood-dataset`` (:class:`mmrobust.benchmark.study_ood.BenchmarkOOD`;
    the CLI passes it — studies do not import the benchmark).

    With several ``options.seeds`` the whole grid runs once per seed under ``DIR/seed-S/`` (each a complete,
    resumable study folder with its own table) and ``DIR/table.*`` aggregates them (mean ± sd, pooled interval).
    """
    started = time.perf_counter()
    options.validate()
    validate_models(study, options)
    args = study.parse_args(raw_args, options)
    seeds = options.seed_list()
    top = replace(options, seed=seeds[0], seeds=None)
    from ..eval.distributed import eval_context

    ctx = StudyContext(name=study.name, options=top, args=args, out=Path(options.output_dir), echo=echo,
                       trains=study.trains, ood=ood, job=eval_context(options.device))
    ctx.eval_dataset()  # a bad dataset fails here, before models are pinned
    check_ood(ctx)
    study.check(ctx)
    reference = options.reference or study.default_reference(ctx)
    check_reference(study, ctx, options.reference)
    # torchrun: rank 0 holds the folder for the job; --share-output: jobs claim cells instead (utils.cells)
    locked = ctx.out if ctx.job.is_main and not ctx.shared else None
    with output_lock(locked, "study folder", folder=True):
        return _run_locked(study, ctx, args, seeds, reference, echo, started)


def _run_locked(study: Study, ctx: StudyContext, args: dict[str, Any], seeds: list[int], reference: str | None,
                echo: Callable[[str], None], started: float) -> dict[str, Any]:
    """The study proper, while this process holds the study folder's lock (the seed folders lie inside it)."""
    prepare(ctx)
    study.check_models(ctx)
    if ctx.options.progress:
        echo(plan_line(ctx, len(study.cells(ctx)), len(seeds)))
    if len(seeds) == 1:
        rows, outcome = _run_grid(study, ctx)
        return _finish(study, ctx, rows, study_metadata(ctx, outcome, started), reference, echo)
    runs, totals = [], GridOutcome()
    for seed in seeds:
        seed_ctx = StudyContext(name=study.name, options=replace(ctx.options, seed=seed), args=args,
                                out=ctx.out / f"seed-{seed}", echo=echo, pinned=dict(ctx.pinned), trains=study.trains,
                                ood=ctx.ood, job=ctx.job)
        prepare(seed_ctx)  # the folder only: the models stay pinned once, under DIR/models
        rows, outcome = _run_grid(study, seed_ctx)
        _finish(study, seed_ctx, rows, study_metadata(seed_ctx, outcome, started), reference, lambda line: None)
        echo(f"seed {seed}: {len(rows)} cells ({outcome.n_reused} reused, {outcome.n_run} computed) in {seed_ctx.out}")
        runs.append(rows)
        totals.records.extend(outcome.records)
        if outcome.ood is not None:  # each seed's fine-tunes have their own OOD benchmark
            totals.ood = {**(totals.ood or {}), f"seed-{seed}": outcome.ood}
    stat_keys = [*MODALITIES, *study.paired_columns, *(OOD_KEYS if ctx.options.ood_datasets else ())]
    rows = aggregate_seeds(runs, seeds, stat_keys)
    meta = study_metadata(ctx, totals, started)
    meta["seeds"] = list(seeds)
    return _finish(study, ctx, rows, meta, reference, echo)


def _run_grid(study: Study, ctx: StudyContext) -> tuple[list[dict[str, Any]], GridOutcome]:
    """Every cell's row on every rank; under torchrun with more cells than ranks each rank computes its own
    cells alone (``shard=False``), else the ranks compute every cell together (images sharded)."""
    cells = study.cells(ctx)
    cell_ctx = replace(ctx, shard=mode(len(cells), ctx.job) == "images")
    outcome = run_cells(cell_ctx, cells, lambda cell, digest: study.compute(cell_ctx, cell, digest))
    rows = [study.row(ctx, record) for record in outcome.records]
    if study.trains:
        outcome.ood = evaluate_ood(ctx, rows, [study.label(row) for row in rows])
    return rows, outcome


def _finish(study: Study, ctx: StudyContext, rows: list[dict[str, Any]], meta: dict[str, Any],
            reference: str | None, echo: Callable[[str], None]) -> dict[str, Any]:
    """Intervals, comparisons with the reference, table files, plot, printed summary."""
    options = ctx.options
    for row in rows:
        add_intervals(row, study.paired_columns, pooled=OOD_KEYS)
        row["ci"] = {**(row.get("ood_ci") or {}), **row["ci"]}  # the OOD average's own when not pooled
        row["reliability"] = reliability(row)
    columns = study.columns(ctx) + ood_columns(ctx)
    meta["title"] = study.title
    comparisons = compare_with_reference(study, rows, reference)
    meta["reference"] = reference
    meta["comparisons"] = comparisons
    notes = []
    if not options.sanity:
        notes.append("sanity checks not run (--sanity runs them): reliability 'unchecked'")
    if any(r.get("unreliable") for r in rows):
        notes.append("some cells FAILED sanity checks: their robust accuracies are not trustworthy")
    notes.append(interval_note(rows))
    meta["notes"] = notes
    from ..eval.distributed import is_main_process

    if not is_main_process():  # under torchrun rank 0 alone writes the tables and the plot
        return {**meta, "rows": rows, "table": "", "comparison_table": None}
    with hold(ctx.out / "table.json", ctx.shared, echo, what="study table"):  # other jobs: one writer at a time
        text = write_table(ctx.out, rows, columns, meta)
        study.plot(ctx, rows, ctx.out / "plot.png")
    compared = format_comparisons(comparisons, reference)
    seeds = meta.get("seeds")
    echo(f"{study.title} — {', '.join(options.models)} on {options.dataset} "
         f"({f'seeds {seeds}' if seeds else f'seed {options.seed}'})")
    echo(text)
    if compared:
        echo(compared)
    for note in notes:
        echo(f"note: {note}")
    cells = meta["cells"]
    over = f" -> {len(rows)} rows over {len(seeds)} seeds" if seeds else ""
    echo(f"{cells['total']} cells ({cells['reused']} reused, {cells['computed']} computed){over}; wrote "
         f"{ctx.out / 'table.csv'}, {ctx.out / 'table.json'}, {ctx.out / 'plot.png'}")
    return {**meta, "rows": rows, "table": text, "comparison_table": compared}


def interval_note(rows: Sequence[dict[str, Any]]) -> str:
    seeds = len(rows[0].get("seeds") or []) if rows else 0
    if seeds > 1:
        return (f"accuracy = mean ± sd over {seeds} seeds [pooled 95 % Wilson interval over all seed x image "
                "outcomes]; differences within a row: paired bootstrap over images")
    return "[95 % interval]: Wilson over images for accuracies, paired bootstrap over images for differences"


# -------------------------------------------------------------------------------------------- reference
def _matches(row: dict[str, Any], reference: str) -> bool:
    return reference in (row.get("key"), row.get("setting"), row.get("model"))


def check_reference(study: Study, ctx: StudyContext, reference: str | None) -> None:
    """A ``--reference`` must name a row of the grid (its cell key, setting or model): refused before any cell."""
    from ..errors import ConfigError

    if reference is None:
        return
    rows = [{"key": c.key, "model": c.model, **c.params} for c in study.cells(ctx)]
    if not any(_matches(r, reference) for r in rows):
        known = sorted({str(r.get("setting") or r["key"]) for r in rows} | {r["model"] for r in rows})
        raise ConfigError(f"--reference {reference!r} names no row of study {study.name}; known: {', '.join(known)}")


def compare_with_reference(study: Study, rows: Sequence[dict[str, Any]], reference: str | None
                           ) -> list[dict[str, Any]]:
    """Each row against the reference row of its group, on the same images (see ``intervals.compare_rows``)."""
    if reference is None:
        return []
    refs = [r for r in rows if _matches(r, reference)]
    out = []
    for row in rows:
        if any(row is r for r in refs):
            continue
        same_group = [r for r in refs if study.group(r) == study.group(row)]
        ref = same_group[0] if same_group else (refs[0] if len(refs) == 1 else None)
        if ref is None:
            continue
        ood = [k for k in OOD_KEYS if k in (row.get("correct") or {}) and k in (ref.get("correct") or {})]
        out.append({"row": study.label(row), "reference": study.label(ref), "key": row.get("key"),
                    "columns": compare_rows(row, ref, (*ACCURACY_KEYS, *ood))})
    return out
