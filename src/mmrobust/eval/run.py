"""One evaluation run, as the CLI, the studies and the demo launch it: load, sample, score, report.

Later capabilities (attacks, sanity checks, resume) extend :class:`EvalConfig` and :func:`run_evaluation`
through the ``attacks`` hook rather than adding new entry points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import load_dataset, resolve_templates, subsample_indices
from ..models import load_model
from ..utils.device import resolve_device
from ..utils.files import check_writable
from ..utils.seeding import seed_everything
from .classification import accuracy_summary, predict
from .report import new_report, write_report
from .zeroshot import PromptEmbeddingCache, ZeroShotClassifier


@dataclass
class EvalConfig:
    """Everything a zero-shot evaluation depends on; all of it lands in the report."""

    model: str
    dataset: str
    data_root: str | None = None
    split: str | None = None
    n_samples: int | None = None
    batch_size: int = 64
    device: str | None = None
    seed: int = 0
    templates: str | None = None
    output: str | None = None
    logit_scale: float | None = None
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def run_evaluation(config: EvalConfig) -> dict[str, Any]:
    """Run a clean zero-shot evaluation and return (and write, if ``output``) its report."""
    if config.output is not None:
        check_writable(config.output)  # fail before the work, not after it
    if config.batch_size < 1:
        from ..errors import ConfigError

        raise ConfigError(f"--batch-size must be at least 1, got {config.batch_size}")
    t0 = time.perf_counter()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    model = load_model(config.model, device=str(device))
    dataset = load_dataset(config.dataset, config.data_root, config.split)
    templates = resolve_templates(config.templates, dataset.templates)
    indices = subsample_indices(len(dataset), config.n_samples, config.seed)
    t_load = time.perf_counter()

    cache = PromptEmbeddingCache()
    classifier = ZeroShotClassifier.from_prompts(model, dataset.classes, templates, cache, config.logit_scale)
    t_text = time.perf_counter()
    preds, labels = predict(
        classifier, dataset, indices, config.batch_size, device, progress="clean" if config.progress else None
    )
    t_eval = time.perf_counter()

    report = new_report(
        task="zeroshot_classification",
        model=model,
        dataset=dataset,
        templates=templates,
        indices=indices,
        seed=config.seed,
        batch_size=config.batch_size,
        device=str(device),
    )
    clean = accuracy_summary(preds == labels, labels, len(dataset.classes))
    report["logit_scale"] = float(classifier.scale().detach())
    report["accuracy"] = clean["accuracy"]
    report["metrics"] = {"clean": clean}
    report["timings"] = {
        "load_s": round(t_load - t0, 3),
        "encode_class_prompts_s": round(t_text - t_load, 3),
        "clean_eval_s": round(t_eval - t_text, 3),
        "images_per_s": round(len(indices) / max(t_eval - t_text, 1e-9), 2),
    }
    if config.output is not None:
        write_report(Path(config.output), report)
    return report
