"""Per-example attack objectives (larger = more adversarial), shared by PGD, APGD and Square.

Why per-example and summed (not averaged): the gradient of a sum w.r.t. one example's perturbation does not
depend on the batch size, so results are the same whatever ``--batch-size`` is (a sanity check tests this).
"""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F

from ...errors import ConfigError

#: ``loss(logits, labels, targets) -> per-example loss to maximise``; ``targets`` is None when untargeted
AttackLoss = Callable[[torch.Tensor, torch.Tensor, Union[torch.Tensor, None]], torch.Tensor]


def cross_entropy_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Untargeted: CE of the true label; targeted: minus CE of the target label."""
    if targets is None:
        return F.cross_entropy(logits, labels, reduction="none")
    return -F.cross_entropy(logits, targets, reduction="none")


def _largest_other(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """max_{j != y} z_j per example."""
    masked = logits.clone()
    masked.scatter_(1, labels[:, None], float("-inf"))
    return masked.max(dim=1).values


def margin_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Carlini-Wagner margin: max_{j!=y} z_j - z_y (untargeted) or z_t - max_{j!=t} z_j (targeted); > 0 = success."""
    if targets is None:
        return _largest_other(logits, labels) - logits.gather(1, labels[:, None]).squeeze(1)
    return logits.gather(1, targets[:, None]).squeeze(1) - _largest_other(logits, targets)


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Difference of Logits Ratio (Croce & Hein 2020): a margin made invariant to the logits' scale.

    Untargeted: -(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3); targeted: -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4)/2),
    with z_pi sorted descending. Scale invariance matters for CLIP, whose logit scale (~100) saturates CE.
    Needs at least 3 classes (4 targeted); fewer falls back to the plain margin.
    """
    n_classes = logits.shape[1]
    if n_classes < (4 if targets is not None else 3):
        return margin_loss(logits, labels, targets)
    ordered = logits.sort(dim=1, descending=True).values
    z_y = logits.gather(1, labels[:, None]).squeeze(1)
    tiny = 1e-12
    if targets is None:
        return -(z_y - _largest_other(logits, labels)) / (ordered[:, 0] - ordered[:, 2] + tiny)
    z_t = logits.gather(1, targets[:, None]).squeeze(1)
    return -(z_y - z_t) / (ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + tiny)


LOSSES: dict[str, AttackLoss] = {"ce": cross_entropy_loss, "dlr": dlr_loss, "margin": margin_loss, "cw": margin_loss}


def resolve_loss(loss: str | Callable) -> AttackLoss:
    """A loss name (ce, dlr, margin/cw) or a callable.

    A callable taking two arguments is a classification loss like ``nn.CrossEntropyLoss(reduction="none")``
    (``loss(logits, labels)``, large = wrong): untargeted attacks maximise ``loss(logits, labels)``, targeted ones
    ``-loss(logits, targets)``. A scalar (mean-reduced) result is spread over the batch. A callable taking three
    arguments ``(logits, labels, targets_or_None)`` must return the per-example value to maximise and is used as is.
    """
    if isinstance(loss, str):
        if loss.lower() not in LOSSES:
            raise ConfigError(f"unknown attack loss {loss!r}; known: {', '.join(LOSSES)}")
        return LOSSES[loss.lower()]
    if not callable(loss):
        raise ConfigError(f"attack loss must be a name or a callable, got {type(loss).__name__}")
    import inspect

    try:
        n_params = len(inspect.signature(loss).parameters)
    except (TypeError, ValueError):
        n_params = 3
    if n_params == 2:
        def two_argument(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
            out = loss(logits, labels) if targets is None else -loss(logits, targets)
            return out if out.dim() == 1 else out.expand(logits.shape[0])
        return two_argument
    return loss  # type: ignore[return-value]


def loss_name(loss: str | Callable) -> str:
    return loss.lower() if isinstance(loss, str) else getattr(loss, "__name__", type(loss).__name__)
