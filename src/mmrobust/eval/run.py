"""One evaluation run, as the CLI, the studies and the demo launch it: load, sample, score, report.

Clean-only runs (no ``attacks``) behave as before. With ``attacks`` the run builds every attack from the
registry, prepares them once, runs the robust loop (:mod:`.robust`: only clean-correct images are attacked,
by default each attack only on what earlier ones left standing; resumable via :mod:`.resume`), runs the sanity checks (:mod:`.sanity`) and writes one report.
With ``--test-time-defense`` the loaded model is wrapped first (:mod:`mmrobust.models.test_time`), so the
classifier, every attack and the sanity checks run on the defended model (:mod:`.test_time_defense`: its report).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import torch

from ..data import load_dataset, resolve_templates, subsample_indices
from ..data.class_names import rename_classes
from ..data.text_lists import read_lines
from ..data.sampling import indices_sha256
from ..errors import ConfigError, MMRobustError
from ..models import load_model
from ..models.base import VisionLanguageModel
from ..utils.files import check_writable, output_lock
from ..utils.precision import check_precision
from ..utils.seeding import check_seed, seed_everything
from .class_subset import select_classes
from .classification import accuracy_summary, predict
from .report import new_report, write_report
from ..models.zeroshot import PromptEmbeddingCache, ZeroShotClassifier, build_prompts
from ..attacks.settings import AttackSettings, RetrievalSettings, TextSettings
from ..options.fields import option
from ..options.parse import non_negative_int
from ..options.run import BudgetOptions, RunOptions, TargetOptions
from .options import DefenseOptions, EvalOptions

#: EvalConfig fields that are attack options (None = the attack's own default, see mmrobust.attacks.options):
#: the attack and text settings, and the arithmetic of the attacks
ATTACK_FIELDS = tuple(f.name for g in (AttackSettings, TextSettings) for f in fields(g)
                      if f.name not in ("attacks", "preset")) + ("precision",)
#: the options only the retrieval attacks read
RETRIEVAL_FIELDS = tuple(f.name for f in fields(RetrievalSettings))


@dataclass(kw_only=True)
class EvalConfig(TargetOptions, RunOptions, BudgetOptions, EvalOptions, DefenseOptions, AttackSettings, TextSettings,
                 RetrievalSettings):
    """Everything a zero-shot evaluation depends on; all of it lands in the report.

    Composed from the option groups (each option declared once, with its flag: :mod:`mmrobust.options`):
    :class:`~mmrobust.options.run.RunOptions`, :class:`.options.EvalOptions`, :class:`.options.DefenseOptions`,
    :class:`~mmrobust.attacks.settings.AttackSettings`, :class:`~mmrobust.attacks.settings.TextSettings` and
    :class:`~mmrobust.attacks.settings.RetrievalSettings`.

    Attacks: ``attacks`` (names or "a,b") and/or ``preset`` (:mod:`mmrobust.attacks.presets`); the attack
    options override the preset's. Units: ``eps`` and ``alpha`` are fractions of the [0, 1] pixel range
    for L-inf (``eps=4/255``) and raw radii for L2 — the CLI alone reads K/255. ``None`` = the attack's
    default (:mod:`mmrobust.attacks.options`: eps 1/255, one step-size rule, all other classes as targets).
    """

    output: str | None = option(None, "Report file (JSON), written atomically.", short="-o", required=True)
    #: "classification" (zero-shot) or "retrieval" (image–text recall, see :mod:`.retrieval`)
    task: str = option(
        "classification", "classification (zero-shot) or retrieval (image-text recall@1/5/10; datasets flickr30k, "
                          "coco, wds:PATH).")
    #: retrieval transfer: craft attacks on this model, score on ``model``
    source_model: str | None = option(
        None, "Retrieval transfer: craft the attacks on this model, score them on --model.")

    def attack_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ATTACK_FIELDS}

    def retrieval_values(self) -> dict[str, Any]:
        """The retrieval-only settings the user gave (None = the attack's default)."""
        return {name: getattr(self, name) for name in RETRIEVAL_FIELDS if getattr(self, name) is not None}

    def resolve_attacks(self) -> tuple[list[str], dict[str, Any]]:
        """(attack names, their option values) after the preset and the user's values are merged."""
        from ..attacks.presets import resolve

        return resolve(self.preset, self.attacks, self.attack_values())

    def defense(self):
        """The test-time defense's settings (:mod:`.test_time_defense`), or None for the undefended model."""
        from .test_time_defense import defense_settings

        return defense_settings(self, self.seed)

    def validate(self) -> "EvalConfig":
        """The run-level options (attack options are validated by each attack's options class)."""
        check_run_options(self.batch_size, self.seed, self.n_samples, self.classes)
        defense = self.defense()
        self.save_examples = non_negative_int(self.save_examples, "--save-examples")
        from .robust import check_ensemble

        self.ensemble = check_ensemble(self.ensemble)
        task = str(self.task).lower()
        if task not in ("classification", "retrieval"):
            raise ConfigError(f"unknown --task {self.task!r}; use classification or retrieval")
        if task == "retrieval":
            if self.classnames is not None:
                raise ConfigError("--classnames names the classes of a classification set; retrieval has captions")
            if defense is not None:
                raise ConfigError("--test-time-defense is implemented for --task classification only")
            from .retrieval import retrieval_attacks

            retrieval_attacks(self)  # the retrieval registry validates its attacks' options
            return self
        if self.source_model is not None:
            raise ConfigError("--source-model (transfer) is only supported with --task retrieval")
        for name in self.retrieval_values():
            raise ConfigError(f"--{name.replace('_', '-')} applies to --task retrieval (its attacks) only")
        if self.classnames is not None:
            read_lines(self.classnames, f"--classnames {self.classnames}")  # unreadable: fail before any model loads
        if self.preset:
            from ..attacks.presets import get_preset

            preset = get_preset(self.preset)
            if self.logit_scale is None:
                self.logit_scale = preset.logit_scale  # a protocol's fixed temperature (study-released)
            if self.n_samples is None:
                self.n_samples = preset.n_samples  # a protocol's sample size (robustvlm: 1000 per dataset)
        if self.logit_scale is not None:
            from ..attacks.options import positive

            positive("logit_scale", self.logit_scale)  # it multiplies cosine similarities: <= 0 inverts the task
        from ..attacks.registry import build_attacks

        build_attacks(*self.resolve_attacks())  # every attack validates its options (cheap: no model yet)
        return self


def check_run_options(batch_size: int, seed: int, n_samples: int | None, classes: int | None) -> None:
    check_seed(seed)
    for name, value, low in (("--batch-size", batch_size, 1), ("--n-samples", n_samples, 1),
                             ("--n-classes", classes, 1)):
        if value is None:
            continue
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ConfigError(f"{name} must be an integer of at least {low}, got {value}")


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
    shard: bool = True,
    announce: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """:func:`_evaluate` while holding the lock on ``config.output`` (a second live run on it is refused).

    Under torchrun the images are sharded across ranks (:mod:`.distributed`) unless ``shard=False``.
    ``announce`` receives the planned work in one line before the work starts (``mmrobust eval`` prints it;
    the benchmark and the studies print their own plan, not one per cell).
    """
    if config.output is not None:
        check_writable(config.output)  # a device node or FIFO is refused before a lock file is made beside it
    from .distributed import main_only

    with output_lock(main_only(config.output, shard), "report"):  # under torchrun only rank 0 writes the report
        return _evaluate(config, model=model, after_batch=after_batch, shard=shard, announce=announce)


def _evaluate(
    config: EvalConfig,
    *,
    model: VisionLanguageModel | None = None,
    after_batch: Callable[[int], None] | None = None,
    shard: bool = True,
    announce: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run a zero-shot evaluation (clean, or robust when ``config.attacks``) and return/write its report.

    ``model`` overrides loading ``config.model`` (programmatic use, tests); ``after_batch`` is called after
    every finished robust batch (tests use it to simulate an interruption).
    """
    if str(config.task).lower() == "retrieval":
        from .retrieval import run_retrieval_evaluation

        return run_retrieval_evaluation(config.validate(), model=model, after_batch=after_batch, shard=shard)
    if config.output is not None:
        check_writable(config.output)  # fail before the work, not after it
    config.validate()
    names, options = config.resolve_attacks()
    if names:
        from ..attacks.registry import build_attacks

        attacks = build_attacks(names, options)
    else:
        attacks = []

    t0 = time.perf_counter()
    seed_everything(config.seed)
    from .distributed import eval_context

    dctx = eval_context(config.device, shard)  # torchrun: this rank's device and process group; else one process
    device = dctx.device
    if model is None:
        model = load_model(config.model, device=str(device))
    else:
        model = model.to(device).eval()
    if config.compile:
        from ..utils.compile import compile_towers

        model = compile_towers(model)
    defense = config.defense()
    if defense is not None:
        from ..models.test_time import defend

        model = defend(model, defense)  # the classifier, every attack and the sanity checks see the defended model
    dataset = rename_classes(load_dataset(config.dataset, config.data_root, config.split), config.classnames)
    dataset = select_classes(dataset, config.classes, config.seed)
    templates = resolve_templates(config.templates, dataset.templates)
    indices = subsample_indices(len(dataset), config.n_samples, config.seed)
    from .budget import check_split, eval_plan

    check_split(config, dataset)
    if announce is not None:
        announce(eval_plan(len(indices), attacks).line())
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
        precision=check_precision(options.get("precision") or "fp32"),
    )
    if attacks:
        from ..utils.precision import autocast_dtype_name, precision_note

        report["precision_note"] = precision_note(report["precision"], device)
        report["autocast_dtype"] = autocast_dtype_name(report["precision"], device)  # None: no autocast
    report["compile"] = bool(config.compile)
    if defense is not None:
        from .test_time_defense import defense_report

        report["defense"] = defense_report(defense, attacks)
    report["dataset"]["classnames_file"] = config.classnames
    report["logit_scale"] = float(classifier.scale().detach())
    timings: dict[str, Any] = {"load_s": round(t_load - t0, 3), "encode_class_prompts_s": round(t_text - t_load, 3)}

    from .distributed import Shard, gather_batches

    shard = Shard.of(dctx, config.batch_size, len(indices))
    if dctx.enabled:
        report["distributed"] = shard.describe()
    if not attacks:
        preds, labels = predict(
            classifier, dataset, shard.indices(indices), config.batch_size, device,
            progress="clean" if config.progress else None
        )
        preds, labels = gather_batches(preds, shard, dctx), gather_batches(labels, shard, dctx)
        t_eval = time.perf_counter()
        clean = accuracy_summary(preds == labels, labels, len(dataset.classes))
        report["accuracy"] = clean["accuracy"]
        report["metrics"] = {"clean": clean}
        report["per_example"] = {"labels": labels.tolist(), "clean": (preds == labels).tolist()}  # paired tests
        timings.update(clean_eval_s=round(t_eval - t_text, 3),
                       images_per_s=round(len(indices) / max(t_eval - t_text, 1e-9), 2))
        report["timings"] = timings
    else:
        _robust_part(config, report, timings, model, classifier, dataset, templates, indices, device, names,
                     options, attacks, after_batch, dctx, announce)
    if config.output is not None:
        if dctx.is_main:
            write_report(Path(config.output), report)
        dctx.barrier()  # every shard keeps its resume state until the report is on disk
        if attacks and config.resume:
            shard.state_path(config.output).unlink(missing_ok=True)
    return report


def _robust_part(config, report, timings, model, classifier, dataset, templates, indices, device, names, options,
                 attacks, after_batch, dctx=None, announce=None) -> None:
    """Attack loop + sanity checks; fills ``report`` in place (under torchrun: this rank's shard, gathered).
    ``announce`` gets the estimate timed on the first batch before the attacks start."""
    from ..attacks.image.eval_attacks import threat_model_description
    from ..attacks.options import TextOptions
    from ..attacks.protocol import AttackContext
    from .resume import StateFile, check_state, config_hash
    from .distributed import Shard, broadcast_object, gather_state, share_attack_states
    from .robust import run_attacks, summarize
    from ..utils.distributed import DistributedContext
    from .sanity import run_sanity_checks, warn_if_unreliable

    prompts = build_prompts(dataset.classes, templates)
    ctx = AttackContext(model=model, classifier=classifier, classes=list(dataset.classes), templates=list(templates),
                        prompts=prompts, device=device, seed=config.seed, progress=config.progress)
    if options.get("text_goal") == "zero-shot-margin" and any(a.modality != "image" for a in attacks):
        per_class = options.get("text_goal_images") or TextOptions.text_goal_images
        ctx.attack_images, ctx.attack_labels, goal_info = goal_image_set(config, dataset, indices, int(per_class))
        report["text_goal_images"] = goal_info
    digest = config_hash({
        "model": config.model, "weights": weights_fingerprint(model), "dataset": dataset.describe(),
        "templates": list(templates), "indices": indices_sha256(indices), "batch_size": config.batch_size,
        "seed": config.seed, "logit_scale": config.logit_scale, "attacks": names, "options": options,
        "device": device.type, "ensemble": config.ensemble,
        **({"defense": defense.describe()} if (defense := config.defense()) is not None else {}),
        **({"classes": list(dataset.classes)} if config.classnames is not None else {}),
    })
    dctx = dctx or DistributedContext(device=device)
    shard = Shard.of(dctx, config.batch_size, len(indices))
    shard_indices = shard.indices(indices)
    shard_digest = digest if not dctx.enabled else config_hash({"run": digest, "shard": shard.__dict__})
    state_path = shard.state_path(config.output) if config.output is not None else None
    state_file = StateFile(state_path, shard_digest, enabled=config.resume)
    state = state_file.load_or_new()
    check_state(state, state_path, len(shard_indices), config.batch_size, [a.name for a in attacks],
                [int(v) for v in dataset.labels[shard_indices]])

    from .budget import check_attack_budget

    estimate = check_attack_budget(config, classifier, dataset, shard_indices, attacks, device, state.next_position,
                                   lambda measured: broadcast_object(measured, dctx))
    if announce is not None and estimate is not None:
        announce(estimate)
    t_prep = time.perf_counter()
    share_attack_states(state, attacks, ctx, dctx)
    t_loop = time.perf_counter()
    from .examples import ExampleRecorder

    examples = ExampleRecorder.for_run(config, ctx, state.next_position, digest, dctx)
    run_attacks(ctx, attacks, dataset, shard_indices, config.batch_size, state, state_file, after_batch,
                config.ensemble, global_position=shard.global_position if dctx.enabled else None,
                examples=examples)
    t_done = time.perf_counter()
    state = gather_state(state, shard, dctx)
    resumed_from = state.resumed_from

    metrics, per_example = summarize(state, attacks, len(dataset.classes), config.ensemble)
    report["accuracy"] = metrics["clean"]["accuracy"]
    report["robust_accuracy"] = metrics["worst_case"]["accuracy"]
    report["metrics"] = metrics
    report["per_example"] = per_example
    report["attacks"] = [attack.describe() for attack in attacks]
    threat = next((a.threat_model() for a in attacks if a.threat_model() is not None), None)
    report["threat_model"] = (
        {**threat_model_description(threat["norm"], threat["eps"]),
         "perturbs": "pixels in [0, 1] at the dataset's native resolution, before the model's resize/normalise"}
        if threat is not None else None
    )
    report["attack_options"] = {"preset": config.preset, **options}
    report["ensemble"] = {
        "mode": config.ensemble,
        "order": names,
        "note": ("each attack ran only on the images no earlier attack broke (per-attack numbers are cumulative)"
                 if config.ensemble == "cascade" else "every attack ran on every clean-correct image (standalone)"),
        "per_attack": {n: {k: metrics["attacks"][n][k] for k in ("n_attacked", "n_broken")} for n in names},
    }
    report["resume"] = {"enabled": config.resume, "config_hash": digest,
                        "state_file": str(state_path) if state_path else None,
                        "resumed_from_position": resumed_from}

    if config.sanity:
        sanity = run_sanity_checks(ctx, attacks, state, dataset, indices, config.batch_size) if dctx.is_main else None
        sanity = broadcast_object(sanity, dctx)  # rank 0 probes the gathered state, as one process would
        if dctx.is_main:
            warn_if_unreliable(sanity)
    else:
        sanity = {"ran": False, "reason": "disabled with --no-sanity", "unreliable": None}
    report["sanity"] = sanity
    report["unreliable"] = sanity["unreliable"]
    if "defense" in report:  # the adaptive probe beside the defense it measured (or why it did not run)
        report["defense"]["adaptive_check"] = (
            sanity["checks"]["adaptive_defense"] if "adaptive_defense" in sanity.get("checks", {}) else
            {"ran": False, "reason": sanity.get("checks_skipped", {}).get("adaptive_defense", sanity.get("reason"))})
    if examples is not None:
        report["examples"] = examples.describe()
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
