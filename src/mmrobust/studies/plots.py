"""Plots of a study (matplotlib, Agg backend, written atomically as PNG).

Points from cells whose evaluation was marked unreliable are circled in red and the figure says so, so a
plot never shows a failed-check number as if it were a normal one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ..utils.files import atomic_write

UNRELIABLE_NOTE = "red circle = evaluation failed a sanity check (unreliable)"


@dataclass
class Series:
    """One line: x and y values (y None = missing), per-point unreliable flags, a label and a style."""

    label: str
    xs: list[float]
    ys: list[float | None]
    unreliable: list[bool] = field(default_factory=list)
    linestyle: str = "-"
    marker: str = "o"
    color: str | None = None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _wrap(title: str, width: int = 100) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(title, width)) or title


def _save(fig, path: Path) -> None:
    plt = _pyplot()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def line_plot(
    path: Path,
    series: Sequence[Series],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    percent: bool = True,
    hlines: Sequence[tuple[str, float, str | None]] = (),
    point_labels: Sequence[tuple[float, float, str]] = (),
) -> None:
    """Lines with markers; ``hlines`` are ``(label, y, color)`` reference levels (e.g. before fine-tuning)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.4))
    scale = 100.0 if percent else 1.0
    any_unreliable = False
    for s in series:
        pts = [(x, y, s.unreliable[i] if i < len(s.unreliable) else False)
               for i, (x, y) in enumerate(zip(s.xs, s.ys)) if y is not None]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [scale * p[1] for p in pts], linestyle=s.linestyle, marker=s.marker,
                label=s.label, color=s.color)
        bad = [p for p in pts if p[2]]
        if bad:
            any_unreliable = True
            ax.scatter([p[0] for p in bad], [scale * p[1] for p in bad], s=160, facecolors="none",
                       edgecolors="red", linewidths=1.5, zorder=5)
    for i, (label, y, color) in enumerate(hlines):
        ax.axhline(scale * y, linestyle=":", linewidth=1.2, color=color or f"C{(len(series) + i) % 10}", label=label)
    for x, y, text in point_labels:
        ax.annotate(text, (x, scale * y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if percent:
        ax.set_ylim(-2, 102)
    ax.set_title(_wrap(title), fontsize=8)
    if any_unreliable:
        ax.text(0.01, 0.01, UNRELIABLE_NOTE, transform=ax.transAxes, fontsize=7, color="red")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    _save(fig, path)


def bar_plot(
    path: Path,
    groups: Sequence[str],
    bars: Sequence[tuple[str, list[float | None], list[bool]]],
    *,
    ylabel: str,
    title: str,
) -> None:
    """Grouped bars: one group per entry of ``groups``, one bar per ``(label, values, unreliable)``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(10.0, max(6.0, 0.5 * len(groups) * max(len(bars), 1))), 4.2))
    width = 0.8 / max(len(bars), 1)
    any_unreliable = False
    for i, (label, values, unreliable) in enumerate(bars):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(groups))]
        heights = [100 * (v or 0.0) for v in values]
        edge = ["red" if (k < len(unreliable) and unreliable[k]) else "none" for k in range(len(values))]
        any_unreliable |= any(e == "red" for e in edge)
        ax.bar(xs, heights, width, label=label, edgecolor=edge, linewidth=1.5)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.set_title(_wrap(title), fontsize=8)
    if any_unreliable:
        ax.text(0.01, 0.95, "red outline = unreliable evaluation", transform=ax.transAxes, fontsize=7, color="red")
    ax.legend(fontsize=7)
    _save(fig, path)
