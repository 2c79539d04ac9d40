"""Markdown for bench/RESULTS_defense.md from bench/defense_protocols.sh's benchmark folders (issue 24, deliverable 5).

Reads each FOLDER/table.json (one folder per training seed; rows, Wilson intervals, paired tests vs the first
model = TeCoA, ranks by worst-case robust accuracy per protocol, all computed by `mmrobust benchmark`), the cell
reports (wall time, sanity checks) and the run's logs/times.txt (fine-tune wall times). Nothing is computed here
but the seed mean/sd and the table layout.

    python bench/defense_protocols_table.py runs/defense_protocols/proxy-digits [--seeds 0,1,2] > table.md
    python bench/defense_protocols_table.py runs/defense_protocols/proxy-digits --into bench/RESULTS_defense.md

``--into FILE`` replaces the block between FILE's ``<!-- defense_protocols_table begin -->`` and
``<!-- defense_protocols_table end -->`` lines with the rendered tables.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path


def label(spec: str) -> str:
    m = re.search(r"seed-\d+/([^/]+)/final$", spec)
    return m.group(1) if m else f"none (`{spec}`)"


def pct(block: dict | None) -> str:
    if not block:
        return "–"
    return f"{100 * block['accuracy']:.1f} [{100 * block['low']:.1f}, {100 * block['high']:.1f}]"


def eps_text(eps: float | None) -> str:
    return "each preset's own eps" if not eps else f"{255 * eps:g}/255 (--eps override)"


def train_times(run: Path) -> dict[str, str]:
    out = {}
    times = run / "logs" / "times.txt"
    if times.exists():
        for line in times.read_text().splitlines():
            m = re.match(r"== (\S+)\s+(done|FAILED rc=\d+) in (\d+) s\s+load (.*)", line)
            if m:
                out[m.group(1)] = f"{m.group(3)} s" + ("" if m.group(2) == "done" else f" ({m.group(2)})") \
                    + f" (load {m.group(4)})"
    return out


def seed_section(folder: Path, seed: str, times: dict[str, str]) -> tuple[list[str], dict]:
    """The seed's tables: the IID set first, then each OOD set and their average (where the run has OOD sets);
    the seed summary (mean over seeds) is taken from the IID table."""
    table = json.loads((folder / "table.json").read_text())
    models = table["models"]
    if len(models) < 2:  # only the un-fine-tuned model's step has run: the seed is unfinished
        return [f"#### Training seed {seed}: unfinished (only `{models[0]}` scored; rerun bench/defense_protocols.sh)",
                ""], {}
    items = [table["iid"]] + [d for d in table["datasets"] if d != table["iid"]]
    items += ["average (OOD)"] if len(items) > 1 else []
    lines, summary = [], {}
    for item in items:
        more, acc = dataset_section(folder, seed, table, item)
        lines += more
        if item == table["iid"]:
            summary = acc
    return lines + _times(seed, times), summary


def dataset_section(folder: Path, seed: str, table: dict, item: str) -> tuple[list[str], dict]:
    presets, models = table["presets"], table["models"]
    ref = models[0]
    role = "iid" if item == table["iid"] else "average" if item == "average (OOD)" else "ood"
    rows = {(r["model"], r.get("protocol")): r for r in table["rows"]
            if r["dataset"] == item and r["role"] == role and r["status"] == "ok"}
    paired = {(p["model"], p.get("protocol"), p["family"]): p for p in table["paired"] if p["dataset"] == item}
    ranks = table["ranking"]["by_dataset"].get(item, {})
    what = {"iid": "IID", "ood": "OOD (zero-shot)", "average": "mean over the OOD sets"}[role]
    lines = [f"#### Training seed {seed}, {what}: {item} (`{folder}`; n = {table['n_requested']} images per set, "
             f"evaluation seed {table['seed']}, every protocol at L-inf "
             f"{eps_text(table['eps'])})", "",
             "Robust = worst case over the protocol's attacks. Δ = paired difference vs "
             f"{label(ref)} on the same images, points [95 % paired bootstrap], McNemar p; # = rank among the "
             f"{len(models)} models (competition ranks, ties share).", "",
             "| defense | clean | " + " | ".join(f"{p}: robust | {p}: Δ vs {label(ref)} (p) | #" for p in presets)
             + " | eval wall (s) | sanity |",
             "|---|---:|" + "---:|---:|---:|" * len(presets) + "---:|---|"]
    summary: dict = {"presets": presets, "acc": {}}
    for model in models:
        first = rows.get((model, presets[0]))
        if first is None:
            continue
        cells = [pct(first["families"].get("clean"))]
        wall, checks = 0.0, []
        for p in presets:
            r = rows.get((model, p))
            robust = None if r is None else r["families"].get("worst_case")
            d = paired.get((model, p, "worst_case"))
            cells += [pct(robust), "ref." if model == ref else "–" if d is None else
                      f"{100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}] "
                      f"({d['mcnemar_p']:.2g})", str(ranks.get(p, {}).get(model, "–"))]
            if r is not None and "report" in r:
                rep = json.loads((folder / r["report"]).read_text())
                t = rep.get("timings", {})
                wall += t.get("robust_eval_s", 0) + t.get("sanity_s", 0) + t.get("clean_eval_s", 0)
                s = rep.get("sanity") or {}
                checks.append("ok" if s.get("ran") and not rep.get("unreliable") else
                              "FAILED " + ",".join(s.get("failed", [])) if s.get("ran") else "unchecked")
            if r is not None:
                summary["acc"].setdefault(label(model), {})[p] = robust["accuracy"] if robust else None
            summary["acc"].setdefault(label(model), {})["clean"] = first["families"]["clean"]["accuracy"]
        sanity = "–" if not checks else "all ok" if all(c == "ok" for c in checks) else "; ".join(checks)
        lines.append(f"| {label(model)} | " + " | ".join(cells) + f" | {wall:.0f} | {sanity} |")
    changes = table["ranking"]["changes"]
    weakest = {}  # per model: which protocol leaves the lowest robust accuracy (the strongest attack here)
    for model in models:
        acc = {p: rows[(model, p)]["families"]["worst_case"]["accuracy"] for p in presets if (model, p) in rows}
        if acc:
            low = min(acc.values())
            weakest.setdefault(" = ".join(p for p in presets if acc.get(p) == low), []).append(label(model))
    lines += ["", "Strongest protocol (lowest robust accuracy) per model: " + "; ".join(
        f"{p}: {len(ms)} of {len(models)} models" for p, ms in weakest.items()) + "."]
    order = []
    for p in presets:
        r = ranks.get(p, {})
        order.append(f"{p}: " + " > ".join(", ".join(label(m) for m in r if r[m] == k) for k in sorted(set(r.values()))))
    lines += ["", "Order by robust accuracy (ties in one group): " + "; ".join(order) + ".", ""]
    lines += [f"Ranking changes between protocols on {item} (table.json `ranking.changes`): "
              + ("yes" if item in changes else "none") + ".", ""]
    clean_d = [(label(m), paired.get((m, presets[0], "clean"))) for m in models[1:]]
    lines += ["Clean accuracy, paired vs " + label(ref) + ": " + "; ".join(
        f"{name} {100 * d['difference']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
        for name, d in clean_d if d) + ".", ""]
    return lines, summary


def _times(seed: str, times: dict[str, str]) -> list[str]:
    lines: list[str] = []
    tt = [(k.split("_", 2)[2], v) for k, v in times.items() if k.startswith(f"train_s{seed}_")]
    bt = [(k.split("_", 2)[2], v) for k, v in times.items() if k.startswith(f"bench_s{seed}_")]
    if tt:
        lines += ["Fine-tune wall times (script steps, `times.txt`): " + "; ".join(f"{m} {v}" for m, v in tt) + ".", ""]
    if bt:
        lines += ["Benchmark step wall times (interpreter start, model load, three protocols with sanity checks): "
                  + "; ".join(f"{m} {v}" for m, v in bt) + ".", ""]
    return lines


def seeds_summary(summaries: dict[str, dict]) -> list[str]:
    presets = next(iter(summaries.values()))["presets"]
    names = list(dict.fromkeys(n for s in summaries.values() for n in s["acc"]))
    cols = ["clean"] + presets
    lines = [f"#### Over training seeds {', '.join(summaries)}: mean ± sd of accuracy (%), rank of the mean", "",
             "| defense | seeds | " + " | ".join(f"{c} | #" for c in cols) + " |",
             "|---|---:|" + "---:|---:|" * len(cols)]
    means: dict[str, dict[str, float]] = {}
    for n in names:
        for c in cols:
            vals = [s["acc"][n][c] for s in summaries.values() if n in s["acc"] and s["acc"][n].get(c) is not None]
            if vals:
                means.setdefault(c, {})[n] = (statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0,
                                              len(vals))
    for n in names:
        cells, k = [], 0
        for c in cols:
            if n not in means.get(c, {}):
                cells += ["–", "–"]
                continue
            m, sd, k = means[c][n]
            rank = 1 + sum(1 for other in means[c].values() if other[0] > m)
            cells += [f"{100 * m:.1f} ± {100 * sd:.1f}", str(rank)]
        lines.append(f"| {n} | {k} | " + " | ".join(cells) + " |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="bench/defense_protocols.sh's OUT folder")
    ap.add_argument("--seeds", default=None, help="comma list (default: every bench-seedN with a table.json)")
    ap.add_argument("--into", type=Path, default=None, help="replace the marked block of this markdown file")
    args = ap.parse_args()
    seeds = args.seeds.split(",") if args.seeds else sorted(
        p.name.removeprefix("bench-seed") for p in args.run.glob("bench-seed*") if (p / "table.json").exists())
    times = train_times(args.run)
    out, summaries = [], {}
    for seed in seeds:
        folder = args.run / f"bench-seed{seed}"
        if not (folder / "table.json").exists():
            continue
        lines, summary = seed_section(folder, seed, times)
        out += lines
        if summary:
            summaries[seed] = summary
    if len(summaries) > 1:
        out += seeds_summary(summaries)
    text = "\n".join(out)
    if args.into is None:
        print(text)
        return
    doc = args.into.read_text()
    begin, end = "<!-- defense_protocols_table begin -->", "<!-- defense_protocols_table end -->"
    if begin not in doc or end not in doc:
        raise SystemExit(f"{args.into} has no {begin} ... {end} block")
    head, rest = doc.split(begin, 1)
    args.into.write_text(head + begin + "\n\n" + text.strip() + "\n\n" + end + rest.split(end, 1)[1])


if __name__ == "__main__":
    main()
