"""``mmrobust study NAME``: the study's analyses, one command each, as tables (CSV + JSON) and a plot (PNG).

Every study writes ``OUTPUT_DIR/cells/*.json`` (one per finished cell), ``table.csv``, ``table.json`` and
``plot.png``, prints the table, and reuses finished cells when run again with the same options (resume).
Defaults are sized for ``proxy:digits`` on two CPU cores (a few minutes per study).
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from ..attacks.registry import names_of
from ..studies.options import NONE
from ..training.methods import METHOD_SPECS
from .errors import user_errors_exit
from .options import PROMPT, TEXT, Shared, pixels, with_options

study_app = typer.Typer(
    name="study",
    help="The study's analyses (eps, classes, train-size, loss-ablation, params): tables and plots, resumable.",
    no_args_is_help=True,
)


# ------------------------------------------------------------------------------------------ shared options
#: options every study takes (declared once; a study drops the ones it replaces with ``exclude``)
STUDY = (
    Shared("output_dir", str, typer.Option(..., "--output-dir", "-o", help="Study folder: cells/, table.csv, table.json, plot.png.")),
    Shared("model", List[str], typer.Option(["proxy:digits"], "--model", "-m", help="Model spec (tiny, proxy:NAME, ckpt:DIR, ...); repeat to compare.")),
    Shared("dataset", str, typer.Option("digits", "--dataset", "-d", help="Dataset (see `mmrobust datasets`).")),
    Shared("data_root", Optional[str], typer.Option(None, "--data-root", help="Folder holding the dataset files (cifar10, tinyimagenet).")),
    Shared("n_eval", int, typer.Option(100, "--n-eval", "-n", help="Held-out images per evaluation (capped at those available).")),
    Shared("seed", int, typer.Option(0, "--seed", help="Seed for sub-sampling, class subsets, training and attacks; recorded.")),
    Shared("seeds", Optional[str], typer.Option(None, "--seeds", help="Run the whole study once per seed (e.g. 0,1,2; overrides --seed) under DIR/seed-S and aggregate: mean ± sd, t interval, pooled 95 % interval.")),
    Shared("reference", Optional[str], typer.Option(None, "--reference", help="Row every other row is compared with on the same images (cell key, setting or model): difference, paired bootstrap 95 % interval, exact McNemar p. Default: the first row (the model before fine-tuning) / the first --model.")),
    Shared("device", Optional[str], typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: best available).")),
    Shared("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress bars.")),
    Shared("sanity", bool, typer.Option(False, "--sanity/--no-sanity", help="Run the robustness sanity checks per cell (slower; without them cells are 'unchecked').")),
    Shared("batch_size", int, typer.Option(100, "--batch-size", "-b", help="Evaluation batch size.")),
    Shared("templates", str, typer.Option("study", "--templates", help="Prompt templates (study = 'This is a photo of a {}').")),
    Shared("eval_eps", float, typer.Option(16.0, "--eval-eps", help="Evaluation L-inf budget K (K/255).")),
    Shared("eval_steps", int, typer.Option(10, "--eval-steps", help="Steps of the evaluation image attack.")),
    Shared("image_attack", str, typer.Option("pgd", "--image-attack", help=f"Image attack: {', '.join(names_of('image') + [NONE])}.")),
    Shared("multimodal_attack", str, typer.Option("sep", "--multimodal-attack", help=f"Multimodal attack: {', '.join(names_of('multimodal') + [NONE])}.")),
)
#: options of the fine-tuning studies
TRAINING = (
    Shared("method", str, typer.Option("mmcoa", "--method", help=f"Fine-tuning method: {', '.join(METHOD_SPECS)}.")),
    Shared("epochs", int, typer.Option(1, "--epochs", help="Fine-tuning epochs per cell (equal for every cell).")),
    Shared("train_batch_size", int, typer.Option(32, "--train-batch-size", help="Fine-tuning batch size.")),
    Shared("lr", float, typer.Option(1e-4, "--lr", help="AdamW learning rate (small proxies need ~1e-4).")),
    Shared("train_eps", float, typer.Option(16.0, "--train-eps", help="Training PGD budget K (K/255).")),
    Shared("train_steps", int, typer.Option(5, "--train-steps", help="Training PGD steps.")),
    Shared("n_train", int, typer.Option(256, "--n-train", help="Fine-tuning images per cell (a fixed random subset).")),
    Shared("train_mode", Optional[str], typer.Option(None, "--train", help="Parameters to train (full, image, text, last-k, prompt; default: method's).")),
    Shared("lambda_img", float, typer.Option(0.5, "--lambda-img", help="MMCoA weight of the adversarial-image term.")),
    Shared("lambda_txt", float, typer.Option(0.5, "--lambda-txt", help="MMCoA weight of the adversarial-text term.")),
    Shared("baseline", bool, typer.Option(True, "--baseline/--no-baseline", help="Also evaluate the model before fine-tuning.")),
    Shared("ood_dataset", Optional[str], typer.Option(
        None, "--ood-dataset",
        help="Also evaluate every row's model zero-shot on these datasets (as `mmrobust benchmark --datasets`: comma "
             "list, @study, a file) with the same attacks: DIR/ood/ holds that benchmark (paired tests vs the model "
             "before fine-tuning); the table gains OOD-average columns.")),
)


def _options(values: dict[str, Any]) -> Any:
    """StudyOptions from a command's arguments (those it has; the rest keep their defaults). K/255 -> fractions."""
    from ..studies import StudyOptions
    from ..studies.options import parse_list, seed_value

    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key == "quiet":
            kwargs["progress"] = not value
        elif key == "model":
            kwargs["models"] = tuple(value)
        elif key == "ood_dataset":
            kwargs["ood_datasets"] = value
        elif key == "seeds":
            kwargs["seeds"] = None if value is None else tuple(parse_list(value, "--seeds", seed_value))
        elif key in ("eval_eps", "train_eps"):
            kwargs[key] = pixels(value, "linf", "--" + key.replace("_", "-"))
        elif key in StudyOptions.__dataclass_fields__ and value is not None:
            kwargs[key] = value
    return StudyOptions(**kwargs)


def _run(name: str, values: dict[str, Any], study_args: dict[str, Any]) -> None:
    from ..studies import get_study, run_study

    run_study(get_study(name), _options(values), study_args, echo=typer.echo)


# ------------------------------------------------------------------------------------------ commands
@study_app.command("eps")
@user_errors_exit
@with_options(STUDY, TEXT, PROMPT, exclude=("eval_eps",))
def eps_command(
    eps: str = typer.Option("2,4,8,16,32", "--eps", help="Budgets K (K/255), comma-separated."),
    **shared: Any,
) -> None:
    """Accuracy vs. perturbation strength for one or more models (repeat --model to compare)."""
    _run("eps", shared, {"eps": eps})


@study_app.command("classes")
@user_errors_exit
@with_options(STUDY, TEXT, PROMPT)
def classes_command(
    classes: str = typer.Option("2,5,10", "--classes", help="Numbers of classes k, comma-separated (seeded, nested subsets)."),
    **shared: Any,
) -> None:
    """Attack strength (clean - attacked accuracy) vs. number of classes."""
    _run("classes", shared, {"classes": classes})


@study_app.command("train-size")
@user_errors_exit
@with_options(STUDY, TEXT, PROMPT, TRAINING, exclude=("n_train",))
def train_size_command(
    shots: Optional[str] = typer.Option("1,4,16", "--shots", help="Images per class, comma-separated ('' for none)."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Also: total training images, comma-separated."),
    **shared: Any,
) -> None:
    """Robustness vs. training-set size: fine-tune on K shots per class (and/or N images), then evaluate."""
    baseline = shared.pop("baseline")
    _run("train-size", shared, {"shots": shots or None, "n_train_sizes": sizes or None, "baseline": baseline})


@study_app.command("loss-ablation")
@user_errors_exit
@with_options(STUDY, TEXT, PROMPT, TRAINING, exclude=("lambda_img", "lambda_txt"))
def loss_ablation_command(
    lambdas: str = typer.Option("1:0,0:1,0.5:0.5", "--lambdas", help="IMG:TXT weight pairs, comma-separated."),
    **shared: Any,
) -> None:
    """MMCoA's loss terms: fine-tune with each (lambda_img, lambda_txt), then evaluate."""
    baseline = shared.pop("baseline")
    _run("loss-ablation", shared, {"lambdas": lambdas, "baseline": baseline})


@study_app.command("params")
@user_errors_exit
@with_options(STUDY, TEXT, PROMPT, TRAINING, exclude=("train_mode",))
def params_command(
    modes: str = typer.Option("full,image,text,last-k", "--modes",
                              help="What to train per cell: full, image, text, last-k, prompt (comma-separated)."),
    last_k: int = typer.Option(4, "--last-k", help="With last-k: the last K parameter tensors of the image tower."),
    **shared: Any,
) -> None:
    """Robustness vs. trained-parameter count: fine-tune all / one tower / last K tensors / a prompt."""
    baseline = shared.pop("baseline")
    _run("params", shared, {"modes": modes, "last_k": last_k, "baseline": baseline})
