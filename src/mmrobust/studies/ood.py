"""A fine-tuning study's out-of-distribution rows: every row's model, zero-shot on other datasets.

Why: the study (Zhou et al., 2024) reports each fine-tuned model on the fine-tuning set's own test split
(IID) *and* zero-shot on other datasets (OOD); findings 3 and 4 (fine-tuning helps overall; more training
data gives more OOD robustness) are OOD claims. ``--ood-dataset LIST`` runs, after the grid, one
``mmrobust benchmark`` under ``DIR/ood/`` over the rows' models (the model before fine-tuning first, so
its paired tests compare every fine-tune with it on the same images) with the study's evaluation attacks,
and adds the OOD average of each accuracy column to the study's rows (``ood_clean`` ... with the
average's interval). The benchmark's cells are resumable and reused like the study's own.

The benchmark itself comes in from above (``run_study(..., ood=BenchmarkOOD())``,
:mod:`mmrobust.benchmark.study_ood`): studies and benchmark are siblings on the package ladder and import
nothing of each other; the CLI wires them.

Each row also keeps its OOD per-image outcomes (the datasets' images one after another), so that the study's
paired comparisons cover the OOD columns too (finding 4 compares fine-tunes *on OOD data*): with equal image
counts per dataset the pooled outcomes' mean is exactly the OOD average, so the paired bootstrap and McNemar
test on them are tests of the average. With unequal counts the pooled mean would weight the larger datasets
more, so those rows get no OOD outcomes and no OOD comparison (the per-dataset ones stay in ``DIR/ood/``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Protocol, Sequence

from .grid import config_hash
from .intervals import encode
from .runner import MODALITIES, StudyContext, study_eval_config
from .tables import Column

OOD_KEYS = tuple(f"ood_{m}" for m in MODALITIES)
OOD_DIR = "ood"


class OODBackend(Protocol):
    """What a study needs of the benchmark (:class:`mmrobust.benchmark.study_ood.BenchmarkOOD`)."""

    def retrieval_sets(self, datasets: str, data_root: str | None) -> list[str]:
        """The retrieval sets among ``datasets`` (a study's OOD rows are classification only)."""

    def run(self, models: list[str], datasets: str, output_dir: str, eval_config: Any, title: str,
            labels: dict[str, str], log: Any, share_output: bool = False) -> dict[str, Any]:
        """Run (or reuse) the benchmark of ``models`` x ``datasets``; its table. ``share_output``: other jobs
        run the same benchmark (its cells are claimed, as the study's are)."""

    def family_vectors(self, report: dict[str, Any]) -> dict[str, Any]:
        """Per-image outcomes of one benchmark cell's report, per attack family."""


def backend(ctx: StudyContext) -> OODBackend:
    from ..errors import ConfigError

    if ctx.ood is None:
        raise ConfigError("--ood-dataset needs the benchmark: the CLI passes it; in Python call "
                          "run_study(..., ood=mmrobust.benchmark.study_ood.BenchmarkOOD())")
    return ctx.ood


def check_ood(ctx: StudyContext) -> None:
    """An unknown OOD dataset stops the study before any model is pinned or cell runs."""
    from ..errors import ConfigError

    o = ctx.options
    if not o.ood_datasets:
        return
    retrieval = backend(ctx).retrieval_sets(o.ood_datasets, o.data_root)
    if retrieval:
        raise ConfigError(f"--ood-dataset takes classification sets; {', '.join(retrieval)} is a retrieval set")


def row_model(ctx: StudyContext, row: dict[str, Any]) -> str:
    """The model a row measured: its fine-tuned checkpoint, or the pinned model it started from."""
    return f"ckpt:{row['checkpoint']}" if row.get("checkpoint") else ctx.pinned[row["model"]].pinned_spec


def evaluate_ood(ctx: StudyContext, rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any] | None:
    """Run (or reuse) the OOD benchmark of ``rows``; add ``ood_*`` averages to each row; return its table."""
    o = ctx.options
    if not o.ood_datasets or not rows:
        return None
    models = [row_model(ctx, row) for row in rows]
    table = backend(ctx).run(models, o.ood_datasets, str(ctx.out / OOD_DIR), study_eval_config(ctx, "", dataset=""),
                             f"study {ctx.name}: OOD zero-shot", dict(zip(models, labels)),
                             sys.stderr if o.progress else None, **({"share_output": True} if ctx.shared else {}))
    averages = {r["model"]: r for r in table["rows"] if r["role"] == "average"}
    for row, model in zip(rows, models):
        families = averages[model]["families"]
        row["ood_n_datasets"] = averages[model].get("n_datasets", 0)
        ci = row.setdefault("ood_ci", {})
        for key, family in zip(OOD_KEYS, MODALITIES):
            block = families.get(family)
            row[key] = None if block is None else block["accuracy"]
            if block is not None:
                ci[key] = [block["low"], block["high"]]
        attach_outcomes(row, [r for r in table["rows"] if r["model"] == model and r["role"] == "ood"],
                        ctx.out / OOD_DIR, backend(ctx))
    return {"folder": str(ctx.out / OOD_DIR), "datasets": table["datasets"],
            "missing": list(dict.fromkeys(r["dataset"] for r in table["rows"]
                                          if r["status"] not in ("ok", "empty") and r["role"] == "ood"))}


def attach_outcomes(row: dict[str, Any], ood_rows: Sequence[dict[str, Any]], folder: Path,
                    ood: OODBackend) -> None:
    """Add the row's pooled OOD per-image outcomes (``correct["ood_*"]``) and their images' fingerprint."""
    ood_rows = [r for r in ood_rows if r["status"] == "ok"]  # the datasets the average is over
    if not ood_rows or len({r["n"] for r in ood_rows}) != 1:
        return
    vectors = [ood.family_vectors(json.loads((folder / r["report"]).read_text())) for r in ood_rows]
    images = config_hash([[r["dataset_spec"], r["indices_sha256"]] for r in ood_rows])[:16]
    correct, by_column = row.setdefault("correct", {}), row.setdefault("images_by_column", {})
    for key, family in zip(OOD_KEYS, MODALITIES):
        if all(family in v for v in vectors):
            correct[key] = "".join(encode(v[family]) for v in vectors)
            by_column[key] = images


def ood_columns(ctx: StudyContext) -> list[Column]:
    """The OOD-average columns (clean and worst case; the others are in ``DIR/ood/table.md``)."""
    if not ctx.options.ood_datasets:
        return []
    return [Column("ood_clean", "OOD clean (avg)"), Column("ood_worst_case", "OOD worst-case (avg)")]
