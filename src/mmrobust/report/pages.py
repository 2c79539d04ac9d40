"""What a report page shows, per kind of run: plain blocks (key/value lists, tables, images, galleries).

Each ``*_page`` function reads one kind of output and returns ``{"title", "subtitle", "alerts", "blocks"}``;
:mod:`.render` turns that into HTML with a jinja2 template (autoescaped: every text here, including class
names, prompts and captions from datasets and models, is data, never markup). Images are read as bytes and
inlined as ``data:image/png;base64`` URIs, so the page is one file that needs no network.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ConfigError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: adversarial class prompts listed per text attack (the changed ones first)
MAX_PROMPTS = 40


# ---------------------------------------------------------------------------------------- small helpers
def data_uri(png: bytes) -> str | None:
    """A ``data:`` URI of PNG bytes (None if they are not a PNG)."""
    if not png.startswith(PNG_MAGIC):
        return None
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def file_uri(path: Path) -> str | None:
    try:
        return data_uri(path.read_bytes())
    except OSError:
        return None


def pct(value: Any, digits: int = 2) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    return f"{100 * value:.{digits}f}"


def interval(low: Any, high: Any, digits: int = 1) -> str:
    if low is None or high is None:
        return ""
    return f"[{pct(low, digits)}, {pct(high, digits)}]"


def number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def short_json(value: Any, limit: int = 300) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (int, float, bool)) or value is None:
        text = number(value)
    else:
        text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def kv_block(title: str, items: Mapping[str, Any] | None, skip: Iterable[str] = ()) -> dict[str, Any] | None:
    if not items:
        return None
    skip = set(skip)
    return {"type": "kv", "title": title,
            "items": [(str(k), short_json(v)) for k, v in items.items() if k not in skip]}


def table_block(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], note: str | None = None,
                css: str = "") -> dict[str, Any]:
    """``rows`` of cells: a string, or ``{"text": ..., "cls": "bad"|"good"|...}``."""
    norm = [[c if isinstance(c, dict) else {"text": str(c)} for c in row] for row in rows]
    return {"type": "table", "title": title, "columns": list(columns), "rows": norm, "note": note, "css": css}


def image_block(title: str, uri: str | None, caption: str | None = None) -> dict[str, Any] | None:
    return None if uri is None else {"type": "image", "title": title, "uri": uri, "caption": caption}


def load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not an mmrobust report (a JSON object was expected)")
    return data


def segments(text: str, spans: Sequence[Sequence[int]]) -> list[dict[str, Any]]:
    """``text`` cut into plain and marked pieces (the template wraps marked ones in <mark>)."""
    out, at = [], 0
    for start, end in sorted((int(s), int(e)) for s, e in spans):
        if start < at or end > len(text) or start >= end:
            continue
        if start > at:
            out.append({"text": text[at:start], "mark": False})
        out.append({"text": text[start:end], "mark": True})
        at = end
    if at < len(text):
        out.append({"text": text[at:], "mark": False})
    return out


def prompt_spans(original: str, adversarial: str) -> list[list[int]]:
    from ..eval.examples import changed_spans

    return changed_spans(original, adversarial)


# ---------------------------------------------------------------------------------------- shared blocks
def sanity_block(sanity: Mapping[str, Any] | None, where: str = "") -> tuple[dict[str, Any] | None, list[dict]]:
    """The sanity-check table, and a loud alert when a check failed."""
    if not sanity:
        return None, []
    title = "Sanity checks" + (f" — {where}" if where else "")
    alerts = []
    if not sanity.get("ran", True):
        return {"type": "text", "title": title, "text": f"not run: {sanity.get('reason', 'unknown')}"}, alerts
    failed = list(sanity.get("failed") or [])
    if failed or sanity.get("unreliable"):
        alerts.append({"level": "bad", "text": f"UNRELIABLE{(' (' + where + ')') if where else ''}: failed sanity "
                                               f"check(s) {', '.join(failed) or '?'} — the robust accuracy may be "
                                               "overestimated; see the sanity block"})
    rows = []
    for name, check in (sanity.get("checks") or {}).items():
        passed = check.get("passed") if isinstance(check, dict) else None
        status = {"text": "passed", "cls": "good"} if passed else (
            {"text": "FAILED", "cls": "bad"} if passed is False else {"text": short_json(passed)})
        detail = {k: v for k, v in check.items() if k != "passed"} if isinstance(check, dict) else check
        rows.append([name, status, short_json(detail, 400)])
    if not sanity.get("checks"):
        for name in sanity.get("checks_run") or []:
            rows.append([name, {"text": "FAILED by " + ", ".join(failed), "cls": "bad"} if failed else
                         {"text": "passed", "cls": "good"}, ""])
    for name, reason in (sanity.get("checks_skipped") or {}).items():
        rows.append([name, {"text": "skipped", "cls": "muted"}, short_json(reason, 400)])
    return table_block(title, ["check", "result", "details"], rows, css="sanity"), alerts


def gallery_block(examples: Mapping[str, Any] | None, folder: Path, where: str = "") -> dict[str, Any] | None:
    """clean | adversarial | amplified perturbation, predictions before/after, prompt diffs."""
    if not examples or not examples.get("attacks"):
        return None
    attacks = []
    for name, items in examples["attacks"].items():
        cards = []
        for item in items:
            images = []
            for key, caption in (("clean_png", "clean"), ("adversarial_png", "adversarial"),
                                 ("perturbation_png", "perturbation (amplified)")):
                if item.get(key):
                    images.append({"uri": file_uri(folder / item[key]), "caption": caption, "file": item[key]})
            prompts = []
            for p in item.get("prompts") or []:
                changed = p.get("original") != p.get("adversarial")
                prompts.append({
                    "class": p.get("class"), "changed": changed,
                    "original": p.get("original", ""),
                    "segments": segments(p.get("adversarial", ""), p.get("spans") or []),
                    "collides_with": p.get("collides_with") or [],
                    "similarity": p.get("similarity"),
                })
            norms = []
            if "linf" in item:
                norms.append(f"L∞ {item['linf']:.4g} ({item.get('linf_255', item['linf'] * 255):.3g}/255)")
            if "l2" in item:
                norms.append(f"L2 {item['l2']:.4g}")
            cards.append({
                "index": item.get("dataset_index"), "label": item.get("class"), "broken": item.get("broken"),
                "consistent": item.get("consistent", True),
                "images": images, "norms": " · ".join(norms),
                "before": [(t["class"], pct(t["probability"], 1)) for t in item.get("top_before", [])],
                "after": [(t["class"], pct(t["probability"], 1)) for t in item.get("top_after", [])],
                "prompts": [p for p in prompts if p["changed"]] or prompts[:1],
                "retrieved": _retrieved(item),
            })
        attacks.append({"name": name, "cards": cards})
    note = examples.get("selection")
    if examples.get("note"):
        note = f"{note}; {examples['note']}"
    return {"type": "gallery", "title": "Examples" + (f" — {where}" if where else ""), "attacks": attacks,
            "note": note}


def _retrieved(item: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """Rows of (before, after) retrieved captions of an image query; own captions flagged."""
    before, after = item.get("retrieved_before") or [], item.get("retrieved_after") or []
    rows = []
    for i in range(max(len(before), len(after))):
        row = []
        for side in (before, after):
            if i < len(side):
                r = side[i]
                row.append({"text": f"{r.get('caption', '')}", "score": f"{r.get('similarity', 0):.3f}",
                            "own": bool(r.get("own"))})
            else:
                row.append({"text": "", "score": "", "own": False})
        rows.append(row)
    return rows


def prompts_block(attack: Mapping[str, Any]) -> dict[str, Any] | None:
    """The adversarial class prompts of a text or multimodal attack, changed words marked."""
    prompts = attack.get("prompts")
    if not prompts:
        return None
    ordered = sorted(prompts, key=lambda p: p.get("original") == p.get("perturbed"))[:MAX_PROMPTS]
    rows = []
    for p in ordered:
        original, adversarial = str(p.get("original", "")), str(p.get("perturbed", ""))
        rows.append([str(p.get("class", "")), original,
                     {"segments": segments(adversarial, prompt_spans(original, adversarial))},
                     {"text": ", ".join(map(str, p.get("collides_with") or [])) or "–",
                      "cls": "bad" if p.get("collides_with") else ""}])
    note = (f"{attack.get('n_prompts_changed', '?')} of {attack.get('n_prompts', len(prompts))} prompts changed, "
            f"{attack.get('class_name_collisions', 0)} name another class"
            + (f"; showing {len(ordered)}" if len(prompts) > len(ordered) else ""))
    block = table_block(f"Adversarial class prompts — {attack.get('name')}", ["class", "original", "adversarial",
                                                                             "collides with"], rows, note)
    block["warnings"] = list(attack.get("warnings") or [])
    return block


def versions_block(versions: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return kv_block("Versions", versions)


# ---------------------------------------------------------------------------------------- eval report
def eval_blocks(report: Mapping[str, Any], folder: Path, where: str = "") -> tuple[list[dict], list[dict]]:
    """Blocks and alerts of one evaluation report (also used for benchmark/study cells)."""
    blocks: list[dict | None] = []
    alerts: list[dict] = []
    metrics = report.get("metrics") or {}
    suffix = f" — {where}" if where else ""
    if "clean" in metrics and isinstance(metrics["clean"], dict) and "accuracy" in metrics["clean"]:
        rows = [_accuracy_row("clean", "–", metrics["clean"])]
        for name, block in (metrics.get("attacks") or {}).items():
            rows.append(_accuracy_row(name, block.get("modality", ""), block))
        if "worst_case" in metrics:
            rows.append(_accuracy_row("worst case", "all", metrics["worst_case"]))
        blocks.append(table_block(
            "Accuracy" + suffix,
            ["measure", "modality", "accuracy %", "95 % Wilson", "correct / n", "attacked", "broken",
             "attack success %", "seconds"], rows,
            f"ensemble: {(report.get('ensemble') or {}).get('note', metrics.get('ensemble', 'n/a'))}",
            css="accuracy"))
        blocks.append(_paired_block(report.get("per_example") or {}, metrics, suffix))
        by_modality = metrics.get("by_modality")
        if by_modality:
            blocks.append(table_block("By modality" + suffix, ["modality", "accuracy %"],
                                      [[k, pct(v) if not isinstance(v, str) else v] for k, v in by_modality.items()]))
    elif isinstance((metrics.get("clean") or {}).get("recall"), dict):
        blocks.append(_recall_block(metrics, suffix))
    elif metrics:
        blocks.append(table_block("Metrics" + suffix, ["metric", "value"], _flat_numbers(metrics)))
    blocks.append(gallery_block(report.get("examples"), folder, where))
    sanity, sanity_alerts = sanity_block(report.get("sanity"), where)
    blocks.append(sanity)
    alerts += sanity_alerts
    for attack in report.get("attacks") or []:
        if isinstance(attack, dict):
            block = prompts_block(attack)
            if block is not None:
                block["title"] += suffix
            blocks.append(block)
    return [b for b in blocks if b], alerts


def _accuracy_row(name: str, modality: str, block: Mapping[str, Any]) -> list[Any]:
    ci = block.get("ci95_wilson") or [None, None]
    return [name, modality, pct(block.get("accuracy")), interval(*ci),
            f"{block.get('n_correct', '?')} / {block.get('n', '?')}", block.get("n_attacked", "–"),
            block.get("n_broken", "–"),
            pct(block["attack_success_rate"], 1) if "attack_success_rate" in block else "–",
            number(block.get("seconds", "–"))]


def _paired_block(per_example: Mapping[str, Any], metrics: Mapping[str, Any], suffix: str) -> dict | None:
    """Each attack (and the worst case) against clean accuracy, on the same images."""
    from ..stats import mcnemar_exact, paired_bootstrap

    clean = per_example.get("clean")
    names = [n for n in (metrics.get("attacks") or {}) if n in per_example]
    if "worst_case" in per_example:
        names.append("worst_case")
    if not clean or not names:
        return None
    rows = []
    for name in names:
        values = per_example[name]
        if len(values) != len(clean):
            continue
        boot = paired_bootstrap(values, clean, n_resamples=2000, seed=0)
        test = mcnemar_exact(values, clean)
        rows.append([name.replace("_", " "), f"{100 * boot.difference:+.1f} [{100 * boot.low:+.1f}, "
                     f"{100 * boot.high:+.1f}]", f"{test.p_value:.3g}", f"{test.b} / {test.c}", boot.n])
    return table_block("Paired tests vs clean" + suffix,
                       ["measure", "difference (points) [95 % paired bootstrap]", "exact McNemar p",
                        "only attacked / only clean", "n"], rows,
                       "same images; percentile bootstrap over images (2,000 resamples, seed 0)")


def _recall_block(metrics: Mapping[str, Any], suffix: str) -> dict[str, Any]:
    """Retrieval: recall@1/5/10 both ways (the model's score) and attack success rate@1 (the attack's)."""
    directions = (("text_to_image", "T→I"), ("image_to_text", "I→T"))
    rows = []
    for name, block in [("clean", metrics["clean"]), *(metrics.get("attacks") or {}).items()]:
        recall, asr = block.get("recall") or {}, block.get("attack_success_rate") or {}
        rows.append([name, block.get("modality", "–"),
                     *[pct((recall.get(d) or {}).get(f"r@{k}"), 1) for d, _ in directions for k in (1, 5, 10)],
                     pct(recall.get("mean"), 1),
                     *[pct((asr.get(d) or {}).get("asr@1"), 1) if asr else "–" for d, _ in directions],
                     number(block.get("seconds", "–"))])
    return table_block("Recall %" + suffix, ["measure", "modality", *[f"{t} R@{k}" for _, t in directions
                                                                     for k in (1, 5, 10)], "mean",
                                              "ASR@1 T→I", "ASR@1 I→T", "seconds"], rows,
                       "recall: the model's score (higher = more robust); ASR@1: of the queries right at 1 on clean "
                       "data, the fraction the attack broke", css="accuracy")


def _flat_numbers(data: Any, prefix: str = "") -> list[list[str]]:
    rows: list[list[str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            rows += _flat_numbers(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        rows.append([prefix, number(data)])
    return rows


def eval_page(report: Mapping[str, Any], path: Path) -> dict[str, Any]:
    model = (report.get("model") or {}).get("spec", "?")
    dataset = report.get("dataset") or {}
    blocks, alerts = eval_blocks(report, path.parent)
    settings = {
        "task": report.get("task"), "model": model, "dataset": f"{dataset.get('name')}/{dataset.get('split')}",
        "n_samples": report.get("n_samples"), "seed": report.get("seed"), "batch_size": report.get("batch_size"),
        "device": report.get("device"), "precision": report.get("precision"), "logit_scale": report.get("logit_scale"),
        "classes": dataset.get("classes"), "templates": dataset.get("templates"),
        "classnames_file": dataset.get("classnames_file"),
        "indices_sha256": (report.get("sampling") or {}).get("indices_sha256"),
        "created_utc": report.get("created_utc"),
    }
    settings = {k: v for k, v in settings.items() if v is not None or k == "classnames_file"}
    defense = report.get("defense")
    front = [kv_block("Run", settings), kv_block("Test-time defense", defense, skip=("reference",)),
             kv_block("Threat model", report.get("threat_model")),
             kv_block("Attack options", report.get("attack_options")), kv_block("Timings", report.get("timings"))]
    if defense and not defense.get("adaptive"):
        alerts.insert(0, {"level": "warn", "text": f"Defended model ({defense.get('name')}): "
                                                  f"{defense.get('evaluation')}"})
    if report.get("unreliable"):
        alerts.insert(0, {"level": "bad", "text": "This run is marked UNRELIABLE by its sanity checks."})
    return {"title": f"{model} on {dataset.get('name', '?')}", "subtitle": f"mmrobust {report.get('task', 'eval')} "
            f"report {path.name}", "alerts": alerts,
            "blocks": [b for b in front[:2] if b] + blocks + [b for b in front[2:] + [versions_block(
                report.get("versions"))] if b]}


# ---------------------------------------------------------------------------------------- benchmark folder
def _with_protocol(dataset: Any, row: Mapping[str, Any]) -> Any:
    """``benchmark --preset a,b,c`` rows name their protocol: "digits [tecoa]"."""
    return f"{dataset} [{row['protocol']}]" if row.get("protocol") else dataset


def benchmark_page(table: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    blocks: list[dict | None] = [kv_block("Benchmark", {k: table.get(k) for k in (
        "models", "datasets", "iid", "attacks", "preset", "presets", "retrieval_attacks", "eps", "n_requested", "seed",
        "cells_run", "cells_reused", "wall_s")})]
    alerts: list[dict] = []
    families = list(dict.fromkeys(f for r in table.get("rows", []) for f in (r.get("families") or {})))
    for model in table.get("models", []):
        rows = []
        for r in table.get("rows", []):
            if r.get("model") != model:
                continue
            fam = r.get("families") or {}
            rows.append([_with_protocol(r.get("dataset"), r), r.get("role", ""), r.get("n", ""),
                         *[f"{pct(fam[f].get('accuracy'), 1)} {interval(fam[f].get('low'), fam[f].get('high'))}"
                           if f in fam else "–" for f in families],
                         {"text": r.get("verdict", r.get("status", "")),
                          "cls": "bad" if "unreliable" in str(r.get("verdict", "")).lower() else ""}])
        blocks.append(table_block(f"Accuracy % [95 % Wilson] — {model}",
                                  ["dataset", "role", "n", *[f.replace("_", " ") for f in families], "verdict"], rows,
                                  css="accuracy"))
    paired = table.get("paired") or []
    if paired:
        blocks.append(table_block(
            "Paired differences vs the reference model (same images)",
            ["model", "reference", "dataset", "family", "difference (points) [95 % bootstrap]", "McNemar p",
             "only model / only ref"],
            [[p.get("model"), p.get("reference"), _with_protocol(p.get("dataset"), p),
              str(p.get("family", "")).replace("_", " "),
              f"{100 * p['difference']:+.1f} [{100 * p['low']:+.1f}, {100 * p['high']:+.1f}]"
              if "difference" in p else p.get("note", "n/a"),
              f"{p['mcnemar_p']:.3g}" if "mcnemar_p" in p else "–",
              f"{p.get('only_model', '?')} / {p.get('only_reference', '?')}"] for p in paired]))
    for png in sorted(folder.glob("*.png")):
        blocks.append(image_block(png.name, file_uri(png)))
    versions = None
    for r in table.get("rows", []):
        cell = folder / str(r.get("report", ""))
        if not r.get("report") or not cell.is_file():
            continue
        report = load_json(cell)
        versions = versions or report.get("versions")
        cell_blocks, cell_alerts = eval_blocks(report, cell.parent, f"{r.get('model')} / {r.get('dataset')}")
        alerts += cell_alerts
        blocks += [b for b in cell_blocks if b["type"] in ("gallery",) or (b["type"] == "table" and b.get("css") == "sanity"
                                                                           and cell_alerts)]
    blocks.append(versions_block(versions))
    return {"title": table.get("title", "mmrobust benchmark"), "subtitle": str(folder), "alerts": alerts,
            "blocks": [b for b in blocks if b]}


# ---------------------------------------------------------------------------------------- study folder
def study_page(table: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    from ..studies.intervals import format_difference

    blocks: list[dict | None] = [kv_block("Study", {"study": table.get("study"), "args": table.get("args"),
                                                    "models": table.get("models"), "reference": table.get("reference"),
                                                    "seed": table.get("seed"), "cells": table.get("cells"),
                                                    "seconds": table.get("seconds")})]
    alerts: list[dict] = []
    columns = table.get("columns") or []
    rows = []
    for r in table.get("rows", []):
        cells = []
        for col in columns:
            key, kind, value = col.get("key"), col.get("kind"), r.get(col.get("key"))
            if kind == "pct":
                ci = (r.get("ci") or {}).get(key)
                cells.append(f"{pct(value, 1)} {interval(*ci) if ci else ''}".strip())
            elif key == "reliability":
                cells.append({"text": str(value), "cls": "bad" if value not in ("ok", "unchecked", None) else ""})
            else:
                cells.append(number(value) if value is not None else "–")
        rows.append(cells)
        if r.get("unreliable") or r.get("sanity_failed"):
            alerts.append({"level": "bad", "text": f"UNRELIABLE cell {r.get('key')}: failed sanity check(s) "
                                                   f"{', '.join(r.get('sanity_failed') or []) or '?'}"})
    blocks.append(table_block(table.get("title", "Study"), [c.get("title", c.get("key")) for c in columns], rows,
                              "accuracy % [95 % Wilson interval over images]", css="accuracy"))
    comparisons = table.get("comparisons") or []
    if comparisons:
        keys = list(dict.fromkeys(k for c in comparisons for k in c.get("columns", {})))
        blocks.append(table_block(
            f"Paired differences vs {table.get('reference')!r} (points [paired bootstrap 95 %], exact McNemar p)",
            ["row", "minus", *keys],
            [[c.get("row"), c.get("reference"), *[format_difference(c["columns"][k]) if k in c["columns"] else "–"
                                                  for k in keys]] for c in comparisons]))
    if table.get("notes"):
        blocks.append({"type": "list", "title": "Notes", "items": [str(n) for n in table["notes"]]})
    for png in sorted(folder.glob("*.png")):
        blocks.append(image_block(png.name, file_uri(png)))
    for r in table.get("rows", []):
        report_path = Path(str(r.get("report", "")))
        if not report_path.is_absolute():
            report_path = folder / report_path
        if r.get("report") and report_path.is_file():
            report = load_json(report_path)
            blocks.append(gallery_block(report.get("examples"), report_path.parent, str(r.get("key"))))
    blocks.append(kv_block("Configuration", table.get("config")))
    blocks.append(versions_block(table.get("versions")))
    return {"title": table.get("title", "mmrobust study"), "subtitle": f"study {table.get('study')} — {folder}",
            "alerts": alerts, "blocks": [b for b in blocks if b]}


# ---------------------------------------------------------------------------------------- training folder
def training_page(report: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    history = _read_log(folder / "log.jsonl") or list(report.get("history") or [])
    blocks: list[dict | None] = [
        kv_block("Training", {"method": report.get("method"), "model": (report.get("model") or {}).get("spec"),
                              "dataset": (report.get("config") or {}).get("dataset"),
                              **(report.get("trainable") or {})}),
        image_block("Loss and held-out accuracy", curves_png(history), "per epoch, from log.jsonl"),
    ]
    eval_keys = list(dict.fromkeys(k for h in history for k, v in (h.get("eval") or {}).items()
                                   if isinstance(v, (int, float)) and "accuracy" in k))
    loss_keys = list(dict.fromkeys(k for h in history for k, v in h.items()
                                   if k.startswith("train_") and isinstance(v, (int, float)) and not k.endswith("_s")))
    if history:
        blocks.append(table_block("History", ["epoch", "steps", *loss_keys, *[f"{k} %" for k in eval_keys]],
                                  [[h.get("epoch"), h.get("steps"), *[number(h.get(k)) for k in loss_keys],
                                    *[pct((h.get("eval") or {}).get(k)) for k in eval_keys]] for h in history],
                                  css="accuracy"))
    final = report.get("final_eval")
    if isinstance(final, dict):
        blocks.append(kv_block("Final held-out evaluation", final))
    blocks += [kv_block("Threat model", report.get("threat_model")), kv_block("Objective", report.get("objective")),
               kv_block("Data", {k: v for k, v in (report.get("data") or {}).items()}),
               kv_block("Configuration", report.get("config")), versions_block(report.get("versions"))]
    return {"title": f"{report.get('method', '?')} fine-tuning of {(report.get('model') or {}).get('spec', '?')}",
            "subtitle": str(folder), "alerts": [], "blocks": [b for b in blocks if b]}


def _read_log(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def curves_png(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Training loss and held-out accuracies per epoch, drawn with matplotlib (Agg) and inlined."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2), dpi=100)
    for key in dict.fromkeys(k for h in history for k in h if k.startswith("train_") and not k.endswith("_s")):
        ys = [h.get(key) for h in history]
        if all(isinstance(y, (int, float)) for y in ys):
            ax1.plot(x, ys, marker="o", label=key)
    ax1.set_xlabel("epoch"), ax1.set_title("training loss"), ax1.legend(fontsize=7)
    for key in dict.fromkeys(k for h in history for k in (h.get("eval") or {}) if "accuracy" in k):
        ys = [(h.get("eval") or {}).get(key) for h in history]
        if all(isinstance(y, (int, float)) for y in ys):
            ax2.plot(x, [100 * y for y in ys], marker="o", label=key)
    ax2.set_xlabel("epoch"), ax2.set_ylabel("%"), ax2.set_title("held-out accuracy"), ax2.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return data_uri(buffer.getvalue())


# ---------------------------------------------------------------------------------------- demo folder
#: demo.json's accuracy columns (the demo imports this package, not the other way round)
DEMO_COLUMNS = ("clean", "image", "text", "multimodal", "worst_case")
DEMO_TITLES = {"clean": "clean", "image": "image (PGD)", "text": "text", "multimodal": "multimodal",
               "worst_case": "worst-case"}


def demo_page(result: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """``mmrobust demo``'s table (methods x accuracies with intervals), paired tests, plot and training curves."""
    from ..studies.intervals import format_difference

    COLUMNS, COLUMN_TITLES = DEMO_COLUMNS, DEMO_TITLES

    config = result.get("config") or {}
    alerts: list[dict] = []
    rows = []
    for r in result.get("rows", []):
        ci = r.get("ci") or {}
        checks = str(r.get("checks", ""))
        rows.append([r.get("method"), *[f"{pct(r.get(c), 1)} {interval(*ci[c]) if ci.get(c) else ''}".strip()
                                        for c in COLUMNS], r.get("n", ""),
                     {"text": checks, "cls": "bad" if checks.startswith("UNRELIABLE") else ""},
                     number(r.get("trained_parameters", "–")), number(r.get("train_s", "–"))])
        if checks.startswith("UNRELIABLE"):
            alerts.append({"level": "bad", "text": f"{r.get('method')}: {checks} — its robust accuracies may be "
                                                   "overestimated"})
    blocks: list[dict | None] = [
        kv_block("Demo", {"model": config.get("model"), "dataset": config.get("dataset"), "attacks": result.get(
            "attacks"), "eps": result.get("eps"), "n_eval": config.get("n_eval"), "epochs": config.get("epochs"),
            "seed": config.get("seed"), "sanity": config.get("sanity"), "timings": result.get("timings")}),
        table_block("Accuracy % [95 % Wilson]", ["method", *[COLUMN_TITLES[c] for c in COLUMNS], "n", "checks",
                                                 "trained parameters", "train s"], rows, css="accuracy"),
    ]
    comparisons = result.get("comparisons") or []
    if comparisons:
        keys = list(dict.fromkeys(k for c in comparisons for k in c.get("columns", {})))
        blocks.append(table_block(
            "Paired differences vs no fine-tuning (points [paired bootstrap 95 %], exact McNemar p)",
            ["method", "minus", *[COLUMN_TITLES.get(k, k) for k in keys]],
            [[c.get("row"), c.get("reference"), *[format_difference(c["columns"][k]) if k in c["columns"] else "–"
                                                  for k in keys]] for c in comparisons]))
    for png in sorted(folder.glob("*.png")):
        blocks.append(image_block(png.name, file_uri(png)))
    for method, info in (result.get("training") or {}).items():
        blocks.append(image_block(f"Training — {method}", curves_png(info.get("history") or []),
                                  "loss and held-out accuracy per epoch"))
    blocks.append(kv_block("Configuration", config))
    return {"title": f"mmrobust demo: {config.get('model', '?')} on {config.get('dataset', '?')}",
            "subtitle": str(folder), "alerts": alerts, "blocks": [b for b in blocks if b]}


# ---------------------------------------------------------------------------------------- dispatch
def page_for(path: str | Path) -> dict[str, Any]:
    """The page of an eval report (file), or a benchmark, study or training folder."""
    path = Path(path)
    if path.is_dir():
        if (path / "table.json").is_file():
            table = load_json(path / "table.json")
            return study_page(table, path) if "study" in table else benchmark_page(table, path)
        if (path / "report.json").is_file():
            return page_for(path / "report.json")
        if (path / "demo.json").is_file():
            return page_for(path / "demo.json")
        raise ConfigError(f"{path}: not an mmrobust output folder (no table.json, report.json nor demo.json)")
    data = load_json(path)
    if data.get("task") == "adversarial_fine_tuning":
        return training_page(data, path.parent)
    if "study" in data and "columns" in data:
        return study_page(data, path.parent)
    if "training" in data and data.get("rows") and all("method" in r for r in data["rows"]):
        return demo_page(data, path.parent)
    if "paired" in data and "models" in data and "rows" in data:
        return benchmark_page(data, path.parent)
    if "metrics" not in data and "task" not in data:
        raise ConfigError(f"{path}: not an mmrobust report (no task/metrics)")
    return eval_page(data, path)
