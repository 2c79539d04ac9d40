"""Study ``classes``: attack strength vs. number of classes (the study's finding 2).

Each cell is a k-way zero-shot task on a seeded subset of k classes (nested: the 5-class task contains the
2-class one) and the images of those classes, evaluated clean and under the study's attacks. The quantity of
interest is the *drop* (clean minus attacked accuracy): a one-word change of a class prompt only has to
bring it closer to some other class, and with more classes there are more to be closer to.

Images per cell are ``min(--n-eval, images of the k classes)``, so small k may use fewer images (the table
shows n). Chance level 1/k is in the table: a drop near clean - 1/k means the attack reaches chance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError
from ..training.config import eps_label
from .base import Study
from .grid import Cell
from .options import StudyOptions, parse_list, positive_int
from .intervals import error_bar_note
from .plots import Series, line_plot
from .runner import StudyContext, evaluate
from .tables import Column

DEFAULT_CLASSES = "2,5,10"
ATTACKED = ("text", "image", "multimodal")


class ClassesStudy(Study):
    name = "classes"
    title = "Attack strength vs. number of classes"
    #: each drop is clean - attacked on the same images: a paired interval (cells have different images)
    paired_columns = {f"{m}_drop": ("clean", m) for m in ATTACKED}

    def parse_args(self, raw: dict[str, Any], options: StudyOptions) -> dict[str, Any]:
        if not options.attack_names():
            raise ConfigError("study classes needs at least one attack (all of --image/--text/--multimodal-attack are none)")
        ks = sorted(parse_list(raw.get("classes", DEFAULT_CLASSES), "--classes", positive_int))
        if ks[0] < 2:
            raise ConfigError("--classes: a task needs at least 2 classes")
        return {"classes": ks}

    def check(self, ctx: StudyContext) -> None:
        n = len(ctx.eval_dataset().classes)
        too_many = [k for k in ctx.args["classes"] if k > n]
        if too_many:
            raise ConfigError(f"--classes {too_many} exceed the {n} classes of {ctx.options.dataset}")

    def cells(self, ctx: StudyContext) -> list[Cell]:
        model = ctx.options.models[0]
        return [Cell(f"k={k}", {"classes": k}, model) for k in ctx.args["classes"]]

    def compute(self, ctx: StudyContext, cell: Cell, digest: str) -> dict[str, Any]:
        k = cell.params["classes"]
        return evaluate(ctx, ctx.pinned[cell.model].pinned_spec, ctx.report_path(cell, digest), classes=k)

    def row(self, ctx: StudyContext, record) -> dict[str, Any]:
        row = super().row(ctx, record)
        row["chance"] = 1.0 / row["classes"]
        for modality in ATTACKED:
            value = row.get(modality)
            row[f"{modality}_drop"] = None if value is None or row["clean"] is None else row["clean"] - value
        return row

    def default_reference(self, ctx: StudyContext) -> str | None:
        """None: every k has its own images, so rows cannot be paired; the drops carry paired intervals."""
        return None

    def label(self, row: dict[str, Any]) -> str:
        return f"k={row['classes']}"

    def columns(self, ctx: StudyContext) -> list[Column]:
        o = ctx.options
        return [Column("classes", "classes", "int"), Column("n", "n", "int"), Column("chance", "chance"),
                Column("clean", "clean"), Column("text", f"text ({o.text_attack})"),
                Column("image", f"image ({o.image_attack})"), Column("multimodal", f"multimodal ({o.multimodal_attack})"),
                Column("text_drop", "text drop", "pp"), Column("image_drop", "image drop", "pp"),
                Column("multimodal_drop", "mm drop", "pp"), Column("reliability", "checks", "text")]

    def plot(self, ctx: StudyContext, rows: Sequence[dict[str, Any]], path: Path) -> None:
        rows = sorted(rows, key=lambda r: r["classes"])
        xs = [r["classes"] for r in rows]
        series = [Series.from_rows(f"{m} attack: drop (clean - attacked)", xs, rows, f"{m}_drop", color=f"C{i}")
                  for i, m in enumerate(ATTACKED)]
        # the largest possible drop of an attack that only pushes accuracy to chance level
        series.append(Series("clean - chance (1/k)", xs, [None if r["clean"] is None else r["clean"] - r["chance"]
                                                           for r in rows], linestyle=":", marker="", color="grey"))
        o = ctx.options
        line_plot(path, series, xlabel="number of classes k (count)", ylabel="accuracy drop (percentage points)",
                  note=error_bar_note(rows).replace("Wilson", "paired bootstrap"),
                  title=f"{o.models[0]} on {o.dataset}: attack strength vs. classes "
                        f"(eps {eps_label(o.eval_eps)}, {o.text_words} word(s), text goal {o.text_goal})", logx=len(xs) > 1 and xs[-1] / xs[0] >= 20)
