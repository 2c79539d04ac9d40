"""Render finished study folders as the markdown tables of bench/RESULTS_findings.md (issue 15).

Why a script: the RESULTS file must be reproducible from the runs, not hand-copied. It reads each study's
``table.json`` (written by ``mmrobust study ... --seeds``) and prints

* one table: each row's accuracies as ``mean ± sd [t 95 % interval of the mean over seeds]``;
* the study's own paired comparisons with its reference row (pooled paired bootstrap 95 % interval, exact
  McNemar p, and the t interval of the per-seed differences, which is the one that counts training noise);
* with ``--versus OTHER_DIR``: each row against the row of the same setting in another study, on the same
  images (e.g. MMCoA vs TeCoA at equal shots), computed here with the toolkit's own ``compare_rows``.

Usage:  python bench/findings_tables.py runs/findings/f4-mmcoa [--versus runs/findings/f4-tecoa]
            [--columns clean,image,...] [--compare ood_image,ood_multimodal] [--reference ROW]
        python bench/findings_tables.py runs/findings/f6-train-eps-0.5 runs/findings/f6-params ... --sweep-row full
            --sweep-reference runs/findings/f6-params     (one row across a sweep of study folders)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from mmrobust.studies.intervals import compare_rows

TITLES = {"clean": "clean", "image": "image", "text": "text", "multimodal": "multimodal", "worst_case": "worst case",
          "ood_clean": "OOD clean", "ood_image": "OOD image", "ood_text": "OOD text",
          "ood_multimodal": "OOD multimodal", "ood_worst_case": "OOD worst case"}
ALL = tuple(TITLES)


def cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None:
        return "–"
    text = f"{100 * value:.1f}"
    sd = (row.get("sd") or {}).get(key)
    if sd is not None:
        text += f" ± {100 * sd:.1f}"
    interval = (row.get("mean_ci") or row.get("ci") or {}).get(key)
    if interval:
        text += f" [{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"
    return text


def difference(entry: dict[str, Any] | None) -> str:
    if not entry or "difference" not in entry:
        return (entry or {}).get("note", "–")
    text = f"{100 * entry['difference']:+.1f} [{100 * entry['low']:+.1f}, {100 * entry['high']:+.1f}] p={entry['p_value']:.2g}"
    if "seed_low" in entry:
        text += f"; seeds [{100 * entry['seed_low']:+.1f}, {100 * entry['seed_high']:+.1f}]"
    return text


def markdown(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(line) + " |" for line in lines]]


def render(folder: Path, columns: Sequence[str], compare: Sequence[str], versus: Path | None,
           reference: str | None = None) -> str:
    table = json.loads((folder / "table.json").read_text())
    rows = table["rows"]
    if reference is not None:  # the same paired comparisons as `--reference`, without rerunning the study
        [ref] = [r for r in rows if reference in (r["setting"], r["key"])]
        table["reference"] = reference
        table["comparisons"] = [{"row": r["setting"], "columns": compare_rows(r, ref, compare)}
                                for r in rows if r is not ref]
    columns = [c for c in columns if any(r.get(c) is not None for r in rows)]
    out = [f"`{folder}` — {table.get('title', '')}; seeds {table.get('seeds')}; accuracy in %, "
           "mean ± sd [t 95 % interval of the mean over seeds]:", ""]
    out += markdown(["row", *[TITLES[c] for c in columns]], [[r["setting"], *[cell(r, c) for c in columns]] for r in rows])
    if table.get("comparisons"):
        out += ["", f"Paired differences vs `{table['reference']}` (points; pooled paired bootstrap 95 % interval, "
                    "exact McNemar p; seeds = t 95 % interval of the per-seed differences):", ""]
        out += markdown(["row", *[TITLES[c] for c in compare]],
                        [[c["row"], *[difference(c["columns"].get(k)) for k in compare]] for c in table["comparisons"]])
    if versus is not None:
        other = {r["setting"]: r for r in json.loads((versus / "table.json").read_text())["rows"]}
        pairs = [(r, other[r["setting"]]) for r in rows if r["setting"] in other and r.get("method") != "none"]
        out += ["", f"`{folder.name}` − `{versus.name}`, row by row on the same images (same notation):", ""]
        out += markdown(["row", *[TITLES[c] for c in compare]],
                        [[a["setting"], *[difference(compare_rows(a, b, compare).get(k)) for k in compare]]
                         for a, b in pairs])
    return "\n".join(out)


def render_sweep(folders: Sequence[Path], row: str, key: str, columns: Sequence[str], compare: Sequence[str],
                 reference: Path) -> str:
    """One row (``row``) from each study folder of a sweep over the option ``key`` (e.g. ``train_eps``): its
    accuracies, and its paired differences with the same row of ``reference``, on the same images."""
    def value(table: dict[str, Any]) -> str:
        v = table["config"][key]
        return f"{v * 255:g}" if key.endswith("eps") else f"{v}"

    tables = {folder: json.loads((folder / "table.json").read_text()) for folder in folders}
    pick = {f: next(r for r in t["rows"] if r["setting"] == row) for f, t in tables.items()}
    ref_table = json.loads((reference / "table.json").read_text())
    ref = next(r for r in ref_table["rows"] if r["setting"] == row)
    base = next(r for r in ref_table["rows"] if r.get("method") == "none")
    head = [key + (" (/255)" if key.endswith("eps") else ""), *[TITLES[c] for c in columns]]
    out = [f"Row `{row}` across the sweep (accuracy in %, mean ± sd [t 95 % interval of the mean over seeds]):", ""]
    out += markdown(head, [[base["setting"], *[cell(base, c) for c in columns]]]
                    + [[value(tables[f]), *[cell(pick[f], c) for c in columns]] for f in folders])
    out += ["", f"Each − {key} {value(ref_table)}, on the same images (points; pooled paired bootstrap 95 % interval, "
                "exact McNemar p; seeds = t 95 % interval of the per-seed differences):", ""]
    out += markdown([head[0], *[TITLES[c] for c in compare]],
                    [[value(tables[f]), *[difference(compare_rows(pick[f], ref, compare).get(c)) for c in compare]]
                     for f in folders if f != reference])
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, nargs="+", help="a study folder (several with --sweep-row)")
    parser.add_argument("--columns", default=",".join(ALL))
    parser.add_argument("--compare", default="clean,image,text,multimodal,worst_case,ood_worst_case")
    parser.add_argument("--versus", type=Path)
    parser.add_argument("--reference", help="compare with this row (setting or key) instead of the study's reference")
    parser.add_argument("--sweep-row", help="tabulate this row of every folder (a sweep over --sweep-key)")
    parser.add_argument("--sweep-key", default="train_eps", help="the option the sweep varies (default train_eps)")
    parser.add_argument("--sweep-reference", type=Path, help="the sweep's folder every other is compared with")
    args = parser.parse_args()
    columns, compare = args.columns.split(","), args.compare.split(",")
    if args.sweep_row:
        print(render_sweep(args.folder, args.sweep_row, args.sweep_key, columns, compare,
                           args.sweep_reference or args.folder[0]))
    else:
        print(render(args.folder[0], columns, compare, args.versus, args.reference))


if __name__ == "__main__":
    main()
