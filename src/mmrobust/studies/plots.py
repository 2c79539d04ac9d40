"""Plots of a study (matplotlib, Agg backend, written atomically as PNG).

Points from cells whose evaluation was marked unreliable are circled in red and the figure says so, so a
plot never shows a failed-check number as if it were a normal one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..utils.files import atomic_write
from .intervals import error_bar

UNRELIABLE_NOTE = "red circle = evaluation failed a sanity check (unreliable)"


@dataclass
class Series:
    """One line: x and y values (y None = missing), per-point unreliable flags and 95 % intervals, a label
    and a style."""

    label: str
    xs: list[float]
    ys: list[float | None]
    unreliable: list[bool] = field(default_factory=list)
    linestyle: str = "-"
    marker: str = "o"
    color: str | None = None
    #: per-point (low, high) error bars (None = no bar)
    intervals: list[tuple[float, float] | None] = field(default_factory=list)

    @classmethod
    def from_rows(cls, label: str, xs: Sequence[float], rows: Sequence[dict[str, Any]], key: str,
                  **style: Any) -> "Series":
        """y = ``row[key]``, its error bar and unreliable flag, one point per row."""
        return cls(label, list(xs), [r.get(key) for r in rows], [bool(r.get("unreliable")) for r in rows],
                   intervals=[error_bar(r, key) for r in rows], **style)


@dataclass(frozen=True)
class Level:
    """A horizontal reference level (e.g. before fine-tuning, or an eps-free text accuracy) and its band."""

    label: str
    y: float
    color: str | None = None
    interval: tuple[float, float] | None = None


def error_lengths(values: Sequence[float | None], intervals: Sequence[tuple[float, float] | None],
                  scale: float = 100.0) -> list[list[float]]:
    """matplotlib's ``yerr`` (lengths below, above) from intervals; 0 where none, never negative (a Wilson bound
    at 0 % or 100 % can differ from the value by a rounding error)."""
    pairs = [(0.0, 0.0) if v is None or iv is None else (scale * (v - iv[0]), scale * (iv[1] - v))
             for v, iv in zip(values, intervals)]
    return [[max(0.0, p[0]) for p in pairs], [max(0.0, p[1]) for p in pairs]]


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
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight"))
    plt.close(fig)


def _finish_axes(ax, title: str, note: str) -> None:
    """Title with what the error bars are, legend outside the axes: no text covers a point, a bar or a label."""
    ax.set_title(_wrap(title) + (f"\n{note}" if note else ""), fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def line_plot(
    path: Path,
    series: Sequence[Series],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    percent: bool = True,
    levels: Sequence[Level] = (),
    xticks: Sequence[tuple[float, str]] = (),
    note: str = "",
    full_range: bool = True,
) -> None:
    """Lines with markers and error bars; ``levels`` are reference levels drawn with their interval as a band;
    ``xticks`` replace the numeric ticks (e.g. category names). The legend sits outside the axes. Percentages
    span 0–100 % unless ``full_range`` is False (then the axis fits the data: small effects stay visible)."""
    plt = _pyplot()
    from matplotlib.transforms import ScaledTranslation

    fig, ax = plt.subplots(figsize=(9, 4.6))
    scale = 100.0 if percent else 1.0
    any_unreliable = False
    for index, s in enumerate(series):
        pts = [(x, y, s.unreliable[i] if i < len(s.unreliable) else False,
                s.intervals[i] if i < len(s.intervals) else None)
               for i, (x, y) in enumerate(zip(s.xs, s.ys)) if y is not None]
        if not pts:
            continue
        color = s.color or f"C{index % 10}"
        xs, ys = [p[0] for p in pts], [scale * p[1] for p in pts]
        yerr = error_lengths([p[1] for p in pts], [p[3] for p in pts], scale) if any(p[3] for p in pts) else None
        # a few points to the side per series, so error bars at the same x stay apart (values unchanged)
        # (after plotting, so the axis limits still come from the data)
        shift = ScaledTranslation(0.05 * (index - (len(series) - 1) / 2), 0, fig.dpi_scale_trans)
        drawn = ax.errorbar(xs, ys, yerr=yerr, linestyle=s.linestyle, marker=s.marker, label=s.label,
                            color=color, capsize=3, elinewidth=1)
        data_line, caps, bars = drawn.lines
        for artist in (data_line, *caps, *bars):
            if artist is not None:
                artist.set_transform(ax.transData + shift)
        bad = [p for p in pts if p[2]]
        if bad:
            ax.scatter([p[0] for p in bad], [scale * p[1] for p in bad], s=160, facecolors="none",
                       edgecolors="red", linewidths=1.5, zorder=5, label=None if any_unreliable else UNRELIABLE_NOTE)
            any_unreliable = True
    for i, level in enumerate(levels):
        color = level.color or f"C{(len(series) + i) % 10}"
        ax.axhline(scale * level.y, linestyle=":", linewidth=1.2, color=color, label=level.label)
        if level.interval is not None:
            ax.axhspan(scale * level.interval[0], scale * level.interval[1], color=color, alpha=0.08)
    if logx:
        ax.set_xscale("log")
    if xticks:
        ax.set_xticks([x for x, _ in xticks], [text for _, text in xticks], fontsize=8)
        ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if percent and full_range:
        ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    _finish_axes(ax, title, note)
    _save(fig, path)


def bar_plot(
    path: Path,
    groups: Sequence[str],
    bars: Sequence[tuple[str, list[float | None], list[bool], list[tuple[float, float] | None]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    note: str = "",
) -> None:
    """Grouped bars with error bars: one group per ``groups`` entry, one bar per
    ``(label, values, unreliable, intervals)``; the legend sits outside the axes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(11.0, max(7.0, 0.5 * len(groups) * max(len(bars), 1))), 4.4))
    width = 0.8 / max(len(bars), 1)
    any_unreliable = False
    for i, (label, values, unreliable, intervals) in enumerate(bars):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j in range(len(groups))]
        heights = [100 * (v or 0.0) for v in values]
        yerr = error_lengths(values, intervals)
        edge = ["red" if (k < len(unreliable) and unreliable[k]) else "none" for k in range(len(values))]
        any_unreliable |= any(e == "red" for e in edge)
        ax.bar(xs, heights, width, label=label, edgecolor=edge, linewidth=1.5, yerr=yerr, capsize=2,
               error_kw={"elinewidth": 1})
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 105)  # room for an error bar that reaches 100 %
    ax.grid(alpha=0.3, axis="y")
    if any_unreliable:
        ax.bar([0], [0], 0, facecolor="none", edgecolor="red", linewidth=1.5, label="red outline = unreliable evaluation")
    _finish_axes(ax, title, note)
    _save(fig, path)
