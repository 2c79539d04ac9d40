"""``mmrobust train``: (adversarial) fine-tuning with MMCoA or a baseline; torchrun-ready.

Single process: ``mmrobust train --model proxy:digits --method mmcoa --dataset digits --output-dir runs/mmcoa``.
Data-parallel: ``torchrun --nproc-per-node 2 -m mmrobust.cli.main train ...`` (gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

from typing import Any, Optional

import typer

from ..training.config import TRAIN_MODES, TrainConfig, eps_label, parse_eps
from ..training.methods import METHOD_SPECS
from .errors import user_errors_exit
from .options import PROMPT, TEXT, with_options


@user_errors_exit
@with_options(TEXT, PROMPT)
def train_command(
    model: str = typer.Option(..., "--model", "-m", help="Model to fine-tune: tiny, proxy:NAME, ckpt:DIR, ..."),
    method: str = typer.Option(..., "--method", help="Defense: " + "; ".join(f"{m.name} ({m.description})" for m in METHOD_SPECS.values()) + "."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Training dataset (see `mmrobust datasets`)."),
    output_dir: str = typer.Option(..., "--output-dir", "-o", help="Run folder: checkpoints, log.jsonl, report.json, final/."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Folder holding the dataset files."),
    train_split: str = typer.Option("train", "--train-split", help="Split to fine-tune on."),
    eval_split: Optional[str] = typer.Option(None, "--eval-split", help="Held-out split scored after each epoch (default: the dataset's test split)."),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the training images."),
    batch_size: int = typer.Option(128, "--batch-size", "-b", help="Global batch size (split over processes under torchrun)."),
    lr: float = typer.Option(1e-6, "--lr", help="AdamW learning rate (MMCoA's reference 1e-6; small proxies need ~1e-4)."),
    weight_decay: float = typer.Option(0.2, "--weight-decay", help="AdamW weight decay (reference 0.2)."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Clip the global gradient norm (0 = off)."),
    train_mode: Optional[str] = typer.Option(None, "--train", help=f"Parameters to train: {', '.join(TRAIN_MODES)} (default: the method's reference choice)."),
    last_k: int = typer.Option(4, "--last-k", help="With --train last-k: the last K parameter tensors of the image tower."),
    prompt_size: Optional[int] = typer.Option(None, "--prompt-size", help="With --train prompt: frame width in pixels (default: 30/224 of the input)."),
    eps: str = typer.Option("1", "--eps", help="Training PGD L-inf radius: k means k/255, or a fraction like 1/255."),
    alpha: Optional[str] = typer.Option(
        None, "--alpha", help="Training PGD step size (k/255; default min(eps, max(eps/4, 1/255)), 1/255 at 1/255)."),
    steps: int = typer.Option(10, "--steps", help="Training PGD steps."),
    lambda_img: float = typer.Option(0.5, "--lambda-img", help="MMCoA weight of the adversarial-image term."),
    lambda_txt: float = typer.Option(0.5, "--lambda-txt", help="MMCoA weight of the adversarial-text term."),
    targets: str = typer.Option("class", "--targets", help="Contrastive targets: class (same-class captions are positives) or instance (reference arange)."),
    templates: str = typer.Option("study", "--templates", help="Prompt templates for captions and class prompts (study = 'This is a photo of a {}')."),
    n_train: Optional[int] = typer.Option(None, "--n-train", help="Fine-tune on a fixed random subset of N images."),
    shots: Optional[int] = typer.Option(None, "--shots", help="Fine-tune on K images per class (fixed, seeded)."),
    n_eval: Optional[int] = typer.Option(500, "--n-eval", help="Held-out images scored after each epoch."),
    eval_attack: str = typer.Option("none", "--eval-attack", help="Also score PGD after each epoch: none or pgd."),
    eval_eps: Optional[str] = typer.Option(None, "--eval-eps", help="PGD radius for the per-epoch score (default: --eps)."),
    eval_steps: int = typer.Option(10, "--eval-steps", help="PGD steps for the per-epoch score."),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", help="Also checkpoint every N steps (0 = once per epoch)."),
    seed: int = typer.Option(0, "--seed", help="Seed for data order, attacks and sub-sampling."),
    seeds: Optional[str] = typer.Option(
        None, "--seeds", help="Fine-tune once per seed (e.g. 0,1,2; overrides --seed) under OUTPUT_DIR/seed-S, "
                              "finished seeds reused; OUTPUT_DIR/seeds.json: mean ± sd, t interval, pooled 95 % interval."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N or mps (default: best available)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --output-dir from its last checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    precision: str = typer.Option(
        "fp32", "--precision", help="Training attack and forward/backward arithmetic: fp32, tf32 (CUDA) or bf16 (AMP)."
    ),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model's towers (off by default)."),
    gather_with_grad: bool = typer.Option(
        False, "--gather-with-grad",
        help="MMCoA/text-AT under torchrun: contrast against the global batch (all ranks' features, with gradients) "
             "instead of each rank's slice; the loss and gradients then do not depend on the world size."),
    **shared: Any,
) -> None:
    """Fine-tune a model with a defense and write a loadable checkpoint (OUTPUT_DIR/final) and a report."""
    from ..training import train

    config = TrainConfig(
        model=model, method=method, dataset=dataset, output_dir=output_dir, data_root=data_root,
        train_split=train_split, eval_split=eval_split, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, grad_clip=grad_clip, train=train_mode, last_k=last_k, prompt_size=prompt_size,
        eps=parse_eps(eps, "--eps"), alpha=None if alpha is None else parse_eps(alpha, "--alpha"), steps=steps,
        **{k: v for k, v in shared.items() if v is not None}, lambda_img=lambda_img, lambda_txt=lambda_txt, targets=targets, templates=templates,
        n_train=n_train, shots=shots, n_eval=n_eval, eval_attack=eval_attack,
        eval_eps=None if eval_eps is None else parse_eps(eval_eps, "--eval-eps"), eval_steps=eval_steps,
        checkpoint_every_steps=checkpoint_every, seed=seed, device=device, resume=resume, progress=not quiet,
        precision=precision, compile=compile_model, gather_with_grad=gather_with_grad,
    )
    if seeds is not None:
        _train_seeds(config, seeds)
        return
    report = train(config)
    if report.get("distributed", {}).get("world_size", 1) > 1 and "timings" not in report:
        return  # non-zero ranks stay quiet; rank 0 prints the summary
    trainable = report["trainable"]
    typer.echo(
        f"{report['method']} on {report['data']['train']['name']} ({report['data']['train']['n_used']} images, "
        f"{report['global_steps']} steps, eps {eps_label(config.eps)}): trained {trainable['mode']} = "
        f"{trainable['n_trainable_parameters']:,} of {trainable['n_total_parameters']:,} parameters"
    )
    final = report.get("final_eval") or {}
    if final:
        robust = f", PGD {100 * final['pgd_accuracy']:.2f}%" if "pgd_accuracy" in final else ""
        typer.echo(f"held-out clean accuracy {100 * final['clean_accuracy']:.2f}%{robust} (n={final['n']})")
    typer.echo(f"model: ckpt:{report['final_checkpoint']}")
    typer.echo(f"report: {output_dir}/report.json")


def _train_seeds(config: Any, seeds: str) -> None:
    """``--seeds``: one fine-tune per seed, then the seeds' summary (see :mod:`mmrobust.training.seeds`)."""
    import os

    from ..errors import ConfigError
    from ..stats import format_interval
    from ..training.seeds import train_seeds

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers, got {seeds!r}") from None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--seeds runs the seeds one after another; under torchrun start one run per --seed")
    summary = train_seeds(config, seed_list)
    for run in summary["runs"]:
        typer.echo(f"seed {run['seed']}: model ckpt:{run['final_checkpoint']}")
    for metric, s in summary["final_eval"].items():
        typer.echo(f"held-out {metric.replace('_', ' ')}: {100 * s['mean']:.1f} ± {100 * s['sd']:.1f} over "
                   f"{s['n_seeds']} seeds (t interval [{100 * s['mean_low']:.1f}, {100 * s['mean_high']:.1f}]); pooled "
                   f"{format_interval(s['pooled_successes'] / s['pooled_n'], s['pooled_low'], s['pooled_high'])} "
                   f"(n={s['pooled_n']})")
    typer.echo(f"summary: {config.output_dir}/seeds.json")
