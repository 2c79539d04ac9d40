"""Benchmark cells -> rows with 95 % intervals, OOD averages, the IID row apart, paired model comparisons.

Columns are attack families as the study reports them: clean, image, text, multimodal and the worst case
over all attacks (an image counts as robust in a family only if it survives every attack of that family).
Accuracies carry Wilson intervals (:mod:`mmrobust.stats`); with several models every model is compared
with the first on the *same images* (exact McNemar, paired bootstrap of the difference).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..stats import Z95, format_interval, mcnemar_exact, paired_bootstrap, wilson_interval

FAMILIES = ("clean", "image", "text", "multimodal", "worst_case")
FAMILY_TITLES = {"clean": "clean", "image": "image", "text": "text", "multimodal": "multimodal",
                 "worst_case": "worst case"}
BOOTSTRAP_RESAMPLES = 2000


def family_vectors(report: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per-example correctness per family, from a report's ``per_example`` block."""
    per_example = report.get("per_example") or {}
    if "clean" not in per_example:
        return {}
    vectors = {"clean": np.asarray(per_example["clean"], dtype=bool)}
    attacks = report.get("metrics", {}).get("attacks", {})
    standalone = _standalone_families(report, attacks)
    for name, block in attacks.items():
        family = block.get("modality")
        if family in standalone and name in per_example:
            robust = np.asarray(per_example[name], dtype=bool)
            vectors[family] = vectors[family] & robust if family in vectors else robust
    if attacks and "worst_case" in per_example:
        vectors["worst_case"] = np.asarray(per_example["worst_case"], dtype=bool)
    return vectors


def _standalone_families(report: dict[str, Any], attacks: dict[str, Any]) -> set[str]:
    """Families whose per-attack outcomes are standalone: all of them under ``--ensemble each``; under the
    cascade only the leading family (a later attack only saw what the earlier ones spared: cumulative)."""
    ensemble = report.get("ensemble") or {}
    if ensemble.get("mode") != "cascade":
        return set(FAMILIES)
    order = [attacks[n].get("modality") for n in ensemble.get("order", []) if n in attacks]
    return {order[0]} if order else set()


def verdict(report: dict[str, Any]) -> str:
    """The cell's reliability verdict, from its sanity checks."""
    sanity = report.get("sanity")
    if sanity is None:
        return "clean only (no attack to check)"
    if not sanity.get("ran"):
        return f"unchecked ({sanity.get('reason', 'sanity checks did not run')})"
    if report.get("unreliable"):
        return f"UNRELIABLE (failed: {', '.join(sanity.get('failed', [])) or '?'})"
    return "reliable (sanity checks passed)"


def family_block(correct: np.ndarray) -> dict[str, Any]:
    n, k = int(correct.size), int(correct.sum())
    low, high = wilson_interval(k, n)
    return {"accuracy": k / n if n else float("nan"), "n_correct": k, "n": n, "low": low, "high": high}


def cell_row(model: str, item: str, report: dict[str, Any], path: str, reused: bool, role: str) -> dict[str, Any]:
    vectors = family_vectors(report)
    return {
        "model": model, "dataset": item, "role": role, "status": "ok", "dataset_spec": report["dataset"]["name"],
        "n": int(report["n_samples"]), "indices_sha256": report["sampling"]["indices_sha256"],
        "families": {f: family_block(v) for f, v in vectors.items()}, "verdict": verdict(report),
        "report": path, "reused": reused,
    }


def missing_row(model: str, item: str, role: str, status: str, message: str) -> dict[str, Any]:
    return {"model": model, "dataset": item, "role": role, "status": status, "message": message, "families": {},
            "n": 0, "verdict": status}


def average_row(model: str, rows: Sequence[dict[str, Any]], protocol: str | None = None) -> dict[str, Any]:
    """Mean accuracy over the model's OOD datasets that ran (under ``protocol``, with several presets); the
    interval treats datasets as independent samples (normal approximation: sd of the mean = sqrt(sum p(1-p)/n) / k)."""
    ood = [r for r in rows if r["model"] == model and r["role"] == "ood" and r["status"] == "ok"
           and r.get("protocol") == protocol]
    families: dict[str, Any] = {}
    for family in FAMILIES:
        blocks = [r["families"][family] for r in ood if family in r["families"] and r["families"][family]["n"]]
        if not blocks:
            continue
        k = len(blocks)
        mean = sum(b["accuracy"] for b in blocks) / k
        sd = math.sqrt(sum(b["accuracy"] * (1 - b["accuracy"]) / b["n"] for b in blocks)) / k
        low, high = (blocks[0]["low"], blocks[0]["high"]) if k == 1 else (  # one dataset: its own Wilson interval
            max(0.0, mean - Z95 * sd), min(1.0, mean + Z95 * sd))
        families[family] = {"accuracy": mean, "low": low, "high": high, "n_datasets": k, "n": sum(b["n"] for b in blocks)}
    return {"model": model, "dataset": "average (OOD)", "role": "average", "status": "ok" if families else "empty",
            "families": families, "n": sum(r["n"] for r in ood), "n_datasets": len(ood),
            "verdict": f"mean over {len(ood)} OOD dataset(s)", **({"protocol": protocol} if protocol else {})}


def paired_rows(rows: Sequence[dict[str, Any]], reports: dict[tuple, dict[str, Any]],
                models: Sequence[str], seed: int) -> list[dict[str, Any]]:
    """Every model vs the first one, per dataset (and protocol, with several presets) and family, on the same
    images. ``reports`` is keyed (model, dataset) or, with protocols, (model, dataset, protocol)."""
    if len(models) < 2:
        return []
    reference = models[0]
    by_key = {(r["model"], r["dataset"]) + ((r["protocol"],) if r.get("protocol") else ()): r
              for r in rows if r["status"] == "ok" and r["role"] != "average"}
    out = []
    for model in models[1:]:
        for key, row in by_key.items():
            m, rest = key[0], key[1:]
            ref = by_key.get((reference,) + rest)
            if m != model or ref is None or ref["indices_sha256"] != row["indices_sha256"]:
                continue
            item = rest[0]
            tag = {"protocol": rest[1]} if len(rest) > 1 else {}
            a, b = family_vectors(reports[key]), family_vectors(reports[(reference,) + rest])
            for family in FAMILIES:
                if family in a and family in b:
                    test = mcnemar_exact(a[family], b[family])
                    diff = paired_bootstrap(a[family], b[family], BOOTSTRAP_RESAMPLES, seed)
                    out.append({"model": model, "reference": reference, "dataset": item, "family": family,
                                "difference": diff.difference, "low": diff.low, "high": diff.high,
                                "mcnemar_p": test.p_value, "only_model": test.b, "only_reference": test.c,
                                "n": test.n, **tag})
    return out


def families_present(rows: Sequence[dict[str, Any]]) -> list[str]:
    present = {f for r in rows for f in r["families"]}
    return [f for f in FAMILIES if f in present]


RETRIEVAL_DIRECTIONS = {"t2i": "text->image R@1", "i2t": "image->text R@1"}


def _metric_blocks(row: dict[str, Any], block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(metric name, block) pairs: accuracy for classification; recall@1 per direction for retrieval, whose
    ``accuracy`` is only the heat map's mean of the two."""
    if row.get("task") == "retrieval":
        return [(RETRIEVAL_DIRECTIONS[d], {**block[d], "accuracy": block[d]["recall"]}) for d in RETRIEVAL_DIRECTIONS]
    return [("accuracy", block)]


def csv_lines(rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """One line per row, family and metric; the ``accuracy`` column holds the metric's value."""
    header = ["model", "dataset", "role", "status", "family", "accuracy", "ci_low", "ci_high", "n", "n_correct",
              "verdict", "dataset_spec", "message", "metric", "attack", "protocol"]
    lines: list[list[Any]] = [header]
    for r in rows:
        protocol = r.get("protocol") or ""  # the preset, with several --preset protocols
        if not r["families"]:
            lines.append([r["model"], r["dataset"], r["role"], r["status"], "", "", "", "", r["n"], "",
                          r["verdict"], r.get("dataset_spec", ""), r.get("message", ""), "", "", protocol])
        for family, block in r["families"].items():
            for metric, b in _metric_blocks(r, block):
                lines.append([r["model"], r["dataset"], r["role"], r["status"], family, round(b["accuracy"], 6),
                              round(b["low"], 6), round(b["high"], 6), b["n"], b.get("n_correct", ""), r["verdict"],
                              r.get("dataset_spec", ""), r.get("message", ""), metric, block.get("attack", ""),
                              protocol])
    return lines


def _retrieval_lines(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The model's retrieval table: recall@1 both directions per family (its strongest attack)."""
    families = families_present(rows)
    lines = ["### Image–text retrieval", "",
             "Recall@1 in % (text→image over captions / image→text over images) with 95 % Wilson intervals; "
             "each family shows its strongest attack (named). Recall is what the model keeps, not the attack's "
             "success rate (that is in each cell's report).", "",
             "| dataset | images | " + " | ".join(FAMILY_TITLES[f] for f in families) + " | verdict |",
             "|---|---:|" + "---:|" * len(families) + "---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['dataset']} | – | " + " | ".join("–" for _ in families)
                         + f" | {r['status']}: {r.get('message', '')} |")
            continue
        cells = []
        for family in families:
            block = r["families"].get(family)
            if block is None:
                cells.append("–")
                continue
            text = " / ".join(format_interval(block[d]["recall"], block[d]["low"], block[d]["high"])
                              for d in RETRIEVAL_DIRECTIONS)
            cells.append(text + (f" ({block['attack']})" if "attack" in block else ""))
        lines.append(f"| {r['dataset']} | {r['n']} | " + " | ".join(cells) + f" | {r['verdict']} |")
    return lines + [""]


def markdown(rows: Sequence[dict[str, Any]], paired: Sequence[dict[str, Any]], models: Sequence[str],
             title: str, labels: dict[str, str] | None = None, protocols: Sequence[str] | None = None) -> str:
    names = {m: (f"{labels[m]} (`{m}`)" if labels and m in labels else m) for m in models}
    if protocols:
        return protocols_markdown(rows, paired, models, title, names, protocols)
    families = families_present([r for r in rows if r["role"] != "retrieval"]) or ["clean"]
    head = "| dataset | n | " + " | ".join(FAMILY_TITLES[f] for f in families) + " | verdict |"
    rule = "|---|---:|" + "---:|" * len(families) + "---|"
    lines = [f"# {title}", "", "Accuracy in % with 95 % Wilson intervals (average row: normal approximation over "
             "datasets). The IID row is kept apart from the OOD average, as the study reports it.", ""]
    for model in models:
        lines += [f"## {names[model]}", "", head, rule]
        mine = [r for r in rows if r["model"] == model]
        for role in ("ood", "average", "iid"):
            for r in (x for x in mine if x["role"] == role):
                name = {"average": f"**{r['dataset']}**", "iid": f"IID: {r['dataset']}"}.get(role, r["dataset"])
                if role == "iid":
                    lines.append("| | | " + " | ".join("" for _ in families) + " | |")
                if r["status"] != "ok":
                    lines.append(f"| {name} | – | " + " | ".join("–" for _ in families)
                                 + f" | {r['status']}: {r.get('message', '')} |")
                    continue
                cells = [format_interval(r["families"][f]["accuracy"], r["families"][f]["low"], r["families"][f]["high"])
                         if f in r["families"] else "–" for f in families]
                lines.append(f"| {name} | {r['n']} | " + " | ".join(cells) + f" | {r['verdict']} |")
        lines.append("")
        retrieval = [r for r in mine if r["role"] == "retrieval"]
        if retrieval:
            lines += _retrieval_lines(retrieval)
    lines += paired_lines(paired, names, labels or {}, with_protocol=False)
    return "\n".join(lines)


def paired_lines(paired: list[dict[str, Any]], names: dict[str, str], labels: dict[str, str],
                 with_protocol: bool) -> list[str]:
    """The paired-differences section (each model vs the reference on the same images; within a protocol when
    the table has several)."""
    if not paired:
        return []
    reference = names.get(paired[0]["reference"], paired[0]["reference"])
    protocol = (" | protocol", "---|") if with_protocol else ("", "")
    lines = [f"## Paired differences vs {reference} (same images{', same protocol' if with_protocol else ''})", "",
             f"| model{protocol[0]} | dataset | family | difference (points) [95 % bootstrap] | McNemar p | "
             f"only model / only ref |", f"|---|{protocol[1]}---|---|---:|---:|---:|"]
    for p in paired:
        where = f" | {p.get('protocol', '')}" if with_protocol else ""
        lines.append(f"| {labels.get(p['model'], p['model'])}{where} | {p['dataset']} | {FAMILY_TITLES[p['family']]} | "
                     f"{100 * p['difference']:+.1f} [{100 * p['low']:+.1f}, {100 * p['high']:+.1f}] | "
                     f"{p['mcnemar_p']:.3g} | {p['only_model']} / {p['only_reference']} |")
    return lines + [""]


def _ranks(values: dict[str, float]) -> dict[str, int]:
    """Competition ranks, highest first (ties share a rank)."""
    return {k: 1 + sum(1 for other in values.values() if other > v) for k, v in values.items()}


def protocol_ranks(rows: Sequence[dict[str, Any]], models: Sequence[str],
                   protocols: Sequence[str]) -> dict[str, Any]:
    """Per dataset (and the OOD average): each protocol's rank of every model by worst-case robust accuracy,
    and the datasets whose ranking differs between protocols (``changes``)."""
    by = {(r["model"], r["dataset"], r.get("protocol")): r for r in rows
          if r["role"] != "retrieval" and r["status"] == "ok" and "worst_case" in r["families"]}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows if r["role"] in ("ood", "iid", "average")))
    ranks: dict[str, dict[str, dict[str, int]]] = {}
    for item in datasets:
        per = {p: _ranks({m: by[(m, item, p)]["families"]["worst_case"]["accuracy"] for m in models
                          if (m, item, p) in by}) for p in protocols}
        ranks[item] = {p: r for p, r in per.items() if r}
    changes = [item for item, per in ranks.items()
               if len(per) > 1 and len({tuple(r.get(m) for m in models) for r in per.values()}) > 1]
    return {"by_dataset": ranks, "changes": changes}


def protocols_markdown(rows: Sequence[dict[str, Any]], paired: Sequence[dict[str, Any]], models: Sequence[str],
                       title: str, names: dict[str, str], protocols: Sequence[str]) -> str:
    """``benchmark --preset a,b,c``: one column group per protocol, every protocol on the same images.

    First the ranking table (worst-case robust accuracy per protocol with each model's rank among the models,
    per dataset), so a ranking change between protocols shows in one row; then per model its families, one
    group of columns per protocol (clean once: it is the same images and predictions under every protocol).
    """
    by = {(r["model"], r["dataset"], r.get("protocol")): r for r in rows if r["role"] != "retrieval"}
    datasets = list(dict.fromkeys(r["dataset"] for r in rows if r["role"] in ("ood", "iid")))
    datasets += ["average (OOD)"] if any(r["role"] == "average" for r in rows) else []
    lines = [f"# {title}", "", f"Protocols (`--preset`): {', '.join(protocols)}; every protocol on the same images "
             "(same seed and sample). Accuracy in % with 95 % Wilson intervals (average row: normal approximation "
             "over datasets).", "", "## Worst-case robust accuracy by protocol (rank among the models)", "",
             "| dataset | model | " + " | ".join(protocols) + " |", "|---|---|" + "---:|" * len(protocols)]
    for item in datasets:
        ranks = {}
        for p in protocols:
            scores = {m: by[(m, item, p)]["families"]["worst_case"]["accuracy"] for m in models
                      if (m, item, p) in by and by[(m, item, p)]["status"] == "ok"
                      and "worst_case" in by[(m, item, p)]["families"]}
            ranks[p] = _ranks(scores)
        for m in models:
            cells = []
            for p in protocols:
                block = (by.get((m, item, p)) or {}).get("families", {}).get("worst_case")
                cells.append("–" if block is None else
                             f"{format_interval(block['accuracy'], block['low'], block['high'])} #{ranks[p][m]}")
            name = f"**{item}**" if item == "average (OOD)" else item
            lines.append(f"| {name} | {names[m]} | " + " | ".join(cells) + " |")
    changes = protocol_ranks(rows, models, protocols)["changes"]
    lines += ["", "Ranking changes between protocols: " + (", ".join(changes) if changes else "none") + ".", ""]
    groups = {p: [f for f in families_present([r for r in rows if r.get("protocol") == p and r["role"] != "retrieval"])
                  if f != "clean"] for p in protocols}
    head = ("| dataset | n | clean | " + " | ".join(f"{p}: {FAMILY_TITLES[f]}" for p in protocols for f in groups[p])
            + " | verdict |")
    rule = "|---|---:|---:|" + "---:|" * sum(len(g) for g in groups.values()) + "---|"
    for model in models:
        lines += [f"## {names[model]}", "", head, rule]
        for item in datasets:
            mine = [by.get((model, item, p)) for p in protocols]
            first = next((r for r in mine if r is not None and r["status"] == "ok"), None)
            if first is None:
                status = next((f"{r['status']}: {r.get('message', '')}" for r in mine if r is not None), "–")
                lines.append(f"| {item} | – | – | " + " | ".join("–" for g in groups.values() for _ in g)
                             + f" | {status} |")
                continue
            clean = first["families"].get("clean")
            cells = [format_interval(clean["accuracy"], clean["low"], clean["high"]) if clean else "–"]
            for p, r in zip(protocols, mine):
                for f in groups[p]:
                    block = None if r is None else r["families"].get(f)
                    cells.append("–" if block is None else format_interval(block["accuracy"], block["low"], block["high"]))
            verdicts = "; ".join(f"{p}: {r['verdict']}" for p, r in zip(protocols, mine) if r is not None)
            label = {"average (OOD)": f"**{item}**"}.get(item, item)
            lines.append(f"| {label} | {first['n']} | " + " | ".join(cells) + f" | {verdicts} |")
        lines.append("")
    lines += paired_lines(paired, names, names, with_protocol=True)
    return "\n".join(lines)
