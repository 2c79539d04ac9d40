"""``mmrobust study NAME``: the study's analyses, one command each, as tables (CSV + JSON) and a plot (PNG).

Every study writes ``OUTPUT_DIR/cells/*.json`` (one per finished cell), ``table.csv``, ``table.json`` and
``plot.png``, prints the table, and reuses finished cells when run again with the same options (resume).
Defaults are sized for ``proxy:digits`` on two CPU cores (a few minutes per study).
"""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from .errors import user_errors_exit

study_app = typer.Typer(
    name="study",
    help="The study's analyses (eps, classes, train-size, loss-ablation, params): tables and plots, resumable.",
    no_args_is_help=True,
)


# ------------------------------------------------------------------------------------------ shared options
def _model() -> Any:
    return typer.Option(["proxy:digits"], "--model", "-m", help="Model spec (tiny, proxy:NAME, ckpt:DIR, ...).")


def _output_dir() -> Any:
    return typer.Option(..., "--output-dir", "-o", help="Study folder: cells/, table.csv, table.json, plot.png.")


def _dataset() -> Any:
    return typer.Option("digits", "--dataset", "-d", help="Dataset (see `mmrobust datasets`).")


def _data_root() -> Any:
    return typer.Option(None, "--data-root", help="Folder holding the dataset files (cifar10, tinyimagenet).")


def _n_eval() -> Any:
    return typer.Option(100, "--n-eval", "-n", help="Held-out images per evaluation (capped at those available).")


def _seed() -> Any:
    return typer.Option(0, "--seed", help="Seed for sub-sampling, class subsets, training and attacks; recorded.")


def _device() -> Any:
    return typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: best available).")


def _quiet() -> Any:
    return typer.Option(False, "--quiet", "-q", help="No progress bars.")


def _sanity() -> Any:
    return typer.Option(False, "--sanity/--no-sanity",
                        help="Run the robustness sanity checks per cell (slower; without them cells are 'unchecked').")


def _batch_size() -> Any:
    return typer.Option(100, "--batch-size", "-b", help="Evaluation batch size.")


def _templates() -> Any:
    return typer.Option("study", "--templates", help="Prompt templates (study = 'This is a photo of a {}').")


def _eval_eps() -> Any:
    return typer.Option(16.0, "--eval-eps", help="Evaluation L-inf budget k (k/255).")


def _eval_steps() -> Any:
    return typer.Option(10, "--eval-steps", help="Steps of the evaluation image attack.")


def _image_attack() -> Any:
    return typer.Option("pgd", "--image-attack", help="Image attack (pgd, apgd, fgsm, square, ... or none).")


def _text_attack() -> Any:
    return typer.Option("embed-sub", "--text-attack", help="Text attack (embed-sub, typo, bert-attack or none).")


def _mm_attack() -> Any:
    return typer.Option("sep", "--multimodal-attack", help="Multimodal attack (sep, co-attack or none).")


def _text_words() -> Any:
    return typer.Option(1, "--text-words", help="Words the text attack may change per prompt.")


def _mlm() -> Any:
    return typer.Option(None, "--mlm", help="Masked language model spec for bert-attack.")


def _text_goal() -> Any:
    return typer.Option("embedding-kl", "--text-goal",
                        help="Text attacks' goal: embedding-kl (the study's, label-free), embedding-cos, zero-shot-margin.")


def _method() -> Any:
    return typer.Option("mmcoa", "--method", help="Fine-tuning method (clean, tecoa, text-at, fare, pmg-aft, mmcoa).")


def _epochs() -> Any:
    return typer.Option(1, "--epochs", help="Fine-tuning epochs per cell (equal for every cell).")


def _train_batch_size() -> Any:
    return typer.Option(32, "--train-batch-size", help="Fine-tuning batch size.")


def _lr() -> Any:
    return typer.Option(1e-4, "--lr", help="AdamW learning rate (small proxies need ~1e-4).")


def _train_eps() -> Any:
    return typer.Option(16.0, "--train-eps", help="Training PGD budget k (k/255).")


def _train_steps() -> Any:
    return typer.Option(5, "--train-steps", help="Training PGD steps.")


def _n_train() -> Any:
    return typer.Option(256, "--n-train", help="Fine-tuning images per cell (a fixed random subset).")


def _baseline() -> Any:
    return typer.Option(True, "--baseline/--no-baseline", help="Also evaluate the model before fine-tuning.")


def _lambda_img() -> Any:
    return typer.Option(0.5, "--lambda-img", help="MMCoA weight of the adversarial-image term.")


def _lambda_txt() -> Any:
    return typer.Option(0.5, "--lambda-txt", help="MMCoA weight of the adversarial-text term.")


def _train_mode() -> Any:
    return typer.Option(None, "--train", help="Parameters to train (full, image, text, last-k, prompt; default: method's).")


def _options(values: dict[str, Any]) -> Any:
    """StudyOptions from a command's arguments (those it has; the rest keep their defaults)."""
    from ..studies import StudyOptions

    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key == "quiet":
            kwargs["progress"] = not value
        elif key == "model":
            kwargs["models"] = tuple(value)
        elif key in StudyOptions.__dataclass_fields__:
            kwargs[key] = value
    return StudyOptions(**kwargs)


def _run(name: str, values: dict[str, Any], study_args: dict[str, Any]) -> None:
    from ..studies import get_study, run_study

    run_study(get_study(name), _options(values), study_args, echo=typer.echo)


# ------------------------------------------------------------------------------------------ commands
@study_app.command("eps")
@user_errors_exit
def eps_command(
    output_dir: str = _output_dir(),
    model: List[str] = _model(),
    eps: str = typer.Option("2,4,8,16,32", "--eps", help="Budgets k (k/255), comma-separated."),
    dataset: str = _dataset(), data_root: Optional[str] = _data_root(), n_eval: int = _n_eval(),
    seed: int = _seed(), device: Optional[str] = _device(), quiet: bool = _quiet(), sanity: bool = _sanity(),
    batch_size: int = _batch_size(), templates: str = _templates(), eval_steps: int = _eval_steps(),
    image_attack: str = _image_attack(), text_attack: str = _text_attack(), multimodal_attack: str = _mm_attack(),
    text_words: int = _text_words(), mlm: Optional[str] = _mlm(), text_goal: str = _text_goal(),
) -> None:
    """Accuracy vs. perturbation strength for one or more models (repeat --model to compare)."""
    _run("eps", {k: v for k, v in locals().items() if k != "eps"}, {"eps": eps})


@study_app.command("classes")
@user_errors_exit
def classes_command(
    output_dir: str = _output_dir(),
    model: List[str] = _model(),
    classes: str = typer.Option("2,5,10", "--classes", help="Numbers of classes k, comma-separated (seeded, nested subsets)."),
    dataset: str = _dataset(), data_root: Optional[str] = _data_root(), n_eval: int = _n_eval(),
    seed: int = _seed(), device: Optional[str] = _device(), quiet: bool = _quiet(), sanity: bool = _sanity(),
    batch_size: int = _batch_size(), templates: str = _templates(), eval_eps: float = _eval_eps(),
    eval_steps: int = _eval_steps(), image_attack: str = _image_attack(), text_attack: str = _text_attack(),
    multimodal_attack: str = _mm_attack(), text_words: int = _text_words(), mlm: Optional[str] = _mlm(), text_goal: str = _text_goal(),
) -> None:
    """Attack strength (clean - attacked accuracy) vs. number of classes."""
    _run("classes", {k: v for k, v in locals().items() if k != "classes"}, {"classes": classes})


@study_app.command("train-size")
@user_errors_exit
def train_size_command(
    output_dir: str = _output_dir(),
    model: List[str] = _model(),
    shots: Optional[str] = typer.Option("1,4,16", "--shots", help="Images per class, comma-separated ('' for none)."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Also: total training images, comma-separated."),
    dataset: str = _dataset(), data_root: Optional[str] = _data_root(), n_eval: int = _n_eval(),
    seed: int = _seed(), device: Optional[str] = _device(), quiet: bool = _quiet(), sanity: bool = _sanity(),
    batch_size: int = _batch_size(), templates: str = _templates(), eval_eps: float = _eval_eps(),
    eval_steps: int = _eval_steps(), image_attack: str = _image_attack(), text_attack: str = _text_attack(),
    multimodal_attack: str = _mm_attack(), text_words: int = _text_words(), mlm: Optional[str] = _mlm(), text_goal: str = _text_goal(),
    method: str = _method(), epochs: int = _epochs(), train_batch_size: int = _train_batch_size(), lr: float = _lr(),
    train_eps: float = _train_eps(), train_steps: int = _train_steps(), train_mode: Optional[str] = _train_mode(),
    lambda_img: float = _lambda_img(), lambda_txt: float = _lambda_txt(), baseline: bool = _baseline(),
) -> None:
    """Robustness vs. training-set size: fine-tune on K shots per class (and/or N images), then evaluate."""
    values = {k: v for k, v in locals().items() if k not in ("shots", "sizes", "baseline")}
    _run("train-size", values, {"shots": shots or None, "n_train_sizes": sizes or None, "baseline": baseline})


@study_app.command("loss-ablation")
@user_errors_exit
def loss_ablation_command(
    output_dir: str = _output_dir(),
    model: List[str] = _model(),
    lambdas: str = typer.Option("1:0,0:1,0.5:0.5", "--lambdas", help="IMG:TXT weight pairs, comma-separated."),
    dataset: str = _dataset(), data_root: Optional[str] = _data_root(), n_eval: int = _n_eval(),
    seed: int = _seed(), device: Optional[str] = _device(), quiet: bool = _quiet(), sanity: bool = _sanity(),
    batch_size: int = _batch_size(), templates: str = _templates(), eval_eps: float = _eval_eps(),
    eval_steps: int = _eval_steps(), image_attack: str = _image_attack(), text_attack: str = _text_attack(),
    multimodal_attack: str = _mm_attack(), text_words: int = _text_words(), mlm: Optional[str] = _mlm(), text_goal: str = _text_goal(),
    epochs: int = _epochs(), train_batch_size: int = _train_batch_size(), lr: float = _lr(),
    train_eps: float = _train_eps(), train_steps: int = _train_steps(), n_train: int = _n_train(),
    train_mode: Optional[str] = _train_mode(), baseline: bool = _baseline(),
) -> None:
    """MMCoA's loss terms: fine-tune with each (lambda_img, lambda_txt), then evaluate."""
    _run("loss-ablation", {k: v for k, v in locals().items() if k not in ("lambdas", "baseline")},
         {"lambdas": lambdas, "baseline": baseline})


@study_app.command("params")
@user_errors_exit
def params_command(
    output_dir: str = _output_dir(),
    model: List[str] = _model(),
    modes: str = typer.Option("full,image,text,last-k", "--modes",
                              help="What to train per cell: full, image, text, last-k, prompt (comma-separated)."),
    last_k: int = typer.Option(4, "--last-k", help="With last-k: the last K parameter tensors of the image tower."),
    dataset: str = _dataset(), data_root: Optional[str] = _data_root(), n_eval: int = _n_eval(),
    seed: int = _seed(), device: Optional[str] = _device(), quiet: bool = _quiet(), sanity: bool = _sanity(),
    batch_size: int = _batch_size(), templates: str = _templates(), eval_eps: float = _eval_eps(),
    eval_steps: int = _eval_steps(), image_attack: str = _image_attack(), text_attack: str = _text_attack(),
    multimodal_attack: str = _mm_attack(), text_words: int = _text_words(), mlm: Optional[str] = _mlm(), text_goal: str = _text_goal(),
    method: str = _method(), epochs: int = _epochs(), train_batch_size: int = _train_batch_size(), lr: float = _lr(),
    train_eps: float = _train_eps(), train_steps: int = _train_steps(), n_train: int = _n_train(),
    lambda_img: float = _lambda_img(), lambda_txt: float = _lambda_txt(), baseline: bool = _baseline(),
) -> None:
    """Robustness vs. trained-parameter count: fine-tune all / one tower / last K tensors / a prompt."""
    _run("params", {k: v for k, v in locals().items() if k not in ("modes", "last_k", "baseline")},
         {"modes": modes, "last_k": last_k, "baseline": baseline})
