"""Keep a few adversarial examples of a robust run (``--save-examples K``), for eyes rather than for tables.

Which ones: per attack, the first K images of the run's own sample (in sample order) that the attack ran on.
Those are clean-correct images (clean-wrong ones are never attacked); in cascade mode they are the first K an
earlier attack left standing. The choice therefore depends only on the sample and the seed, and a rerun
keeps the same examples.

What is kept per example (``report["examples"]``, PNGs under ``REPORT.examples/``, paths relative to the
report's folder):

* the clean image and, for attacks that perturb pixels, the adversarial one and the perturbation amplified
  to the full range (8-bit lossless PNG of the [0, 1] pixels, rounded; the norms are measured on the float
  images, before rounding);
* the top-3 classes with probabilities before (clean prompts, clean image) and after (the classifier that
  scored the attack: adversarial prompts for text and multimodal attacks);
* the L-inf and L2 norms of the perturbation;
* for text and multimodal attacks, the prompts of the true class and of the class predicted after the
  attack: original, adversarial, the changed character spans, ``collides_with`` and, when the run measured
  sentence similarity (``--min-similarity``), the MiniLM cosine.

A resumed run reloads what the interrupted one had kept (``REPORT.examples/examples.json``, keyed by the
run's configuration hash). Under torchrun only rank 0's shard is looked at (the report says so).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..utils.files import write_json_atomic

#: classes listed before/after per example
TOP_K = 3
INDEX_FILE = "examples.json"


def examples_dir(report_path: str | Path) -> Path:
    """``REPORT.examples/`` beside the report."""
    path = Path(report_path)
    return path.with_name(path.name + ".examples")


def to_png(image: torch.Tensor, path: Path) -> None:
    """Save a [0, 1] image (C x H x W, C = 1 or 3) as an 8-bit PNG (PIL, lossless)."""
    from PIL import Image

    array = image.detach().float().clamp(0, 1).cpu().numpy()
    array = np.rint(array * 255).astype(np.uint8)
    if array.shape[0] == 1:
        Image.fromarray(array[0], mode="L").save(path, format="PNG")
    else:
        Image.fromarray(np.ascontiguousarray(array[:3].transpose(1, 2, 0)), mode="RGB").save(path, format="PNG")


def amplified(delta: torch.Tensor) -> torch.Tensor:
    """The perturbation scaled to fill [0, 1] around mid-grey (0.5 = unchanged pixel)."""
    peak = float(delta.abs().max())
    return torch.full_like(delta, 0.5) if peak == 0 else 0.5 + delta / (2 * peak)


def top_classes(logits: torch.Tensor, classes: Sequence[str], k: int = TOP_K) -> list[dict[str, Any]]:
    probs = torch.softmax(logits.detach().float(), dim=-1)
    values, index = probs.topk(min(k, probs.numel()))
    return [{"class": str(classes[i]), "label": int(i), "probability": round(float(p), 6)}
            for p, i in zip(values.tolist(), index.tolist())]


def changed_spans(original: str, perturbed: str) -> list[list[int]]:
    """``[start, end)`` character spans of the words of ``perturbed`` that differ from ``original``."""
    from ..attacks.text.words import split_words

    old, new = split_words(original), split_words(perturbed)
    if len(old) != len(new):  # a character-level edit merged or split words: mark every differing word
        old_texts = {w.text for w in old}
        return [[w.start, w.end] for w in new if w.text not in old_texts]
    return [[w.start, w.end] for w, o in zip(new, old) if w.text != o.text]


class ExampleRecorder:
    """Collects the first ``k`` attacked examples of each attack; called from the robust loop."""

    def __init__(self, k: int, folder: Path, report_folder: Path, ctx: Any, digest: str,
                 resumed: bool, note: str | None = None) -> None:
        self.k = int(k)
        self.folder = folder
        self.report_folder = report_folder
        self.ctx = ctx
        self.digest = digest
        self.note = note
        self.records: dict[str, list[dict[str, Any]]] = {}
        self._similarity: Any = None
        self._load_or_clear(resumed)

    @classmethod
    def for_run(cls, config: Any, ctx: Any, next_position: int, digest: str, dctx: Any = None) -> "ExampleRecorder | None":
        """The recorder of an evaluation run, or None when ``config.save_examples`` is 0 (reports unchanged);
        ``next_position`` > 0 means a resumed run (the interrupted run's examples are reloaded)."""
        k = getattr(config, "save_examples", 0) or 0
        if isinstance(k, bool) or int(k) != k or k < 0:
            raise ConfigError(f"--save-examples must be a non-negative integer, got {k}")
        if k == 0:
            return None
        if config.output is None:
            raise ConfigError("--save-examples needs an output report path (the images go beside it)")
        if dctx is not None and getattr(dctx, "enabled", False) and not dctx.is_main:
            return None
        note = "torchrun: examples from rank 0's shard only" if dctx is not None and dctx.enabled else None
        report = Path(config.output)
        return cls(int(k), examples_dir(report), report.parent, ctx, digest,
                   resumed=bool(next_position) and config.resume, note=note)

    # ------------------------------------------------------------------ persistence (resume)
    def _load_or_clear(self, resumed: bool) -> None:
        index = self.folder / INDEX_FILE
        old: dict[str, Any] = {}
        if index.is_file():
            try:
                old = json.loads(index.read_text())
            except (OSError, ValueError):
                old = {}
        if resumed and old.get("config_hash") == self.digest:
            self.records = {name: list(items) for name, items in old.get("attacks", {}).items()}
            return
        for items in old.get("attacks", {}).values():  # a new run: forget the files an earlier one kept
            for item in items:
                for key in ("clean_png", "adversarial_png", "perturbation_png"):
                    if item.get(key):
                        (self.report_folder / item[key]).unlink(missing_ok=True)
        index.unlink(missing_ok=True)

    def _save_index(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.folder / INDEX_FILE, {"config_hash": self.digest, "attacks": self.records})

    # ------------------------------------------------------------------ capture
    def wants(self, attack_name: str) -> bool:
        return len(self.records.get(attack_name, [])) < self.k

    @torch.no_grad()
    def capture(self, attack: Any, images: torch.Tensor, labels: torch.Tensor, outcome: Any,
                example_ids: Sequence[int]) -> None:
        """Keep the first rows of this call until the attack has ``k`` examples (``images`` = its rows)."""
        kept = self.records.setdefault(attack.name, [])
        seen = {item["dataset_index"] for item in kept}
        rows = [r for r, i in enumerate(example_ids) if int(i) not in seen][: self.k - len(kept)]
        if not rows:
            return
        from ..utils.precision import precision_context

        index = torch.tensor(rows, device=images.device)
        clean = images[index].float()
        adv = outcome.adv_images[index.to(outcome.adv_images.device)].float() if outcome.adv_images is not None else None
        scorer = getattr(getattr(attack, "prompt_attack", None), "classifier", None) or self.ctx.classifier
        with precision_context("fp32", self.ctx.device):
            before = self.ctx.classifier(clean.to(self.ctx.device))
            after = scorer((adv if adv is not None else clean).to(self.ctx.device))
        correct = torch.as_tensor(outcome.correct).bool().cpu().reshape(-1)
        classes = list(self.ctx.classes)
        self.folder.mkdir(parents=True, exist_ok=True)
        for j, row in enumerate(rows):
            dataset_index, label = int(example_ids[row]), int(labels[row])
            stem = f"{_safe(attack.name)}-{dataset_index:06d}"
            item: dict[str, Any] = {
                "dataset_index": dataset_index, "label": label, "class": str(classes[label]),
                "modality": attack.modality,
                "broken": not bool(correct[row]),
                "top_before": top_classes(before[j], classes),
                "top_after": top_classes(after[j], classes),
                "clean_png": self._png(clean[j], stem + "-clean.png"),
            }
            predicted_after = int(after[j].argmax())
            item["consistent"] = (predicted_after == label) == bool(correct[row])  # re-scored as the attack did
            if adv is not None:
                delta = (adv[j] - clean[j]).cpu()
                item["adversarial_png"] = self._png(adv[j], stem + "-adv.png")
                item["perturbation_png"] = self._png(amplified(delta), stem + "-delta.png")
                item["linf"] = float(delta.abs().max())
                item["linf_255"] = round(float(delta.abs().max()) * 255, 4)
                item["l2"] = float(delta.norm(p=2))
            if getattr(attack, "prompt_attack", None) is not None:
                wanted = [label] + ([predicted_after] if predicted_after != label else [])
                item["prompts"] = self._prompts(attack.prompt_attack, wanted)
            kept.append(item)
        self._save_index()

    def _png(self, image: torch.Tensor, name: str) -> str:
        to_png(image, self.folder / name)
        return f"{self.folder.name}/{name}"  # relative to the report's folder

    def _prompts(self, prompt_attack: Any, classes: Sequence[int]) -> list[dict[str, Any]]:
        """The class prompts of ``classes``, original -> adversarial, changed spans marked."""
        from ..attacks.text.classnames import collisions

        prompt_attack.ensure()
        per_class = len(self.ctx.prompts[0])
        names = list(self.ctx.classes)
        out = []
        for c in classes:
            for t in range(per_class):
                r = prompt_attack.results[c * per_class + t]
                out.append({"class": names[c], "label": int(c), "template_index": t,
                            "original": r.original, "adversarial": r.perturbed,
                            "changed": [list(p) for p in r.changed],
                            "spans": changed_spans(r.original, r.perturbed),
                            "collides_with": collisions(r.original, r.perturbed, c, names)})
        if getattr(prompt_attack, "min_similarity", None) is not None:
            self._add_similarity(out)
        return out

    def _add_similarity(self, prompts: list[dict[str, Any]]) -> None:
        from ..attacks.text.similarity import MiniLMSentenceEncoder

        if self._similarity is None:
            self._similarity = MiniLMSentenceEncoder(self.ctx.device)
        a = self._similarity([p["original"] for p in prompts])
        b = self._similarity([p["adversarial"] for p in prompts])
        for p, value in zip(prompts, (a * b).sum(dim=-1).tolist()):
            p["similarity"] = round(float(value), 6)

    # ------------------------------------------------------------------ report block
    def describe(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "folder": self.folder.name,
            "selection": ("per attack, the first k images of the sample (in sample order) the attack ran on: "
                          "clean-correct ones; in cascade mode those no earlier attack broke"),
            "png": "8-bit lossless PNG of the [0, 1] pixels (rounded); norms measured on the float images",
            "note": self.note,
            "attacks": self.records,
        }


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


# ---------------------------------------------------------------------------------------- retrieval
#: captions listed per image query, before and after
TOP_RETRIEVED = 5


class RetrievalExampleRecorder(ExampleRecorder):
    """``--save-examples K`` of ``--task retrieval``: the first K images of the sample as queries, per attack.

    Per example: the clean (and adversarial) image, the query's captions original -> adversarial when the attack
    changed them, and — once the whole split is embedded — its top-5 captions before (clean gallery) and after
    (the attacked images against the attacked captions), with cosine similarity and whether each is its own.
    """

    @torch.no_grad()
    def capture_batch(self, attack: Any, batch: Any, outcome: Any) -> None:
        kept = self.records.setdefault(attack.name, [])
        seen = {item["position"] for item in kept}
        rows = [r for r in range(len(batch.captions)) if batch.position + r < self.k and batch.position + r not in seen]
        if not rows:
            return
        ids = batch.ids()
        self.folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            position = batch.position + row
            stem = f"{_safe(attack.name)}-{int(ids[row]):06d}"
            clean = batch.images[row].float()
            item: dict[str, Any] = {"position": position, "dataset_index": int(ids[row]), "modality": attack.modality,
                                    "clean_png": self._png(clean, stem + "-clean.png")}
            if outcome.adv_images is not None:
                adv = outcome.adv_images[row].float()
                delta = (adv - clean).cpu()
                item["adversarial_png"] = self._png(adv, stem + "-adv.png")
                item["perturbation_png"] = self._png(amplified(delta), stem + "-delta.png")
                item["linf"] = float(delta.abs().max())
                item["linf_255"] = round(float(delta.abs().max()) * 255, 4)
                item["l2"] = float(delta.norm(p=2))
            if outcome.adv_captions is not None:
                item["prompts"] = [
                    {"class": f"caption {j}", "label": position, "template_index": j, "original": o, "adversarial": a,
                     "changed": [], "spans": changed_spans(o, a), "collides_with": []}
                    for j, (o, a) in enumerate(zip(batch.captions[row], outcome.adv_captions[row]))]
            kept.append(item)
        self._save_index()

    def finish(self, captions: Sequence[str], owner: torch.Tensor, clean_images: torch.Tensor,
               clean_text: torch.Tensor, attacked: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
        """Add each query's top-5 captions before and after; the report block."""
        owner = owner.cpu()
        for name, items in self.records.items():
            images, texts = attacked[name]
            for item in items:
                p = item["position"]
                item["retrieved_before"] = _top_captions(clean_images[p], clean_text, captions, owner, p)
                item["retrieved_after"] = _top_captions(images[p], texts, captions, owner, p)
        block = self.describe()
        block["selection"] = ("per attack, the first k images of the sample (in sample order) as image queries; "
                              "captions retrieved after the attack are shown with their clean text")
        return block


def _top_captions(image: torch.Tensor, texts: torch.Tensor, captions: Sequence[str], owner: torch.Tensor,
                  position: int) -> list[dict[str, Any]]:
    similarity = texts.detach().float().cpu() @ image.detach().float().cpu()
    values, index = similarity.topk(min(TOP_RETRIEVED, similarity.numel()))
    return [{"caption": str(captions[i]), "caption_index": int(i), "similarity": round(float(v), 6),
             "own": int(owner[i]) == position} for v, i in zip(values.tolist(), index.tolist())]
