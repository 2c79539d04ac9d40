"""Pieces shared by the fine-tuning studies (train-size, loss-ablation, params): the reference cell, the
accuracy columns, and the "before fine-tuning" reference lines of their plots."""

from __future__ import annotations

from typing import Any, Sequence

from ..training.config import eps_label
from .grid import Cell
from .intervals import error_bar
from .plots import Level
from .runner import MODALITIES, StudyContext
from .tables import Column

BASELINE_KEY = "none"


def baseline_cell(ctx: StudyContext) -> Cell:
    return Cell(BASELINE_KEY, {"setting": "none (not fine-tuned)"}, ctx.options.models[0])


def accuracy_columns(ctx: StudyContext) -> list[Column]:
    o = ctx.options
    return [Column("clean", "clean"), Column("image", f"image ({o.image_attack})"),
            Column("text", f"text ({o.text_attack})"), Column("multimodal", f"multimodal ({o.multimodal_attack})"),
            Column("worst_case", "worst-case"), Column("n", "n", "int"), Column("reliability", "checks", "text")]


def split_baseline(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    base = next((r for r in rows if r.get("method") == "none"), None)
    return base, [r for r in rows if r is not base]


def baseline_lines(base: dict[str, Any] | None, modalities: Sequence[str] = MODALITIES) -> list[Level]:
    """The model before fine-tuning as dotted levels, its 95 % interval as a faint band."""
    if base is None:
        return []
    return [Level(f"{m.replace('_', '-')}, not fine-tuned", base[m], f"C{i}", error_bar(base, m))
            for i, m in enumerate(modalities) if base.get(m) is not None]


def setting_ticks(rows: Sequence[dict[str, Any]], x_key: str, fmt: str = "{:,}") -> list[tuple[float, str]]:
    """One x tick per distinct x value, naming every setting there ("4-shot / 40 images"): labels never
    overlap as point annotations at equal x did."""
    by_x: dict[float, list[str]] = {}
    for r in rows:
        by_x.setdefault(r[x_key], []).append(str(r["setting"]))
    return [(x, " / ".join(names) + "\n(" + fmt.format(x) + ")") for x, names in sorted(by_x.items())]


def describe_training(ctx: StudyContext) -> str:
    o = ctx.options
    return (f"{o.method}, {o.epochs} epoch(s), batch {o.train_batch_size}, lr {o.lr:g}, "
            f"train eps {eps_label(o.train_eps)} x {o.train_steps} steps; eval eps {eps_label(o.eval_eps)}, "
            f"text goal {o.text_goal}")
