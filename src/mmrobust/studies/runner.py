"""What every study does around its grid: pin the models, evaluate or fine-tune one cell, write the outputs.

The evaluation of a cell is :func:`mmrobust.eval.run.run_evaluation` (the loop behind ``mmrobust eval``) and
the fine-tuning :func:`mmrobust.training.train` (behind ``mmrobust train``), so a study's number is the
number those commands would print for the same options.

Layout of a study folder::

    DIR/models/<model>/      the pinned base weights (every cell starts from exactly these)
    DIR/cells/<key>.json     one finished cell (resume unit)
    DIR/reports/<key>-<hash>.json   the full evaluation report of a cell (sanity checks, per-example results)
    DIR/runs/<key>-<hash>/   a cell's fine-tuning run (checkpoints, log, report, final/); the hash covers
                             only what training depends on, so a new evaluation option re-uses the run
    DIR/table.csv, DIR/table.json, DIR/plot.png

Several jobs on one folder (``--share-output``, :mod:`mmrobust.utils.cells`) claim each cell, each pinned
model and each fine-tuning run (``.<name>.claim`` beside it), so no job redoes another's work; under torchrun
``job`` is the process group and ``shard`` says whether a cell's work is the whole job's (images sharded) or
this rank's alone (cells dealt to ranks).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ConfigError
from ..utils.cells import hold
from ..utils.distributed import DistributedContext
from ..utils.environment import environment_versions
from ..utils.files import check_writable
from .grid import Cell, CellStore, GridOutcome, config_hash, run_grid, slug
from .intervals import check_outcomes, images_fingerprint, outcomes_from_report
from .options import NONE, TRAIN_FIELDS, StudyOptions

if TYPE_CHECKING:
    from ..eval.run import EvalConfig

#: accuracy columns of an evaluation, in the order tables show them
MODALITIES = ("clean", "image", "text", "multimodal", "worst_case")


@dataclass
class PinnedModel:
    """A model spec as typed, and the checkpoint the study actually uses (with its weights' sha256)."""

    spec: str
    pinned_spec: str
    folder: Path
    weights_sha256: str


@dataclass
class StudyContext:
    """Everything a study's cells need: options, the study's own parsed arguments, folders, pinned models."""

    name: str
    options: StudyOptions
    args: dict[str, Any]
    out: Path
    echo: Callable[[str], None] = print
    pinned: dict[str, PinnedModel] = field(default_factory=dict)
    trains: bool = False
    #: the OOD benchmark (:class:`.ood.OODBackend`), passed in by the caller; None: no ``--ood-dataset``
    ood: Any = None
    #: the torchrun job (a world of one outside torchrun)
    job: DistributedContext = field(default_factory=DistributedContext)
    #: a cell's work is the whole job's (images sharded across ranks); False: this rank's alone (cells dealt)
    shard: bool = True
    _datasets: dict[Any, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- data
    def eval_dataset(self, classes: int | None = None):
        """The evaluation split (optionally its k-class view), loaded once per k."""
        from ..data import load_dataset
        from ..eval.class_subset import select_classes

        key = ("eval", classes)
        if key not in self._datasets:
            if ("eval", None) not in self._datasets:
                o = self.options
                self._datasets[("eval", None)] = load_dataset(o.dataset, o.data_root, o.split)
            self._datasets[key] = select_classes(self._datasets[("eval", None)], classes, self.options.seed)
        return self._datasets[key]

    def n_eval_for(self, classes: int | None = None) -> int:
        """``--n-eval`` capped at the images available (a 2-class subset of digits has ~90)."""
        return min(self.options.n_eval, len(self.eval_dataset(classes)))

    # ---------------------------------------------------------------- cells
    def cell_config(self, cell: Cell) -> dict[str, Any]:
        """What a cell's numbers depend on: its parameters, the shared options it uses, the base weights."""
        return {
            "study": self.name,
            "params": cell.params,
            "model": cell.model,
            "weights_sha256": self.pinned[cell.model].weights_sha256,
            "options": self.options.hash_fields(training=self.trains),
        }

    def training_hash(self, cell: Cell) -> str:
        """What a cell's fine-tuned weights depend on: a changed evaluation option (budget, attack, text goal)
        re-evaluates the same checkpoint instead of training it again. A task-aware ``--text-goal`` only changes
        the evaluation (training uses the label-free goal it maps to, :func:`training_goal`), so it counts as
        the goal training used."""
        from ..training.config import training_goal

        o = self.options
        training = {k: v for k, v in o.to_dict().items() if k in TRAIN_FIELDS}
        training["text_goal"] = training_goal(o.text_goal)
        return config_hash({
            "params": cell.params, "model": cell.model, "weights_sha256": self.pinned[cell.model].weights_sha256,
            "data": {"dataset": o.dataset, "data_root": o.data_root, "templates": o.templates, "seed": o.seed,
                     "n_eval": o.n_eval, "batch_size": o.batch_size},
            "training": training,
        })

    def run_dir(self, cell: Cell) -> Path:
        return self.out / "runs" / f"{cell.key}-{self.training_hash(cell)[:8]}"

    def report_path(self, cell: Cell, digest: str) -> Path:
        return self.out / "reports" / f"{cell.key}-{digest[:8]}.json"

    @property
    def shared(self) -> bool:
        """Other jobs work on the same folder (``--share-output``): claim what must not be done twice."""
        return bool(self.options.share_output)

    def cell_job(self) -> DistributedContext | None:
        """The ranks that do one cell's work together (None: this process alone)."""
        return self.job if self.shard else None

    def solo_kwargs(self, name: str) -> dict[str, Any]:
        """``{name: False}`` when a cell is this rank's alone (``shard=``/``distributed=`` of eval and train),
        else nothing: the plain call."""
        return {} if self.shard else {name: False}


# -------------------------------------------------------------------------------------------- models
def pin_model(spec: str, folder: Path, device: str | None = None) -> PinnedModel:
    """Save ``spec``'s weights once under ``folder`` (reused on resume; refused if it holds another model).

    Why: a ``proxy:`` spec names a recipe and ``ckpt:`` a folder that may be overwritten; a study that
    runs for hours must not mix two models, and the pinned copy lets anyone re-run one cell later.
    """
    from ..models import load_model, save_checkpoint
    from ..models.checkpoint import is_checkpoint, read_checkpoint_config

    if is_checkpoint(folder):
        config = read_checkpoint_config(folder)
        pinned_from = config.get("metadata", {}).get("pinned_from")
        if pinned_from != spec:
            raise ConfigError(f"{folder} holds a pinned copy of {pinned_from!r}, not {spec!r}; use another --output-dir")
    else:
        model = load_model(spec, device=device)
        save_checkpoint(model, folder, metadata={"pinned_from": spec})
        config = read_checkpoint_config(folder)
    return PinnedModel(spec, f"ckpt:{folder}", folder, str(config["weights_sha256"]))


# -------------------------------------------------------------------------------------------- evaluation
def evaluate(
    ctx: StudyContext,
    spec: str,
    report_path: Path,
    *,
    eps: float | None = None,
    classes: int | None = None,
) -> dict[str, Any]:
    """Clean / image / text / multimodal / worst-case accuracy of ``spec`` as one table row (fractions)."""
    from ..eval.run import run_evaluation

    from ..utils.budget import BudgetError

    config = study_eval_config(ctx, spec, eps=eps, classes=classes)
    try:
        report = run_evaluation(dataclasses.replace(config, output=str(report_path)), **ctx.solo_kwargs("shard"))
    except BudgetError as exc:
        raise exc.naming({"--steps": "--eval-steps"}) from None
    return row_from_report(report, report_path)


def study_eval_config(ctx: StudyContext, spec: str, *, eps: float | None = None, classes: int | None = None,
                      dataset: str | None = None) -> "EvalConfig":
    """The evaluation a study runs on ``spec``: its attacks, budget and text options (one place, so the OOD
    benchmark of :mod:`.ood` measures exactly what the study's own cells measure)."""
    from ..attacks.registry import values_read_by
    from ..eval.run import EvalConfig

    o = ctx.options
    names = o.attack_names()
    values = {"eps": o.eval_eps if eps is None else eps, "steps": o.eval_steps, "text_words": o.text_words,
              "text_candidates": o.text_candidates, "mlm": o.mlm, "text_goal": o.text_goal,
              "text_attack": None if o.text_attack == NONE else o.text_attack,
              "protect_classnames": o.protect_classnames, "min_similarity": o.min_similarity, "text_chunk": o.text_chunk}
    own = dataset is None
    return EvalConfig(
        model=spec, dataset=o.dataset if own else dataset, data_root=o.data_root, split=o.split if own else None,
        n_samples=ctx.n_eval_for(classes) if own else o.n_eval, batch_size=o.batch_size, device=o.device,
        seed=o.seed, templates=o.templates, progress=o.progress, attacks=names or None, sanity=o.sanity,
        resume=True, classes=classes, ensemble="each", save_examples=o.save_examples if own else 0,
        allow_long_run=o.allow_long_run, **values_read_by(names, values),
    )


def plan_line(ctx: StudyContext, n_cells: int, n_seeds: int) -> str:
    """``plan: 3 cells × 1 seed × 100 images × 1 attack × 10 steps = 3,000 image-steps``; a fine-tuning study adds
    what each fine-tune does (epochs × steps per epoch × attack steps)."""
    import math

    from ..attacks.registry import build_attacks
    from ..eval.budget import grid_plan
    from ..utils.budget import Plan, plural

    config = study_eval_config(ctx, "plan")
    grid = ((n_cells, plural(n_cells, "cell")), (n_seeds, plural(n_seeds, "seed")))
    line = grid_plan(grid, config.n_samples, build_attacks(*config.resolve_attacks())).line()
    if not ctx.trains:
        return line
    o = ctx.options
    per_epoch = () if o.n_train is None else ((math.ceil(o.n_train / o.train_batch_size), "steps per epoch"),)
    training = Plan(((o.epochs, plural(o.epochs, "epoch")), *per_epoch,
                     (o.train_steps, plural(o.train_steps, "attack step"))), "attack steps")
    return f"{line}; each fine-tune {training.line().removeprefix('plan: ')}"


def row_from_report(report: dict[str, Any], report_path: Path | None = None) -> dict[str, Any]:
    """The numbers a table needs from an evaluation report, with its reliability verdict."""
    metrics = report["metrics"]
    modal = metrics.get("by_modality") or {"clean": metrics["clean"]["accuracy"]}
    row: dict[str, Any] = {m: modal.get(m) for m in MODALITIES}
    row["n"] = report["n_samples"]
    row["n_classes"] = report["dataset"]["n_classes"]
    if "class_subset" in report["dataset"]:
        row["class_names"] = list(report["dataset"]["classes"])
    row["clean_std_error"] = metrics["clean"].get("std_error")
    row["attacks"] = {name: block["accuracy"] for name, block in metrics.get("attacks", {}).items()}
    sanity = report.get("sanity") or {}
    row["unreliable"] = report.get("unreliable")
    row["sanity_failed"] = list(sanity.get("failed") or [])
    row["sanity_ran"] = bool(sanity.get("ran"))
    row["report"] = str(report_path) if report_path is not None else None
    # per-image outcomes and which images: intervals and paired tests between rows (see intervals.py)
    row["correct"] = outcomes_from_report(report)
    row["images"] = images_fingerprint(report)
    return row


def check_cell_result(result: dict[str, Any]) -> str | None:
    """What makes a saved cell result unusable (None when it is consistent): accuracies are fractions, n a count."""
    def fraction(value: Any) -> bool:
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1)

    for key in MODALITIES:
        if not fraction(result.get(key)):
            return f"{key} = {result.get(key)!r} is not an accuracy in [0, 1]"
    attacks = result.get("attacks", {})
    if not isinstance(attacks, dict) or not all(fraction(v) for v in attacks.values()):
        return "attacks holds a value that is not an accuracy in [0, 1]"
    n = result.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
        return f"n = {n!r} is not a count"
    return check_outcomes(result)


def reliability(row: dict[str, Any]) -> str:
    """``ok`` (checks passed), ``UNRELIABLE (...)`` (a check failed) or ``unchecked`` (checks not run)."""
    if row.get("unreliable"):
        return f"UNRELIABLE ({', '.join(row.get('sanity_failed') or []) or 'sanity'})"
    if row.get("sanity_ran") and row.get("unreliable") is False:
        return "ok"
    return "unchecked"


# -------------------------------------------------------------------------------------------- training
def fine_tune(ctx: StudyContext, cell: Cell, digest: str, **overrides: Any) -> dict[str, Any]:
    """Fine-tune the cell's pinned model (reusing a finished run, resuming an interrupted one); with other jobs
    on the folder, under the run's claim (a run several cells evaluate is trained by one job, the others wait)."""
    run_dir = ctx.run_dir(cell)
    with hold(run_dir, ctx.shared, ctx.echo, ctx.cell_job(), what="fine-tune"):
        return _fine_tune(ctx, cell, run_dir, overrides)


def _fine_tune(ctx: StudyContext, cell: Cell, run_dir: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    from ..training import TrainConfig, train
    from ..training.config import training_goal
    from ..training.checkpointing import has_checkpoint

    o = ctx.options
    report_file = run_dir / "report.json"
    if report_file.is_file() and (run_dir / "final" / "mmrobust.json").is_file():
        return json.loads(report_file.read_text(encoding="utf-8"))
    settings: dict[str, Any] = dict(
        method=o.method, epochs=o.epochs, batch_size=o.train_batch_size, lr=o.lr, train=o.train_mode,
        eps=o.train_eps, alpha=o.train_alpha, steps=o.train_steps, text_attack=o.train_text_attack, mlm=o.mlm, text_words=o.text_words,
        text_candidates=o.text_candidates, text_goal=training_goal(o.text_goal), method_options=dict(o.method_options), templates=o.templates,
        n_train=o.n_train, shots=None, protect_classnames=o.protect_classnames, min_similarity=o.min_similarity,
        **({} if o.text_chunk is None else {"text_chunk": o.text_chunk}),
    )
    settings.update(overrides)
    config = TrainConfig(
        model=ctx.pinned[cell.model].pinned_spec, dataset=o.dataset, output_dir=str(run_dir), data_root=o.data_root,
        n_eval=ctx.n_eval_for(None), eval_batch_size=o.batch_size, seed=o.seed, device=o.device,
        progress=o.progress, resume=has_checkpoint(run_dir), allow_long_run=o.allow_long_run, **settings,
    )
    from ..utils.budget import BudgetError

    try:
        return train(config, **ctx.solo_kwargs("distributed"))
    except BudgetError as exc:
        raise exc.naming({"--steps": "--train-steps"}) from None


def train_and_evaluate(ctx: StudyContext, cell: Cell, digest: str, **overrides: Any) -> dict[str, Any]:
    """One fine-tuning cell: train, then evaluate the final checkpoint with the study's attacks."""
    report = fine_tune(ctx, cell, digest, **overrides)
    row = evaluate(ctx, f"ckpt:{report['final_checkpoint']}", ctx.report_path(cell, digest))
    trainable = report["trainable"]
    row.update(
        method=report["method"],
        train_mode=trainable["mode"],
        trained_parameters=trainable["n_trainable_parameters"],
        total_parameters=trainable["n_total_parameters"],
        trained_fraction=trainable["trainable_fraction"],
        n_train_images=report["data"]["train"]["n_used"],
        train_steps=report["global_steps"],
        train_s=(report.get("timings") or {}).get("train_s"),
        checkpoint=report["final_checkpoint"],
    )
    return row


def baseline(ctx: StudyContext, cell: Cell, digest: str) -> dict[str, Any]:
    """The reference cell of a fine-tuning study: the pinned model, not fine-tuned."""
    row = evaluate(ctx, ctx.pinned[cell.model].pinned_spec, ctx.report_path(cell, digest))
    row.update(method="none", train_mode="none", trained_parameters=0, n_train_images=0, train_steps=0)
    return row


# -------------------------------------------------------------------------------------------- the run
def prepare(ctx: StudyContext) -> None:
    """Create the study folder and pin the models (before any cell runs)."""
    try:
        ctx.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --output-dir {ctx.out}: {exc.strerror or exc}") from None
    check_writable(ctx.out / "table.json")
    for spec in ctx.options.models:
        if spec not in ctx.pinned:
            ctx.pinned[spec] = pin_shared(ctx, spec)


def pin_shared(ctx: StudyContext, spec: str) -> PinnedModel:
    """:func:`pin_model` once: by rank 0 first under torchrun (the others then read its copy), under the model
    folder's claim when other jobs share the folder (one job saves it, the others wait and read it)."""
    folder = ctx.out / "models" / slug(spec)
    if ctx.job.is_main:
        with hold(folder, ctx.shared, ctx.echo, what="pinned model"):
            pinned = pin_model(spec, folder, ctx.options.device)
    ctx.job.barrier()
    return pinned if ctx.job.is_main else pin_model(spec, folder, ctx.options.device)


def run_cells(ctx: StudyContext, cells: list[Cell], compute: Callable[[Cell, str], dict[str, Any]]) -> GridOutcome:
    return run_grid(cells, ctx.cell_config, compute, CellStore(ctx.out / "cells", check_cell_result), desc=f"study {ctx.name}",
                    progress=ctx.options.progress, echo=ctx.echo, job=ctx.job, shared=ctx.shared)


def study_metadata(ctx: StudyContext, outcome: GridOutcome, started: float) -> dict[str, Any]:
    from ..utils.cells import mode

    distributed = ({"distributed": {"world_size": ctx.job.world_size, "unit": mode(len(outcome.records), ctx.job)}}
                   if ctx.job.enabled else {})
    return {
        **distributed,
        "study": ctx.name,
        "config": ctx.options.to_dict(),
        "args": ctx.args,
        "seed": ctx.options.seed,
        "models": {spec: {"pinned": p.pinned_spec, "weights_sha256": p.weights_sha256} for spec, p in ctx.pinned.items()},
        "cells": {"total": len(outcome.records), "reused": outcome.n_reused, "computed": outcome.n_run},
        "ood": outcome.ood,
        "seconds": round(time.perf_counter() - started, 1),
        "versions": environment_versions(),
    }
