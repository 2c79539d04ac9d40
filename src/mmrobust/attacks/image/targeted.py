"""``--targeted``: any targeted pixel attack run towards each other class in turn, as APGD-T does.

Why: one targeted run towards the single best wrong class is weaker than an untargeted attack; AutoAttack's
APGD-T (Croce & Hein, 2020) instead tries the highest-scoring wrong classes one after the other on the
examples that are still correctly classified. :class:`EachTarget` applies that scheme to any attack that
accepts ``targets`` (PGD, FGSM, Square), so targeting is one option, not one attack class per attack.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .apgd import target_rank_limit
from .base import ImageAttack
from .streams import ExampleStreams


class EachTarget(ImageAttack):
    """``EachTarget(make, classifier, eps, norm, target_classes)``: ``make(generator)`` builds a targeted attack.

    Per example the result is the first target's adversarial image that is misclassified, else the first
    target's image. ``target_classes`` None = every other class of the task.
    """

    def __init__(self, make: Callable[[], ImageAttack], classifier: Any, eps: float, norm: str,
                 target_classes: int | None, generator: torch.Generator | None = None, precision: str = "fp32") -> None:
        super().__init__(classifier, eps, norm, True, generator, precision)
        self.make = make
        self.target_classes = target_classes
        self.queries_used = 0.0

    def describe(self) -> dict[str, Any]:
        inner = self.make().describe()
        return {**inner, "targets": "each of the highest-scoring wrong classes in turn (APGD-T's scheme)",
                "target_classes": self.target_classes if self.target_classes is not None else "all other classes"}

    def _run(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
             streams: ExampleStreams) -> torch.Tensor:
        with torch.no_grad():
            ranked = self._logits(images).argsort(dim=1, descending=True)
        adv = images.clone()
        done = torch.zeros(images.shape[0], dtype=torch.bool, device=images.device)
        queries = 0.0
        for rank in range(1, target_rank_limit(self.target_classes, ranked.shape[1]) + 1):
            todo = (~done).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            attack = self.make()
            run_adv = attack._run(images[todo], labels[todo], ranked[todo, rank] if targets is None else targets[todo],
                                  streams.derive("target", rank).subset(todo))
            queries += float(getattr(attack, "queries_used", 0.0)) * todo.numel()
            with torch.no_grad():
                fooled = self._logits(run_adv).argmax(dim=1) != labels[todo]
            take = fooled if rank > 1 else torch.ones_like(fooled)
            adv[todo[take]] = run_adv[take]
            done[todo[fooled]] = True
        self.queries_used = queries / max(images.shape[0], 1)
        return adv
