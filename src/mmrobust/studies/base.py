"""The shape of a study and the one function that runs any of them.

A study module defines a :class:`Study` subclass: how its command-line lists become validated arguments,
which cells its grid has, how one cell is computed, and how finished cells become a table and a plot.
:func:`run_study` does the rest the same way for all of them (pin models, run/resume cells, write outputs).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .grid import Cell, CellRecord
from .runner import StudyContext, prepare, reliability, run_cells, study_metadata
from .options import StudyOptions
from .tables import Column, write_table
from ..utils.files import output_lock


class Study:
    """Base class; subclasses set ``name``, ``title``, ``trains`` and override the hooks."""

    name: str = ""
    title: str = ""
    #: whether cells fine-tune (then the training options enter each cell's hash)
    trains: bool = False
    #: how many --model values the study accepts
    max_models: int = 1

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
        return {**record.cell.params, "model": record.cell.model, **record.result,
                "reliability": reliability(record.result), "reused": record.reused}

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
) -> dict[str, Any]:
    """Run (or resume) ``study``; write cells, ``table.csv``, ``table.json``, ``plot.png``; return the table."""
    started = time.perf_counter()
    options.validate()
    validate_models(study, options)
    args = study.parse_args(raw_args, options)
    ctx = StudyContext(name=study.name, options=options, args=args, out=Path(options.output_dir), echo=echo,
                       trains=study.trains)
    ctx.eval_dataset()  # a bad dataset fails here, before models are pinned
    study.check(ctx)
    with output_lock(ctx.out, "study folder", folder=True):
        return _run_locked(study, ctx, options, echo, started)


def _run_locked(
    study: Study, ctx: StudyContext, options: StudyOptions, echo: Callable[[str], None], started: float
) -> dict[str, Any]:
    """The study proper, while this process holds the study folder's lock."""
    prepare(ctx)
    study.check_models(ctx)
    cells = study.cells(ctx)
    outcome = run_cells(ctx, cells, lambda cell, digest: study.compute(ctx, cell, digest))
    rows = [study.row(ctx, record) for record in outcome.records]
    columns = study.columns(ctx)
    meta = study_metadata(ctx, outcome, started)
    meta["title"] = study.title
    notes = []
    if not options.sanity:
        notes.append("sanity checks not run (--sanity runs them): reliability 'unchecked'")
    if any(r.get("unreliable") for r in rows):
        notes.append("some cells FAILED sanity checks: their robust accuracies are not trustworthy")
    meta["notes"] = notes
    text = write_table(ctx.out, rows, columns, meta)
    study.plot(ctx, rows, ctx.out / "plot.png")
    echo(f"{study.title} — {', '.join(options.models)} on {options.dataset} (seed {options.seed})")
    echo(text)
    for note in notes:
        echo(f"note: {note}")
    echo(f"{len(rows)} cells ({outcome.n_reused} reused, {outcome.n_run} computed); wrote {ctx.out / 'table.csv'}, "
         f"{ctx.out / 'table.json'}, {ctx.out / 'plot.png'}")
    return {**meta, "rows": rows, "table": text}
