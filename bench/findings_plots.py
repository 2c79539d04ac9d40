"""The figures of bench/RESULTS_findings.md that combine study folders or add the OOD columns (issue 15).

Why: each study's own ``plot.png`` shows one study on the fine-tuning set (IID). Findings 1, 4, 5 and 6 are
claims across studies (MMCoA vs TeCoA at equal shots, a sweep of training budgets) and about OOD accuracy, so
these figures put the IID and the OOD columns side by side. They are drawn with the toolkit's own plot
functions (legend outside the axes, error bars = 95 % t interval of the mean over seeds).

Usage (after bench/findings.sh):
  python bench/findings_plots.py bars runs/findings/f1f5-kl -o bench/findings_f1_f5_proxy_tinyimagenet.png
  python bench/findings_plots.py size runs/findings/f4-tecoa runs/findings/f4-mmcoa [--scope iid] -o bench/findings_f4_ood_proxy_tinyimagenet.png
  python bench/findings_plots.py bars runs/findings/f6-params -o bench/findings_f6_params_proxy_tinyimagenet.png
  python bench/findings_plots.py train-eps runs/findings/f6-params runs/findings/f6-train-eps-* -o bench/findings_f6_train_eps_proxy_tinyimagenet.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from mmrobust.studies.intervals import error_bar, error_bar_note
from mmrobust.studies.plots import Level, Series, bar_plot, line_plot

FAMILIES = ("clean", "image", "text", "multimodal", "worst_case")
EPS_255 = 255.0


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "table.json").read_text())


def short(key: str) -> str:
    return key.replace("ood_", "OOD ").replace("_", "-")


def describe(table: dict[str, Any]) -> str:
    c = table["config"]
    return (f"{', '.join(c['models'])}, fine-tuned on {c['dataset']} (IID) and zero-shot on {c['ood_datasets']} (OOD); "
            f"eval PGD-{c['eval_steps']} at {c['eval_eps'] * EPS_255:g}/255, text {c['text_attack']} "
            f"({c['text_goal']}), multimodal {c['multimodal_attack']}")


def label(table: dict[str, Any], row: dict[str, Any]) -> str:
    """A row's legend entry; the loss-ablation rows say what their weights are weights of."""
    if table.get("study") == "loss-ablation" and row.get("method") != "none":
        return f"MMCoA, weights {row['setting']}"
    if table.get("study") == "params" and row.get("method") != "none":
        return f"{row['setting']} ({row['trained_parameters']:,} parameters trained)"
    return row["setting"]


def bars(folder: Path, out: Path) -> None:
    """One bar per row (fine-tuned rows by trained-parameter count), grouped by column: IID, then OOD."""
    table = load(folder)
    rows = sorted(table["rows"], key=lambda r: (r.get("method") != "none", r.get("trained_parameters") or 0))
    keys = [k for k in (*FAMILIES, *(f"ood_{f}" for f in FAMILIES)) if any(r.get(k) is not None for r in rows)]
    groups = [("OOD\n" + short(k[4:])) if k.startswith("ood_") else f"IID\n{short(k)}" for k in keys]
    bar_plot(out, groups, [(label(table, r), [r.get(k) for k in keys], [bool(r.get("unreliable"))] * len(keys),
                            [error_bar(r, k) for k in keys]) for r in rows],
             xlabel="evaluation (IID = fine-tuning set's test split; OOD = zero-shot on the other set)",
             ylabel="accuracy (%)", title=f"{table['title']}: {describe(table)}", note=error_bar_note(rows))


def size(folders: Sequence[Path], out: Path, scope: str = "ood") -> None:
    """Accuracy vs fine-tuning images: colour = column, line style and marker = method (one study each)."""
    prefix = "ood_" if scope == "ood" else ""
    keys = [f"{prefix}{k}" for k in ("image", "multimodal", "worst_case")]
    series, levels, title, note = [], [], "", ""
    for index, folder in enumerate(folders):
        table = load(folder)
        method = table["config"]["method"]
        base = [r for r in table["rows"] if r.get("method") == "none"]
        trained = sorted((r for r in table["rows"] if r.get("method") != "none"), key=lambda r: r["n_train_images"])
        xs = [r["n_train_images"] for r in trained]
        for j, key in enumerate(keys):
            series.append(Series.from_rows(f"{method}: {scope.upper()} {short(key.removeprefix('ood_'))}", xs, trained,
                                           key, color=f"C{j}", linestyle=("-", "--", ":")[index % 3],
                                           marker="os^"[index % 3]))
        if base and index == 0:
            levels = [Level(f"not fine-tuned: {scope.upper()} {short(k.removeprefix('ood_'))}", base[0][k],
                            color=f"C{j}", interval=error_bar(base[0], k))
                      for j, k in enumerate(keys) if base[0].get(k) is not None]
        note, title = error_bar_note(table["rows"]), f"{table['title']}: {describe(table)}"
    line_plot(out, series, xlabel="fine-tuning images (count, log scale)",
              ylabel=f"{scope.upper()} accuracy (%)", logx=True, title=title, levels=levels, note=note,
              full_range=False)


def train_eps(folders: Sequence[Path], out: Path) -> None:
    """Accuracy vs the training perturbation's size, from `study params --modes full` runs at several eps."""
    points = []
    for folder in folders:
        table = load(folder)
        full = [r for r in table["rows"] if r.get("setting") == "full"]
        if full:
            points.append((table["config"]["train_eps"] * EPS_255, full[0], table))
    points.sort(key=lambda p: p[0])
    xs = [p[0] for p in points]
    rows = [p[1] for p in points]
    keys = ("clean", "image", "multimodal", "worst_case", "ood_clean", "ood_worst_case")
    series = [Series.from_rows(short(k) if k.startswith("ood_") else f"IID {short(k)}", xs, rows, k,
                               color=f"C{i}", linestyle="-" if k.startswith("ood_") else "--") for i, k in enumerate(keys)]
    base = [r for r in points[0][2]["rows"] if r.get("method") == "none"]
    levels = [Level(f"not fine-tuned: {'IID ' if not k.startswith('ood_') else ''}{short(k)}", base[0][k],
                    color=f"C{keys.index(k)}", interval=error_bar(base[0], k))
              for k in ("clean", "ood_clean") if base and base[0].get(k) is not None]
    line_plot(out, series, xlabel="training PGD budget (K/255, log scale)", ylabel="accuracy (%)", logx=True,
              title=f"Full MMCoA fine-tuning vs training eps: {describe(points[0][2])}", levels=levels,
              xticks=[(x, f"{x:g}") for x in xs], note=error_bar_note(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=("bars", "size", "train-eps"))
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("-o", "--out", type=Path, required=True)
    parser.add_argument("--scope", choices=("ood", "iid"), default="ood", help="size: which columns (default ood)")
    args = parser.parse_args()
    if args.kind == "bars":
        bars(args.folders[0], args.out)
    elif args.kind == "size":
        size(args.folders, args.out, args.scope)
    else:
        train_eps(args.folders, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
