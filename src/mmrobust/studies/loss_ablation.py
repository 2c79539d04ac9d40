"""Study ``loss-ablation``: MMCoA's two loss terms, weighted (lambda_img, lambda_txt).

(1, 0) keeps only the adversarial-image term (TeCoA-like, but with MMCoA's parameters), (0, 1) only the
adversarial-text term, (0.5, 0.5) is MMCoA's default. Every cell has the same budget (images, epochs, lr,
training PGD); a reference cell evaluates the model before fine-tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from .base import Study
from .finetune_common import BASELINE_KEY, accuracy_columns, baseline_cell, describe_training
from .grid import Cell
from ..training.method_options import option_names
from ..training.methods import get_method
from .options import StudyOptions, lambda_pair, parse_list
from .intervals import error_bar, error_bar_note
from .plots import bar_plot
from .runner import MODALITIES, StudyContext, baseline, train_and_evaluate
from .tables import Column

DEFAULT_LAMBDAS = "1:0,0:1,0.5:0.5"


class LossAblationStudy(Study):
    name = "loss-ablation"
    title = "MMCoA loss ablation (lambda_img, lambda_txt)"
    trains = True

    def parse_args(self, raw: dict[str, Any], options: StudyOptions) -> dict[str, Any]:
        if "lambda_img" not in option_names(get_method(options.method).options):
            raise ConfigError(f"study loss-ablation ablates MMCoA's loss weights; --method {options.method!r} has "
                              "none (use mmcoa or mmcoa-released)")
        pairs = parse_list(raw.get("lambdas", DEFAULT_LAMBDAS), "--lambdas", lambda_pair)
        return {"lambdas": [list(p) for p in pairs], "baseline": bool(raw.get("baseline", True))}

    def cells(self, ctx: StudyContext) -> list[Cell]:
        model = ctx.options.models[0]
        cells = [baseline_cell(ctx)] if ctx.args["baseline"] else []
        for img, txt in ctx.args["lambdas"]:
            cells.append(Cell(f"img={img:g}_txt={txt:g}", {"setting": f"img {img:g} / txt {txt:g}",
                                                           "lambda_img": img, "lambda_txt": txt}, model))
        return cells

    def compute(self, ctx: StudyContext, cell: Cell, digest: str) -> dict[str, Any]:
        if cell.key == BASELINE_KEY:
            return baseline(ctx, cell, digest)
        weights = {"lambda_img": cell.params["lambda_img"], "lambda_txt": cell.params["lambda_txt"]}
        return train_and_evaluate(ctx, cell, digest, method_options={**ctx.options.method_options, **weights})

    def columns(self, ctx: StudyContext) -> list[Column]:
        return [Column("setting", "lambda", "text"), *accuracy_columns(ctx)]

    def plot(self, ctx: StudyContext, rows: Sequence[dict[str, Any]], path: Path) -> None:
        bars = [(r["setting"] if r.get("method") == "none" else f"MMCoA weights {r['setting']}",
                 [r.get(m) for m in MODALITIES], [bool(r.get("unreliable"))] * len(MODALITIES),
                 [error_bar(r, m) for m in MODALITIES]) for r in rows]
        bar_plot(path, [m.replace("_", "-") for m in MODALITIES], bars, ylabel="accuracy (%)",
                 xlabel="evaluation (clean, or under the attack of that modality)",
                 title=f"{ctx.options.models[0]} on {ctx.options.dataset}: {describe_training(ctx)}",
                 note=error_bar_note(rows))
