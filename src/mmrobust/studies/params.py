"""Study ``params``: robustness vs. the number of fine-tuned parameters.

Each cell fine-tunes the same pinned model with ``--method`` (default MMCoA) training only some parameters:
``full`` (everything), ``image`` / ``text`` (one tower), ``last-k`` (the last K tensors of the image tower),
``prompt`` (a visual padding prompt; mmrobust ViT image towers only). The table records the trained
parameter count; the plot shows accuracy against it on a log axis, with the model before fine-tuning as
reference lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from .base import Study
from .finetune_common import (BASELINE_KEY, accuracy_columns, baseline_cell, baseline_lines, describe_training,
                              split_baseline)
from .grid import Cell
from .options import StudyOptions, choice, parse_list
from .plots import Series, line_plot
from .intervals import error_bar_note
from .runner import MODALITIES, StudyContext, baseline, train_and_evaluate
from .tables import Column

DEFAULT_MODES = "full,image,text,last-k"


class ParamsStudy(Study):
    name = "params"
    title = "Robustness vs. number of fine-tuned parameters"
    trains = True

    def parse_args(self, raw: dict[str, Any], options: StudyOptions) -> dict[str, Any]:
        from ..training.config import TRAIN_MODES

        if options.train_mode is not None:
            raise ConfigError("study params varies --train itself (--modes); do not also give --train")
        modes = parse_list(raw.get("modes", DEFAULT_MODES), "--modes", choice(TRAIN_MODES))
        last_k = raw.get("last_k", 4)
        if isinstance(last_k, bool) or int(last_k) != last_k or last_k < 1:
            raise ConfigError(f"--last-k must be a positive integer, got {last_k}")
        return {"modes": modes, "last_k": int(last_k), "baseline": bool(raw.get("baseline", True))}

    def check_models(self, ctx: StudyContext) -> None:
        if "prompt" not in ctx.args["modes"] and "last-k" not in ctx.args["modes"]:
            return
        from ..models import load_model
        from ..training.visual_prompt import can_fold_prompt

        model = load_model(ctx.pinned[ctx.options.models[0]].pinned_spec)
        if "prompt" in ctx.args["modes"] and not can_fold_prompt(model):
            raise ConfigError(f"--modes prompt needs an mmrobust ViT image tower; {ctx.options.models[0]!r} has another "
                              "(drop prompt from --modes)")
        n_image = len(model.named_parameter_groups()["image"])
        if "last-k" in ctx.args["modes"] and ctx.args["last_k"] > n_image:
            raise ConfigError(f"--last-k {ctx.args['last_k']} exceeds the image tower's {n_image} parameter tensors")

    def cells(self, ctx: StudyContext) -> list[Cell]:
        model = ctx.options.models[0]
        cells = [baseline_cell(ctx)] if ctx.args["baseline"] else []
        for mode in ctx.args["modes"]:
            params: dict[str, Any] = {"setting": mode, "train": mode}
            if mode == "last-k":
                params.update(setting=f"last-{ctx.args['last_k']}", last_k=ctx.args["last_k"])
            cells.append(Cell(f"train={params['setting']}", params, model))
        return cells

    def compute(self, ctx: StudyContext, cell: Cell, digest: str) -> dict[str, Any]:
        if cell.key == BASELINE_KEY:
            return baseline(ctx, cell, digest)
        overrides: dict[str, Any] = {"train": cell.params["train"]}
        if "last_k" in cell.params:
            overrides["last_k"] = cell.params["last_k"]
        return train_and_evaluate(ctx, cell, digest, **overrides)

    def columns(self, ctx: StudyContext) -> list[Column]:
        return [Column("setting", "trained", "text"), Column("trained_parameters", "parameters", "int"),
                Column("trained_fraction", "fraction", "pct"), *accuracy_columns(ctx)]

    def plot(self, ctx: StudyContext, rows: Sequence[dict[str, Any]], path: Path) -> None:
        base, trained = split_baseline(rows)
        trained = sorted(trained, key=lambda r: r["trained_parameters"])
        # one category per setting, ordered by trained-parameter count: the subsets (one tower, the last
        # tensors, ...) are not points on a continuum, and two settings may train as many parameters
        ticks = [(float(i), f"{r['setting']}\n({r['trained_parameters']:,} params)") for i, r in enumerate(trained)]
        xs = [x for x, _ in ticks]
        series = [Series.from_rows(f"{m.replace('_', '-')} accuracy", xs, trained, m, color=f"C{i}", linestyle="none")
                  for i, m in enumerate(MODALITIES)]
        line_plot(path, series, xlabel="fine-tuned parameters (setting, ordered by parameter count)",
                  ylabel="accuracy (%)", title=f"{ctx.options.models[0]} on {ctx.options.dataset}: "
                                               f"{describe_training(ctx)}",
                  levels=baseline_lines(base), xticks=ticks, note=error_bar_note(rows))
