"""Study ``eps``: accuracy vs. perturbation strength, for one or more models (e.g. undefended vs. defended).

Each cell is one model at one budget eps = k/255, evaluated with the study's image, text and multimodal
attacks on the same images. Text attacks do not depend on eps (their column is repeated per budget, a free
check that the evaluation is deterministic). The plot starts every line at eps = 0 with the clean accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from .base import Study
from .grid import Cell, slug
from .options import NONE, StudyOptions, eps_value, parse_list
from .intervals import error_bar, error_bar_note
from .plots import Level, Series, line_plot
from .runner import StudyContext, evaluate
from .tables import Column

DEFAULT_EPS = "2,4,8,16,32"


class EpsStudy(Study):
    name = "eps"
    title = "Accuracy vs. perturbation strength"
    max_models = 8

    def parse_args(self, raw: dict[str, Any], options: StudyOptions) -> dict[str, Any]:
        if options.image_attack == NONE and options.multimodal_attack == NONE:
            raise ConfigError("study eps needs an image or multimodal attack (--image-attack / --multimodal-attack)")
        return {"eps": sorted(parse_list(raw.get("eps", DEFAULT_EPS), "--eps", eps_value))}

    def cells(self, ctx: StudyContext) -> list[Cell]:
        return [Cell(f"{slug(model)}_eps={eps:g}", {"eps": eps}, model)
                for model in ctx.options.models for eps in ctx.args["eps"]]

    def compute(self, ctx: StudyContext, cell: Cell, digest: str) -> dict[str, Any]:
        return evaluate(ctx, ctx.pinned[cell.model].pinned_spec, ctx.report_path(cell, digest),
                        eps=cell.params["eps"] / 255)  # cells keep the K of K/255 users typed

    def default_reference(self, ctx: StudyContext) -> str | None:
        """The first --model (e.g. the undefended one) at the same eps; one model alone: no comparison."""
        return ctx.options.models[0] if len(ctx.options.models) > 1 else None

    def group(self, row: dict[str, Any]) -> Any:
        return row.get("eps")

    def label(self, row: dict[str, Any]) -> str:
        return f"{row['model']} @ eps {row['eps']:g}/255"

    def columns(self, ctx: StudyContext) -> list[Column]:
        return [Column("model", "model", "text"), Column("eps", "eps (k/255)", "float"), Column("clean", "clean"),
                Column("image", f"image ({ctx.options.image_attack})"),
                Column("text", f"text ({ctx.options.text_attack})"),
                Column("multimodal", f"multimodal ({ctx.options.multimodal_attack})"),
                Column("worst_case", "worst-case"), Column("n", "n", "int"), Column("reliability", "checks", "text")]

    def plot(self, ctx: StudyContext, rows: Sequence[dict[str, Any]], path: Path) -> None:
        """Image accuracy starts at eps 0 = clean (exact: a zero budget is no attack); the multimodal line
        starts at the smallest budget (its text half bites even at eps 0); text is a level (eps-free)."""
        series, levels = [], []
        for m_index, model in enumerate(ctx.options.models):
            mine = sorted((r for r in rows if r["model"] == model), key=lambda r: r["eps"])
            if not mine:
                continue
            color = f"C{m_index % 10}"
            eps = [r["eps"] for r in mine]
            if any(r.get("image") is not None for r in mine):
                line = Series.from_rows(f"{model}: image", eps, mine, "image", color=color)
                clean = Series.from_rows("", [0.0], mine[:1], "clean")
                series.append(Series(line.label, [0.0] + line.xs, clean.ys + line.ys, [False] + line.unreliable,
                                     color=color, intervals=clean.intervals + line.intervals))
            if any(r.get("multimodal") is not None for r in mine):
                series.append(Series.from_rows(f"{model}: multimodal", eps, mine, "multimodal", linestyle="--",
                                               marker="s", color=color))
            if mine[0].get("text") is not None:
                levels.append(Level(f"{model}: text (eps-free)", mine[0]["text"], color, error_bar(mine[0], "text")))
        o = ctx.options
        line_plot(path, series, xlabel="eps (k/255 of the pixel range, L-inf)", ylabel="accuracy (%)", levels=levels,
                  title=f"{o.dataset} (n={rows[0]['n'] if rows else o.n_eval}), {o.image_attack}-{o.eval_steps}, "
                        f"text {o.text_attack} ({o.text_goal}), multimodal {o.multimodal_attack}; eps 0 = clean",
                  note=error_bar_note(rows))
