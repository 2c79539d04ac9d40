"""An evaluation's planned work (images × attacks × steps) and its ceilings (:mod:`mmrobust.utils.budget`).

Why here and not in the CLI: the number of images and the cost of a step are only known once the dataset is
sampled and the model loaded, and the studies and the benchmark run evaluations too — they get the same
refusals (a batch larger than the split, an estimate over a week) without printing a line per cell.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch

from ..utils.budget import Plan, check_batch_size, check_estimate, duration, plural, time_step

Announce = Callable[[str], None]


def attack_steps(attack: Any) -> int:
    """Gradient steps (or queries) one attack spends per image: steps × restarts; a text attack one forward
    per image (its search runs once, on the prompts)."""
    if attack.modality == "text":
        return 1
    try:
        described = attack.describe()
    except (AttributeError, KeyError, TypeError):  # an attack whose description needs its prepared context
        return 1
    steps = described.get("steps") or described.get("square_queries") or 1
    return int(steps) * int(described.get("restarts") or 1)


def eval_plan(n_images: int, attacks: Sequence[Any]) -> Plan:
    """``32 images × 2 attacks × 10 steps``; attacks of different lengths: ``32 images × 110 steps (pgd 10, ...)``."""
    if not attacks:
        return Plan(((n_images, "images"),), "images (clean accuracy only)")
    steps = [attack_steps(a) for a in attacks]
    if len(set(steps)) == 1:
        return Plan(((n_images, "images"), (len(attacks), plural(len(attacks), "attack")),
                     (steps[0], plural(steps[0], "step"))), "image-steps")
    detail = ", ".join(f"{a.name} {s:,}" for a, s in zip(attacks, steps))
    return Plan(((n_images, "images"), (sum(steps), f"steps ({detail})")), "image-steps")


def check_split(config: Any, dataset: Any) -> None:
    """A batch larger than the split is refused (unless ``allow_long_run``)."""
    check_batch_size(config.batch_size, len(dataset), f"{dataset.name}/{dataset.split}", config.allow_long_run)


def check_attack_budget(config: Any, classifier: Any, dataset: Any, indices: Sequence[int], attacks: Sequence[Any],
                        device: torch.device, done: int = 0,
                        agree: Callable[[tuple[float, int, int]], tuple[float, int, int]] = tuple) -> str | None:
    """Time one attack step on the first batch, refuse a plan estimated at over a week (``done`` images are
    finished already, by a resumed run), and return the estimate as one line (None: nothing left to attack).
    With ``allow_long_run`` the step is still timed (the estimate is printed), nothing is refused.

    ``agree``: rank 0's measurement on every rank under torchrun, so all ranks stop together or none does."""
    if not attacks:
        return None
    remaining = len(indices) - done
    measured = _time_first_batch(classifier, dataset, indices[done:done + config.batch_size], device,
                                 attack_precision(attacks)) if remaining > 0 else (0.0, 0)
    seconds, first, remaining = agree((*measured, remaining))
    if remaining <= 0:
        return None
    steps = math.ceil(remaining / config.batch_size) * sum(attack_steps(a) for a in attacks)
    how = f"one timed on the first batch of {first:,} images"
    estimate = check_estimate(seconds, steps, ("attack steps", how), config.allow_long_run, ("--steps", "--n-samples"))
    return f"estimate: about {duration(estimate)} ({steps:,} batch attack steps × {seconds:.3g} s, {how})"


def attack_precision(attacks: Sequence[Any]) -> str:
    """The precision the image attacks run at (a preset such as ``tga-zsr`` sets it on the attacks' options)."""
    found = (getattr(getattr(a, "options", a), "precision", None) for a in attacks)
    return next((p for p in found if p and p != "fp32"), "fp32")


def _time_first_batch(classifier: Any, dataset: Any, batch: Sequence[int], device: torch.device,
                      precision: str) -> tuple[float, int]:
    """(seconds of one attack step on ``batch``: forward and input gradient, the batch's size), at the attacks'
    precision (an attack under autocast costs what autocast costs)."""
    from ..utils.precision import precision_context

    first = [int(i) for i in batch]
    images = torch.stack([dataset[i][0] for i in first]).to(device)
    labels = torch.tensor([int(dataset[i][1]) for i in first], device=device)

    def one_step() -> None:
        x = images.clone().requires_grad_(True)
        with precision_context(precision, device):
            loss = torch.nn.functional.cross_entropy(classifier(x).float(), labels)
        torch.autograd.grad(loss, x)  # the input's gradient only: no parameter's .grad is touched

    return time_step(one_step), len(first)


def grid_plan(grid: Sequence[tuple[int, str]], n_images: int | None, attacks: Sequence[Any]) -> Plan:
    """A grid of evaluations (the benchmark's models × datasets, a study's cells), each ``n_images`` × attacks ×
    steps; ``n_images`` None (every image of each dataset): the product counts image-steps per image."""
    each = eval_plan(n_images or 1, attacks)
    if n_images is None:
        return Plan((*grid, *each.factors[1:]), each.unit + " per image (every image of each dataset)")
    return Plan((*grid, *each.factors), each.unit)
