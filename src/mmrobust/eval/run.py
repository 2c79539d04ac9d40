"""One evaluation run, as the CLI, the studies and the demo launch it: load, sample, score, report.

Clean-only runs (no ``attacks``) behave as before. With ``attacks`` the run builds every attack from the
registry, prepares them once, runs the robust loop (:mod:`.robust`, every attack on every batch, resumable
via :mod:`.resume`), runs the sanity checks (:mod:`.sanity`) and writes one report.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import load_dataset, resolve_templates, subsample_indices
from ..data.sampling import indices_sha256
from ..errors import ConfigError, MMRobustError
from ..models import load_model
from ..models.base import VisionLanguageModel
from ..utils.device import resolve_device
from ..utils.files import check_writable
from ..utils.seeding import seed_everything
from .class_subset import select_classes
from .classification import accuracy_summary, predict
from .report import new_report, write_report
from .zeroshot import PromptEmbeddingCache, ZeroShotClassifier, build_prompts

#: --eps K above this is certainly a mistake (K is in 1/255 units for Linf; 255 = the whole range)
MAX_EPS_INPUT = 255.0


@dataclass
class EvalConfig:
    """Everything a zero-shot evaluation depends on; all of it lands in the report.

    Attack options: ``eps`` is K as typed (K/255 for linf, the raw L2 radius for l2), ``alpha`` likewise
    (default eps/4), ``steps`` default 10. Text options are passed through to text attacks unchanged.
    """

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
    # --- attacks (None/empty = clean only)
    attacks: str | list[str] | None = None
    eps: float | None = None
    norm: str = "linf"
    steps: int | None = None
    alpha: float | None = None
    restarts: int = 1
    square_queries: int | None = None
    text_words: int = 1
    mlm: str | None = None
    text_candidates: int = 10
    #: text recipe used inside multimodal attacks (default: bert-attack with --mlm, else embed-sub)
    text_attack: str | None = None
    #: "embedding-kl" (the study's, label-free), "embedding-cos" or "zero-shot-margin" (task-aware)
    text_goal: str = "embedding-kl"
    #: zero-shot-margin: clean labelled images per class the text attack may look at
    text_goal_images: int = 8
    resume: bool = True
    sanity: bool = True
    #: evaluate on a deterministic subset of this many classes (k-way task, images of those classes only)
    classes: int | None = None


def _finite_number(name: str, value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value}")
    return value


def attack_options(config: EvalConfig) -> dict[str, Any]:
    """The option dict every attack sees (eps/alpha converted to fractions), validated."""
    from ..attacks.image.base import normalize_norm

    norm = normalize_norm(config.norm)
    options: dict[str, Any] = {"norm": norm, "eps": None, "eps_input": None, "alpha": None, "alpha_input": None}
    if config.eps is not None:
        k = _finite_number("--eps", config.eps)
        if k <= 0:
            raise ConfigError(f"--eps must be positive, got {config.eps}")
        if k > MAX_EPS_INPUT:
            raise ConfigError(f"--eps {config.eps} is absurd (at most {MAX_EPS_INPUT:g}; for linf K means K/255)")
        options["eps_input"] = k
        options["eps"] = k / 255.0 if norm == "Linf" else k
    if config.alpha is not None:
        a = _finite_number("--alpha", config.alpha)
        if a <= 0:
            raise ConfigError(f"--alpha must be positive, got {config.alpha}")
        options["alpha_input"] = a
        options["alpha"] = a / 255.0 if norm == "Linf" else a
    if config.steps is not None and (int(config.steps) != config.steps or config.steps < 1):
        raise ConfigError(f"--steps must be an integer of at least 1, got {config.steps}")
    if int(config.restarts) < 1:
        raise ConfigError(f"--restarts must be at least 1, got {config.restarts}")
    if int(config.text_words) < 1:
        raise ConfigError(f"--text-words must be at least 1, got {config.text_words}")
    if int(config.text_candidates) < 1:
        raise ConfigError(f"--text-candidates must be at least 1, got {config.text_candidates}")
    options.update(steps=config.steps, restarts=int(config.restarts), square_queries=config.square_queries,
                   text_words=int(config.text_words), mlm=config.mlm, text_candidates=int(config.text_candidates),
                   text_goal=config.text_goal, text_goal_images=int(config.text_goal_images))
    if config.text_attack is not None:
        options["text_attack"] = config.text_attack
    return options


def goal_image_set(config: EvalConfig, dataset, eval_indices, per_class: int) -> tuple[Any, Any, dict[str, Any]]:
    """Clean labelled images a task-aware text attack may use to choose its words.

    Why another split: the attacker choosing prompts from the very images it is scored on would be an
    optimistic (transductive) attack; the train split is used when the dataset has one, else the evaluation
    images themselves — the report says which.
    """
    import numpy as np

    source, split = dataset, dataset.split
    if dataset.split != "train":
        try:
            source, split = load_dataset(config.dataset, config.data_root, "train"), "train"
            source = select_classes(source, config.classes, config.seed)
        except MMRobustError:
            source, split = dataset, dataset.split
    labels = np.asarray(source.labels)
    candidates = np.arange(len(labels)) if source is not dataset else np.asarray(eval_indices)
    rng = np.random.default_rng(config.seed)
    chosen = []
    for c in range(len(dataset.classes)):
        members = candidates[labels[candidates] == c]
        chosen.extend(rng.permutation(members)[:per_class].tolist())
    chosen.sort()
    images = torch.stack([source[int(i)][0] for i in chosen]) if chosen else torch.empty(0)
    targets = torch.tensor([int(labels[i]) for i in chosen], dtype=torch.long)
    return images, targets, {"split": split, "n": len(chosen), "per_class": per_class,
                             "from_evaluation_images": source is dataset}


def build_attacks(names: list[str], options: dict[str, Any]) -> list:
    """Instantiate the named attacks (validating their options before any model is loaded)."""
    from ..attacks.registry import ATTACKS, build_attack

    attacks = []
    for name in names:
        try:
            attacks.append(build_attack(name, options))
        except ModuleNotFoundError as exc:
            module = ATTACKS[name][0].partition(":")[0]
            if exc.name and module.startswith(exc.name):
                raise ConfigError(f"attack {name!r} is not available in this installation ({module} missing)") from None
            raise
    return attacks


def weights_fingerprint(model: VisionLanguageModel) -> str:
    """A cheap fingerprint of the weights (per-tensor sums), so a resume state never mixes two models."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(repr((tuple(tensor.shape), float(tensor.double().sum()) if tensor.numel() else 0.0)).encode())
    return digest.hexdigest()[:16]


def run_evaluation(
    config: EvalConfig,
    *,
    model: VisionLanguageModel | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run a zero-shot evaluation (clean, or robust when ``config.attacks``) and return/write its report.

    ``model`` overrides loading ``config.model`` (programmatic use, tests); ``after_batch`` is called after
    every finished robust batch (tests use it to simulate an interruption).
    """
    if config.output is not None:
        check_writable(config.output)  # fail before the work, not after it
    if config.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {config.batch_size}")
    from ..attacks.registry import parse_attack_list

    names = (parse_attack_list(",".join(config.attacks)) if isinstance(config.attacks, list)
             else parse_attack_list(config.attacks))
    options = attack_options(config) if names else {}
    attacks = build_attacks(names, options) if names else []

    t0 = time.perf_counter()
    seed_everything(config.seed)
    device = resolve_device(config.device)
    if model is None:
        model = load_model(config.model, device=str(device))
    else:
        model = model.to(device).eval()
    dataset = select_classes(load_dataset(config.dataset, config.data_root, config.split), config.classes, config.seed)
    templates = resolve_templates(config.templates, dataset.templates)
    indices = subsample_indices(len(dataset), config.n_samples, config.seed)
    t_load = time.perf_counter()

    cache = PromptEmbeddingCache()
    classifier = ZeroShotClassifier.from_prompts(model, dataset.classes, templates, cache, config.logit_scale)
    t_text = time.perf_counter()
    report = new_report(
        task="robust_zeroshot_classification" if attacks else "zeroshot_classification",
        model=model,
        dataset=dataset,
        templates=templates,
        indices=indices,
        seed=config.seed,
        batch_size=config.batch_size,
        device=str(device),
    )
    report["logit_scale"] = float(classifier.scale().detach())
    timings: dict[str, Any] = {"load_s": round(t_load - t0, 3), "encode_class_prompts_s": round(t_text - t_load, 3)}

    if not attacks:
        preds, labels = predict(
            classifier, dataset, indices, config.batch_size, device, progress="clean" if config.progress else None
        )
        t_eval = time.perf_counter()
        clean = accuracy_summary(preds == labels, labels, len(dataset.classes))
        report["accuracy"] = clean["accuracy"]
        report["metrics"] = {"clean": clean}
        timings.update(clean_eval_s=round(t_eval - t_text, 3),
                       images_per_s=round(len(indices) / max(t_eval - t_text, 1e-9), 2))
        report["timings"] = timings
    else:
        _robust_part(config, report, timings, model, classifier, dataset, templates, indices, device, names,
                     options, attacks, after_batch)
    if config.output is not None:
        write_report(Path(config.output), report)
        if attacks and config.resume:
            from .resume import state_path_for

            state_path_for(config.output).unlink(missing_ok=True)
    return report


def _robust_part(config, report, timings, model, classifier, dataset, templates, indices, device, names, options,
                 attacks, after_batch) -> None:
    """Attack loop + sanity checks; fills ``report`` in place."""
    from ..attacks.image.eval_attacks import threat_model_description
    from ..attacks.protocol import AttackContext
    from .resume import StateFile, config_hash, state_path_for
    from .robust import prepare_attacks, run_attacks, summarize
    from .sanity import run_sanity_checks, warn_if_unreliable

    prompts = build_prompts(dataset.classes, templates)
    ctx = AttackContext(model=model, classifier=classifier, classes=list(dataset.classes), templates=list(templates),
                        prompts=prompts, device=device, seed=config.seed, progress=config.progress,
                        options=dict(options))
    if options.get("text_goal") == "zero-shot-margin" and any(a.modality != "image" for a in attacks):
        ctx.attack_images, ctx.attack_labels, goal_info = goal_image_set(
            config, dataset, indices, int(options.get("text_goal_images") or 8))
        report["text_goal_images"] = goal_info
    digest = config_hash({
        "model": config.model, "weights": weights_fingerprint(model), "dataset": dataset.describe(),
        "templates": list(templates), "indices": indices_sha256(indices), "batch_size": config.batch_size,
        "seed": config.seed, "logit_scale": config.logit_scale, "attacks": names, "options": options,
        "device": device.type,
    })
    state_path = state_path_for(config.output) if config.output is not None else None
    state_file = StateFile(state_path, digest, enabled=config.resume)
    state = state_file.load_or_new()
    resumed_from = state.resumed_from

    t_prep = time.perf_counter()
    prepare_attacks(attacks, ctx, state)
    t_loop = time.perf_counter()
    run_attacks(ctx, attacks, dataset, indices, config.batch_size, state, state_file, after_batch)
    t_done = time.perf_counter()

    metrics, per_example = summarize(state, attacks, len(dataset.classes))
    report["accuracy"] = metrics["clean"]["accuracy"]
    report["robust_accuracy"] = metrics["worst_case"]["accuracy"]
    report["metrics"] = metrics
    report["per_example"] = per_example
    report["attacks"] = [attack.describe() for attack in attacks]
    image_like = [a for a in attacks if a.threat_model() is not None]
    report["threat_model"] = (
        {**threat_model_description(options["norm"], options["eps"]), "eps_input": options["eps_input"],
         "perturbs": "pixels in [0, 1] at the dataset's native resolution, before the model's resize/normalise"}
        if image_like and options.get("eps") is not None else None
    )
    report["attack_options"] = dict(options)
    report["resume"] = {"enabled": config.resume, "config_hash": digest,
                        "state_file": str(state_path) if state_path else None,
                        "resumed_from_position": resumed_from}

    if config.sanity:
        sanity = run_sanity_checks(ctx, attacks, state, dataset, indices, config.batch_size)
        warn_if_unreliable(sanity)
    else:
        sanity = {"ran": False, "reason": "disabled with --no-sanity", "unreliable": None}
    report["sanity"] = sanity
    report["unreliable"] = sanity["unreliable"]
    t_end = time.perf_counter()
    n = len(indices)
    timings.update(
        prepare_attacks_s=round(t_loop - t_prep, 3),
        robust_eval_s=round(t_done - t_loop, 3),
        clean_eval_s=round(state.clean_seconds, 3),
        attacks_s={name: round(s, 3) for name, s in state.attack_seconds.items()},
        sanity_s=round(t_end - t_done, 3),
        images_per_s=round(n / max(t_done - t_loop, 1e-9), 2),
        note="attack seconds are summed over all runs of a resumed evaluation" if resumed_from else None,
    )
    report["timings"] = timings
