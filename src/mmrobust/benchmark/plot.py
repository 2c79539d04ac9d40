"""The benchmark heat map: datasets x attack families, one panel per model, values in %.

OOD datasets on top, then their average, then (apart) the IID dataset, then (apart, labelled "(R@1)") the
retrieval datasets with the mean of their two recall@1 values; missing datasets are grey rows that say
so, and unreliable cells are marked with "!", so no figure shows a number it cannot stand by.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..utils.files import atomic_write
from .table import FAMILY_TITLES, families_present


def _panel_rows(rows: Sequence[dict[str, Any]], model: str, protocol: str | None = None) -> list[dict[str, Any] | None]:
    """OOD rows, the average, a gap (None) and the IID rows, then a gap and the retrieval rows."""
    mine = [r for r in rows if r["model"] == model and r.get("protocol") == protocol]
    ordered: list[dict[str, Any] | None] = [r for r in mine if r["role"] == "ood"]
    ordered += [r for r in mine if r["role"] == "average"]
    for role in ("iid", "retrieval"):
        apart = [r for r in mine if r["role"] == role]
        ordered += [None] + apart if apart else []
    return ordered


def _label(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    prefix = "IID: " if row["role"] == "iid" else ""
    suffix = " (R@1)" if row["role"] == "retrieval" else ""
    return prefix + _short(row["dataset"], 32 - len(prefix) - len(suffix)) + suffix


def _short(item: str, width: int = 32) -> str:
    """Row labels: a wds folder path shows its last part (the table keeps the full spec)."""
    if item.startswith("wds:") and ("/" in item[4:]) and len(item) > width:
        item = "wds:…/" + item.rstrip("/").rpartition("/")[2]
    return item if len(item) <= width else item[: width - 1] + "…"


def heatmap(rows: Sequence[dict[str, Any]], models: Sequence[str], path: Path, title: str,
            model_labels: dict[str, str] | None = None, protocols: Sequence[str] | None = None) -> Path:
    """One panel per model; with several ``--preset`` protocols one per (model, protocol), titled both."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    families = families_present(rows) or ["clean"]
    keys = [(m, p) for m in models for p in (protocols or [None])]
    panels = [_panel_rows(rows, m, p) for m, p in keys]
    height = max(len(p) for p in panels)
    fig, axes = plt.subplots(1, len(keys), figsize=(1.4 * len(families) * len(keys) + 3, 0.45 * height + 2),
                             squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    image = None
    for ax, (model, protocol), panel in zip(axes[0], keys, panels):
        values = np.full((len(panel), len(families)), np.nan)
        labels = []
        for i, row in enumerate(panel):
            labels.append(_label(row))
            for j, family in enumerate(families):
                if row is not None and family in row["families"]:
                    values[i, j] = 100 * row["families"][family]["accuracy"]
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
        for i, row in enumerate(panel):
            if row is None:  # the gap between the OOD block and the IID row
                ax.axhspan(i - 0.5, i + 0.5, color="white")
            for j, family in enumerate(families):
                if row is None:
                    continue
                if row["status"] != "ok":
                    text = row["status"] if j == 0 else ""
                else:
                    text = "–" if np.isnan(values[i, j]) else f"{values[i, j]:.1f}"
                    text += "!" if row.get("verdict", "").startswith("UNRELIABLE") and text != "–" else ""
                color = "white" if not np.isnan(values[i, j]) and values[i, j] < 50 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color,
                        fontweight="bold" if row["role"] == "average" else "normal")
        ax.set_xticks(range(len(families)), [FAMILY_TITLES[f] for f in families], rotation=30, ha="right")
        if ax is axes[0][0]:
            ax.set_yticks(range(len(panel)), labels)
        else:
            ax.tick_params(labelleft=False)
        ax.set_title((model_labels or {}).get(model, model) + (f" · {protocol}" if protocol else ""), fontsize=10)
        ax.set_xlabel("attack family")
    axes[0][0].set_ylabel("dataset")
    retrieval = any(r["role"] == "retrieval" for r in rows)
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.03,
                 label="accuracy (%)" + ("; (R@1) rows: mean recall@1, both directions (%)" if retrieval else ""))
    fig.suptitle(f"{title}   (! = cell failed a sanity check; grey = not available)", fontsize=10, y=1.01)

    def _write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")

    try:
        return atomic_write(path, _write)
    finally:
        plt.close(fig)
