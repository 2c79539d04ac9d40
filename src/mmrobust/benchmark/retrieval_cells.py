"""Retrieval cells of a benchmark: which retrieval attacks stand for the run's attack families, and the
table row of a retrieval report.

Why a mapping: ``--preset``/``--attack`` name classification attacks (APGD against class prompts,
BERT-Attack on "This is a photo of a {}"), which have no meaning on image–caption pairs. A retrieval cell
runs the retrieval attack of each *family* the run covers — image: ``pgd`` pushing each image away from
its own captions; text: the run's text recipes on each caption; multimodal: ``co-attack`` (Zhang et al.,
2022) — with the budget options (eps, steps, ...) the retrieval attacks read; ``--retrieval-attack``
chooses them explicitly. The row reports recall@1 in both directions with Wilson intervals (text→image
over captions, image→text over images; captions of one image are not independent, so the text→image
interval is somewhat optimistic), and a family's value is its *strongest* attack's recall: per-query
results are not combined across attacks, so unlike a classification row there is no per-example union.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..attacks.registry import ATTACKS
from ..attacks.retrieval.registry import RETRIEVAL_ATTACKS, parse_retrieval_attacks
from ..attacks.text.recipe_specs import default_recipe
from ..eval.run import ATTACK_FIELDS, EvalConfig
from ..stats import wilson_interval
from .table import verdict

#: the retrieval attack run for each family of the classification attacks (text: the run's recipe)
FAMILY_ATTACK = {"image": "pgd", "multimodal": "co-attack"}
DIRECTIONS = {"t2i": ("text_to_image", "n_captions"), "i2t": ("image_to_text", "n_images")}


def retrieval_attack_names(config: EvalConfig, explicit: str | None = None) -> list[str]:
    """The retrieval attacks of a retrieval cell: ``explicit`` ("none" = clean only), else one per family."""
    if explicit is not None:
        return [] if explicit.strip().lower() == "none" else parse_retrieval_attacks(explicit)
    names, _ = config.resolve_attacks()
    families = {ATTACKS[name].modality for name in names}
    chosen = [FAMILY_ATTACK["image"]] if "image" in families else []
    if "text" in families:  # the run's own text recipes (they are retrieval attacks too), else its default one
        recipes = [n for n in names if ATTACKS[n].modality == "text" and n in RETRIEVAL_ATTACKS]
        chosen += recipes or [config.text_attack or default_recipe(config.mlm)]
    if "multimodal" in families:
        chosen.append(FAMILY_ATTACK["multimodal"])
    return chosen


def retrieval_cell_config(config: EvalConfig, names: list[str]) -> EvalConfig:
    """``config`` as a retrieval run of ``names``: the preset's and the user's option values that a chosen
    retrieval attack reads are kept, the others reset to their defaults (a classification-only option,
    e.g. ``--targeted`` or ``--square-queries``, does not apply to captions)."""
    _, preset_values = config.resolve_attacks()
    given = {**preset_values, **{k: v for k, v in config.attack_values().items() if v is not None}}
    read = {f for name in names for f in RETRIEVAL_ATTACKS[name].fields}
    defaults = {f.name: f.default for f in dataclasses.fields(EvalConfig) if f.name in ATTACK_FIELDS}
    options = {k: (given[k] if k in read and k in given else defaults[k]) for k in ATTACK_FIELDS}
    return dataclasses.replace(config, task="retrieval", preset=None, attacks=list(names), **options)


def _recall_block(recall: dict[str, Any], n: dict[str, int]) -> dict[str, Any]:
    block: dict[str, Any] = {}
    for short, (direction, count) in DIRECTIONS.items():
        value, size = recall[direction]["r@1"], n[count]
        k = int(round(value * size))
        low, high = wilson_interval(k, size)
        block[short] = {"recall": value, "n_correct": k, "n": size, "low": low, "high": high}
    block["accuracy"] = (block["t2i"]["recall"] + block["i2t"]["recall"]) / 2  # the heat map's value
    block["n"] = n["n_images"]
    block["low"] = (block["t2i"]["low"] + block["i2t"]["low"]) / 2
    block["high"] = (block["t2i"]["high"] + block["i2t"]["high"]) / 2
    return block


def retrieval_row(model: str, item: str, report: dict[str, Any], path: str, reused: bool) -> dict[str, Any]:
    """One table row: clean and per-family recall@1 (strongest attack of each family)."""
    data = report["dataset"]
    n = {"n_images": int(data["n_images"]), "n_captions": int(data["n_captions"])}
    metrics = report["metrics"]
    families = {"clean": _recall_block(metrics["clean"]["recall"], n)}
    for name, block in metrics.get("attacks", {}).items():
        candidate = {**_recall_block(block["recall"], n), "attack": name}
        current = families.get(block["modality"])
        if current is None or candidate["accuracy"] < current["accuracy"]:
            families[block["modality"]] = candidate
    return {
        "model": model, "dataset": item, "role": "retrieval", "status": "ok", "task": "retrieval",
        "metric": "recall@1", "dataset_spec": data["name"], "n": n["n_images"], "n_captions": n["n_captions"],
        "indices_sha256": report["sampling"]["indices_sha256"], "families": families,
        "attacks": list(metrics.get("attacks", {})), "verdict": verdict(report), "report": path, "reused": reused,
    }
