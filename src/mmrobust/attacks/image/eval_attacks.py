"""Image attacks as :class:`~mmrobust.attacks.protocol.EvalAttack` objects for ``mmrobust eval --attack``.

The builders named in :mod:`mmrobust.attacks.registry` (``make_pgd`` ...) take the attack's validated
options (:mod:`mmrobust.attacks.options`: ``eps`` as a fraction for Linf / a raw radius for L2) and return an
attack that, per batch, builds the pixel attack with a generator seeded from (seed, batch position) — so a
resumed evaluation reproduces every batch exactly. ``targeted`` wraps the attack in
:class:`~.targeted.EachTarget` (every other class in turn, as APGD-T).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ...models.zeroshot import check_finite_logits
from ..options import APGDOptions, APGDTOptions, FGSMOptions, PGDOptions, SquareOptions
from ..protocol import AttackContext, BatchOutcome, EvalAttack
from .apgd import APGD
from .base import ImageAttack
from .pgd import FGSM, PGD
from .square import square_attack
from .targeted import EachTarget

def threat_model_description(norm: str, eps: float) -> dict[str, Any]:
    """Both forms of eps: the fraction used internally and the k/255 (Linf) users type."""
    out: dict[str, Any] = {"norm": norm, "eps": eps}
    if norm == "Linf":
        out["eps_255"] = round(eps * 255, 6)
        out["eps_unit"] = "fraction of the [0, 1] pixel range; --eps K means K/255"
    else:
        out["eps_unit"] = "L2 radius in [0, 1] pixel units at the dataset's native resolution; --eps K means K"
    return out


class ImageEvalAttack(EvalAttack):
    """One pixel attack inside the evaluation loop, against the run's clean zero-shot classifier."""

    modality = "image"

    def __init__(self, name: str, build: Callable[[Any, torch.Generator], ImageAttack], norm: str, eps: float,
                 parameters: dict[str, Any]) -> None:
        self.name = name
        self._build = build
        self.norm, self.eps = norm, eps
        self.parameters = parameters
        self._queries = 0.0

    def prepare(self, ctx: AttackContext) -> None:
        self.ctx = ctx
        probe = self._build(ctx.classifier, torch.Generator())  # builds once to validate and describe
        self._described = probe.describe()

    def attack_batch(self, images: torch.Tensor, labels: torch.Tensor) -> BatchOutcome:
        attack = self._build(self.ctx.classifier, self.batch_generator())
        adv = attack(images, labels)
        with torch.no_grad():
            logits = self.ctx.classifier(adv)
        check_finite_logits(logits, f"{self.name} adversarial images")
        extra = {}
        if hasattr(attack, "queries_used"):
            extra["queries"] = float(getattr(attack, "queries_used", 0.0)) * images.shape[0]
        return BatchOutcome(correct=(logits.argmax(dim=1) == labels).cpu(), adv_images=adv, extra=extra)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, **threat_model_description(self.norm, self.eps),
                **self.parameters, "attack": getattr(self, "_described", {})}

    def threat_model(self) -> dict[str, Any]:
        return {"norm": self.norm, "eps": self.eps}


class APGDEnsemble(ImageAttack):
    """APGD-CE then APGD-T on the examples APGD-CE left robust: AutoAttack's white-box pair, worst case."""

    def __init__(self, classifier: Any, eps: float, steps: int, norm: str, restarts: int,
                 n_target_classes: int | None, generator: torch.Generator | None) -> None:
        super().__init__(classifier, eps, norm, False, generator)
        self.ce = APGD(classifier, eps, steps, norm, loss="ce", restarts=restarts, generator=generator)
        self.t = APGD(classifier, eps, steps, norm, targeted=True, n_target_classes=n_target_classes,
                      restarts=restarts, generator=generator)

    def describe(self) -> dict[str, Any]:
        return {"attack": "APGD-CE + APGD-T", "apgd_ce": self.ce.describe(), "apgd_t": self.t.describe()}

    def _run(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        adv = self.ce._run(images, labels, None)
        with torch.no_grad():
            robust = (self._logits(adv).argmax(dim=1) == labels).nonzero().squeeze(1)
        if robust.numel():
            adv_t = self.t._run(images[robust], labels[robust], None)
            with torch.no_grad():
                fooled = self._logits(adv_t).argmax(dim=1) != labels[robust]
            adv[robust[fooled]] = adv_t[fooled]
        return adv


Build = Callable[[Any, torch.Generator], ImageAttack]


def _make(name: str, options: Any, build: Build, keys: tuple[str, ...]) -> EvalAttack:
    if getattr(options, "targeted", False):
        inner = build
        build = lambda clf, gen: EachTarget(lambda: inner(clf, gen), clf, options.eps, options.norm,  # noqa: E731
                                            options.target_classes, gen)
        keys = keys + ("targeted", "target_classes")
    parameters = {key: getattr(options, key) for key in keys}
    build(lambda images: images, torch.Generator())  # validate now, before any model is loaded
    return ImageEvalAttack(name, build, options.norm, options.eps, parameters)


def make_pgd(o: PGDOptions) -> EvalAttack:
    return _make("pgd", o, lambda clf, gen: PGD(
        clf, o.eps, o.alpha, o.steps, o.norm, random_start=True, restarts=o.restarts, loss="ce",
        targeted=o.targeted, generator=gen, track_best=True), ("steps", "alpha", "restarts"))


def make_fgsm(o: FGSMOptions) -> EvalAttack:
    return _make("fgsm", o, lambda clf, gen: FGSM(clf, o.eps, o.norm, targeted=o.targeted, generator=gen), ())


def make_apgd_ce(o: APGDOptions) -> EvalAttack:
    return _make("apgd-ce", o, lambda clf, gen: APGD(
        clf, o.eps, o.steps, o.norm, loss="ce", restarts=o.restarts, generator=gen), ("steps", "restarts"))


def make_apgd_t(o: APGDTOptions) -> EvalAttack:
    return _make("apgd-t", o, lambda clf, gen: APGD(
        clf, o.eps, o.steps, o.norm, targeted=True, n_target_classes=o.target_classes,
        restarts=o.restarts, generator=gen), ("steps", "restarts", "target_classes"))


def make_apgd(o: APGDTOptions) -> EvalAttack:
    return _make("apgd", o, lambda clf, gen: APGDEnsemble(
        clf, o.eps, o.steps, o.norm, o.restarts, o.target_classes, gen), ("steps", "restarts", "target_classes"))


def make_square(o: SquareOptions) -> EvalAttack:
    return _make("square", o, lambda clf, gen: square_attack(
        clf, o.eps, n_queries=o.square_queries, norm=o.norm, restarts=o.restarts, targeted=o.targeted,
        generator=gen), ("square_queries", "restarts"))
