"""Study ``train-size``: robustness vs. training-set size and few-shot fine-tuning.

Each cell fine-tunes the same pinned model with ``--method`` (default MMCoA) on K images per class
(``--shots``) and/or N random images (``--n-train``), same epochs and learning rate, then evaluates the final
checkpoint with the study's attacks on the same held-out images. The k-shot set is drawn once (seeded) and
reused every epoch, so fewer images also means fewer optimizer steps at equal epochs (the table shows both).
A reference cell evaluates the model before fine-tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .base import Study
from .finetune_common import (BASELINE_KEY, accuracy_columns, baseline_cell, baseline_lines, describe_training,
                              setting_ticks, split_baseline)
from .intervals import error_bar_note
from .grid import Cell
from .options import StudyOptions, parse_list, positive_int
from .plots import Series, line_plot
from .runner import MODALITIES, StudyContext, baseline, train_and_evaluate
from .tables import Column

DEFAULT_SHOTS = "1,4,16"


class TrainSizeStudy(Study):
    name = "train-size"
    title = "Robustness vs. training-set size (few-shot)"
    trains = True

    def parse_args(self, raw: dict[str, Any], options: StudyOptions) -> dict[str, Any]:
        shots_raw, n_raw = raw.get("shots", DEFAULT_SHOTS), raw.get("n_train_sizes")
        shots = sorted(parse_list(shots_raw, "--shots", positive_int)) if shots_raw is not None else []
        sizes = sorted(parse_list(n_raw, "--sizes", positive_int)) if n_raw is not None else []
        if not shots and not sizes:
            raise ConfigError("study train-size needs --shots and/or --sizes")
        return {"shots": shots, "n_train": sizes, "baseline": bool(raw.get("baseline", True))}

    def check(self, ctx: StudyContext) -> None:
        from ..data import load_dataset

        train_set = load_dataset(ctx.options.dataset, ctx.options.data_root, "train")
        per_class = np.bincount(np.asarray(train_set.labels), minlength=len(train_set.classes))
        if ctx.args["shots"] and max(ctx.args["shots"]) > per_class.min():
            raise ConfigError(f"--shots {max(ctx.args['shots'])}: the smallest class of {ctx.options.dataset}/train "
                              f"has {int(per_class.min())} images")
        if ctx.args["n_train"] and max(ctx.args["n_train"]) > len(train_set):
            raise ConfigError(f"--sizes {max(ctx.args['n_train'])}: {ctx.options.dataset}/train has "
                              f"{len(train_set)} images")

    def cells(self, ctx: StudyContext) -> list[Cell]:
        model = ctx.options.models[0]
        cells = [baseline_cell(ctx)] if ctx.args["baseline"] else []
        cells += [Cell(f"shots={k}", {"setting": f"{k}-shot", "shots": k}, model) for k in ctx.args["shots"]]
        cells += [Cell(f"n_train={n}", {"setting": f"{n} images", "n_train": n}, model) for n in ctx.args["n_train"]]
        return cells

    def compute(self, ctx: StudyContext, cell: Cell, digest: str) -> dict[str, Any]:
        if cell.key == BASELINE_KEY:
            return baseline(ctx, cell, digest)
        return train_and_evaluate(ctx, cell, digest, shots=cell.params.get("shots"),
                                  n_train=cell.params.get("n_train"))

    def columns(self, ctx: StudyContext) -> list[Column]:
        return [Column("setting", "training set", "text"), Column("n_train_images", "images", "int"),
                Column("train_steps", "steps", "int"), *accuracy_columns(ctx)]

    def plot(self, ctx: StudyContext, rows: Sequence[dict[str, Any]], path: Path) -> None:
        base, trained = split_baseline(rows)
        trained = sorted(trained, key=lambda r: r["n_train_images"])
        xs = [r["n_train_images"] for r in trained]
        series = [Series.from_rows(f"{m.replace('_', '-')} accuracy", xs, trained, m, color=f"C{i}") for i, m in enumerate(MODALITIES)]
        line_plot(path, series, xlabel="fine-tuning images (count, log scale)", ylabel="accuracy (%)", logx=True,
                  title=f"{ctx.options.models[0]} on {ctx.options.dataset}: {describe_training(ctx)}",
                  levels=baseline_lines(base), xticks=setting_ticks(trained, "n_train_images"),
                  note=error_bar_note(rows))
