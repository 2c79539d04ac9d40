"""``mmrobust study NAME``: the study's analyses, one command each, as tables (CSV + JSON) and a plot (PNG).

Every study writes ``OUTPUT_DIR/cells/*.json`` (one per finished cell), ``table.csv``, ``table.json`` and
``plot.png``, prints the table, and reuses finished cells when run again with the same options (resume).
Defaults are sized for ``proxy:digits`` on two CPU cores (a few minutes per study).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import typer

from ..studies.options import StudyOptions, StudyTraining
from ..training.options import TrainingOptions
from .errors import user_errors_exit
from .options import Shared, flags, method_flags, method_values, values_for, with_options

study_app = typer.Typer(
    name="study",
    help="The study's analyses (eps, classes, train-size, loss-ablation, params): tables and plots, resumable.",
    no_args_is_help=True,
)

#: StudyOptions fields only the fine-tuning studies take
TRAINING_ONLY = tuple(f.name for f in dataclasses.fields(StudyTraining))
#: the fine-tuning studies' switch for their reference row (a grid argument, not a cell option)
BASELINE = Shared("baseline", bool, typer.Option(
    True, "--baseline/--no-baseline", help="Also evaluate the model before fine-tuning."))


def study_flags(*, training: bool, exclude: tuple[str, ...] = ()) -> tuple[Shared, ...]:
    """Every study's flags, generated from StudyOptions' fields (the fine-tuning ones and the methods'
    hyperparameters only for the fine-tuning studies). precision/compile: the studies run fp32, uncompiled."""
    skip = set(exclude) | {"precision", "compile"} | (set() if training else set(TRAINING_ONLY))
    out = flags(StudyOptions, exclude=tuple(skip))
    return out + method_flags() + (BASELINE,) if training else out


def _options(values: dict[str, Any]) -> Any:
    """StudyOptions from a command's flags (those it has; the rest keep their defaults). K/255 -> fractions."""
    return StudyOptions(**values_for(StudyOptions, values, norm="linf"), method_options=method_values(values))


def _run(name: str, values: dict[str, Any], study_args: dict[str, Any]) -> None:
    from ..studies import get_study, run_study

    if "baseline" in values:
        study_args = {**study_args, "baseline": values["baseline"]}
    from ..benchmark.study_ood import BenchmarkOOD

    run_study(get_study(name), _options(values), study_args, echo=typer.echo, ood=BenchmarkOOD())


# ------------------------------------------------------------------------------------------ commands
@study_app.command("eps")
@user_errors_exit
@with_options(study_flags(training=False, exclude=("eval_eps",)))
def eps_command(
    eps: str = typer.Option("2,4,8,16,32", "--eps", help="Budgets K (K/255), comma-separated."),
    **shared: Any,
) -> None:
    """Accuracy vs. perturbation strength for one or more models (repeat --model to compare)."""
    _run("eps", shared, {"eps": eps})


@study_app.command("classes")
@user_errors_exit
@with_options(study_flags(training=False))
def classes_command(
    classes: str = typer.Option("2,5,10", "--classes", help="Numbers of classes k, comma-separated (seeded, nested subsets)."),
    **shared: Any,
) -> None:
    """Attack strength (clean - attacked accuracy) vs. number of classes."""
    _run("classes", shared, {"classes": classes})


@study_app.command("train-size")
@user_errors_exit
@with_options(study_flags(training=True, exclude=("n_train",)))
def train_size_command(
    shots: Optional[str] = typer.Option("1,4,16", "--shots", help="Images per class, comma-separated ('' for none)."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Also: total training images, comma-separated."),
    **shared: Any,
) -> None:
    """Robustness vs. training-set size: fine-tune on K shots per class (and/or N images), then evaluate."""
    _run("train-size", shared, {"shots": shots or None, "n_train_sizes": sizes or None})


@study_app.command("loss-ablation")
@user_errors_exit
@with_options(study_flags(training=True), exclude=("lambda_img", "lambda_txt"))
def loss_ablation_command(
    lambdas: str = typer.Option("1:0,0:1,0.5:0.5", "--lambdas", help="IMG:TXT weight pairs, comma-separated."),
    **shared: Any,
) -> None:
    """MMCoA's loss terms: fine-tune with each (lambda_img, lambda_txt), then evaluate."""
    _run("loss-ablation", shared, {"lambdas": lambdas})


@study_app.command("params")
@user_errors_exit
@with_options(study_flags(training=True, exclude=("train_mode",)), flags(TrainingOptions, only=("last_k",)))
def params_command(
    modes: str = typer.Option("full,image,text,last-k", "--modes",
                              help="What to train per cell: full, image, text, last-k, prompt (comma-separated)."),
    **shared: Any,
) -> None:
    """Robustness vs. trained-parameter count: fine-tune all / one tower / last K tensors / a prompt."""
    _run("params", shared, {"modes": modes, "last_k": shared.pop("last_k")})
