"""A fine-tuning study's out-of-distribution rows: every row's model, zero-shot on other datasets.

Why: the study (Zhou et al., 2024) reports each fine-tuned model on the fine-tuning set's own test split
(IID) *and* zero-shot on other datasets (OOD); findings 3 and 4 (fine-tuning helps overall; more training
data gives more OOD robustness) are OOD claims. ``--ood-dataset LIST`` runs, after the grid, one
``mmrobust benchmark`` under ``DIR/ood/`` over the rows' models (the model before fine-tuning first, so
its paired tests compare every fine-tune with it on the same images) with the study's evaluation attacks,
and adds the OOD average of each accuracy column to the study's rows (``ood_clean`` ... with the
average's interval). The benchmark's cells are resumable and reused like the study's own.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from .runner import MODALITIES, StudyContext, study_eval_config
from .tables import Column

OOD_KEYS = tuple(f"ood_{m}" for m in MODALITIES)
OOD_DIR = "ood"


def check_ood(ctx: StudyContext) -> None:
    """An unknown OOD dataset stops the study before any model is pinned or cell runs."""
    from ..benchmark.datasets import plan_datasets
    from ..data.catalog import Catalog, expand_dataset_list
    from ..errors import ConfigError

    o = ctx.options
    if not o.ood_datasets:
        return
    choices = plan_datasets(expand_dataset_list(o.ood_datasets), Catalog(), o.data_root)
    retrieval = [c.item for c in choices if c.task != "classification"]
    if retrieval:
        raise ConfigError(f"--ood-dataset takes classification sets; {', '.join(retrieval)} is a retrieval set")


def row_model(ctx: StudyContext, row: dict[str, Any]) -> str:
    """The model a row measured: its fine-tuned checkpoint, or the pinned model it started from."""
    return f"ckpt:{row['checkpoint']}" if row.get("checkpoint") else ctx.pinned[row["model"]].pinned_spec


def evaluate_ood(ctx: StudyContext, rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any] | None:
    """Run (or reuse) the OOD benchmark of ``rows``; add ``ood_*`` averages to each row; return its table."""
    from ..benchmark import BenchmarkConfig, run_benchmark

    o = ctx.options
    if not o.ood_datasets or not rows:
        return None
    models = [row_model(ctx, row) for row in rows]
    config = BenchmarkConfig(
        models=models, datasets=o.ood_datasets, output_dir=str(ctx.out / OOD_DIR),
        eval=study_eval_config(ctx, "", dataset=""), title=f"study {ctx.name}: OOD zero-shot",
        labels=dict(zip(models, labels)), log=sys.stderr if o.progress else None,
    )
    table = run_benchmark(config)
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
    return {"folder": str(ctx.out / OOD_DIR), "datasets": table["datasets"],
            "missing": list(dict.fromkeys(r["dataset"] for r in table["rows"]
                                          if r["status"] not in ("ok", "empty") and r["role"] == "ood"))}


def ood_columns(ctx: StudyContext) -> list[Column]:
    """The OOD-average columns (clean and worst case; the others are in ``DIR/ood/table.md``)."""
    if not ctx.options.ood_datasets:
        return []
    return [Column("ood_clean", "OOD clean (avg)"), Column("ood_worst_case", "OOD worst-case (avg)")]
