"""Pieces shared by the fine-tuning studies (train-size, loss-ablation, params): the reference cell, the
accuracy columns, and the "before fine-tuning" reference lines of their plots."""

from __future__ import annotations

from typing import Any, Sequence

from ..training.config import eps_label
from .grid import Cell
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


def baseline_lines(base: dict[str, Any] | None, modalities: Sequence[str] = MODALITIES) -> list[tuple[str, float, str]]:
    if base is None:
        return []
    return [(f"{m}, not fine-tuned", base[m], f"C{i}") for i, m in enumerate(modalities) if base.get(m) is not None]


def describe_training(ctx: StudyContext) -> str:
    o = ctx.options
    return (f"{o.method}, {o.epochs} epoch(s), batch {o.train_batch_size}, lr {o.lr:g}, "
            f"train eps {eps_label(o.train_eps)} x {o.train_steps} steps; eval eps {eps_label(o.eval_eps)}, "
            f"text goal {o.text_goal}")
