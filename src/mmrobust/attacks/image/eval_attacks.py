"""Image attacks as :class:`~mmrobust.attacks.protocol.EvalAttack` objects for ``mmrobust eval --attack``.

The builders named in :mod:`mmrobust.attacks.registry` (``make_pgd`` ...) take the attack's validated
options (:mod:`mmrobust.attacks.options`: ``eps`` as a fraction for Linf / a raw radius for L2) and return an
attack that attacks each example with random streams keyed by (seed, dataset index, attack name) — so the
result of an example depends neither on its batch nor on a resume. ``targeted`` wraps the attack in
:class:`~.targeted.EachTarget` (every other class in turn, as APGD-T).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ...errors import ConfigError
from ...models.zeroshot import check_finite_logits
from ..options import APGDOptions, APGDTOptions, FGSMOptions, PGDOptions, SquareOptions
from ..protocol import AttackContext, BatchOutcome, EvalAttack
from .apgd import APGD
from .base import ImageAttack
from .pgd import FGSM, PGD
from .square import square_attack
from .streams import ExampleStreams
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


#: ``build(classifier, precision) -> ImageAttack``
Build = Callable[[Any, str], ImageAttack]


class ImageEvalAttack(EvalAttack):
    """One pixel attack inside the evaluation loop, against the run's clean zero-shot classifier."""

    modality = "image"

    def __init__(self, name: str, build: Build, norm: str, eps: float, precision: str,
                 parameters: dict[str, Any], min_classes: int = 2) -> None:
        self.name = name
        self._build = build
        self.norm, self.eps, self.precision = norm, eps, precision
        self.parameters = parameters
        #: the fewest classes the attack's loss is defined for (untargeted DLR: 3)
        self.min_classes = min_classes

    def prepare(self, ctx: AttackContext) -> None:
        if len(ctx.classes) < self.min_classes:
            raise ConfigError(f"{self.name} needs at least {self.min_classes} classes (its loss is undefined with "
                              f"fewer); this task has {len(ctx.classes)}: drop it from --attack/--preset")
        self.ctx = ctx
        self._described = self._build(ctx.classifier, self.precision).describe()  # validates once

    def adversarial(self, images: torch.Tensor, labels: torch.Tensor, example_ids: Sequence[int],
                    precision: str | None = None) -> tuple[torch.Tensor, ImageAttack]:
        """Adversarial images of the examples ``example_ids`` (dataset indices), in ``precision`` (default: the
        run's); the sanity checks call this to replay the same attack in fp32."""
        attack = self._build(self.ctx.classifier, precision or self.precision)
        streams = ExampleStreams.for_examples(self.ctx.seed, example_ids, self.name)
        return attack(images, labels, streams=streams), attack

    def attack_batch(self, images: torch.Tensor, labels: torch.Tensor) -> BatchOutcome:
        adv, attack = self.adversarial(images, labels, self.batch_example_ids(images.shape[0]))
        with torch.no_grad():
            logits = self.ctx.classifier(adv)
        check_finite_logits(logits, f"{self.name} adversarial images")
        extra = {}
        if hasattr(attack, "queries_used"):
            extra["queries"] = float(attack.queries_used) * images.shape[0]
        return BatchOutcome(correct=(logits.argmax(dim=1) == labels).cpu(), adv_images=adv, extra=extra)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, **threat_model_description(self.norm, self.eps),
                **self.parameters, "precision": self.precision, "attack": getattr(self, "_described", {})}

    def threat_model(self) -> dict[str, Any]:
        return {"norm": self.norm, "eps": self.eps}


class APGDEnsemble(ImageAttack):
    """APGD-CE then APGD-T on the examples APGD-CE left robust: AutoAttack's white-box pair, worst case."""

    def __init__(self, classifier: Any, eps: float, steps: int, norm: str, restarts: int,
                 n_target_classes: int | None, generator: torch.Generator | None = None,
                 precision: str = "fp32") -> None:
        super().__init__(classifier, eps, norm, False, generator, precision)
        self.ce = APGD(classifier, eps, steps, norm, loss="ce", restarts=restarts, precision=precision)
        self.t = APGD(classifier, eps, steps, norm, targeted=True, n_target_classes=n_target_classes,
                      restarts=restarts, precision=precision)

    def describe(self) -> dict[str, Any]:
        return {"attack": "APGD-CE + APGD-T", "apgd_ce": self.ce.describe(), "apgd_t": self.t.describe()}

    def _run(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
             streams: ExampleStreams) -> torch.Tensor:
        adv = self.ce._run(images, labels, None, streams.derive("apgd-ce"))
        with torch.no_grad():
            robust = (self._logits(adv).argmax(dim=1) == labels).nonzero().squeeze(1)
        if robust.numel():
            adv_t = self.t._run(images[robust], labels[robust], None, streams.derive("apgd-t").subset(robust))
            with torch.no_grad():
                fooled = self._logits(adv_t).argmax(dim=1) != labels[robust]
            adv[robust[fooled]] = adv_t[fooled]
        return adv


def _make(name: str, options: Any, build: Build, keys: tuple[str, ...], min_classes: int = 2) -> EvalAttack:
    if getattr(options, "targeted", False):
        inner = build
        build = lambda clf, precision: EachTarget(  # noqa: E731
            lambda: inner(clf, precision), clf, options.eps, options.norm, options.target_classes,
            precision=precision)
        keys = keys + ("targeted", "target_classes")
    parameters = {key: getattr(options, key) for key in keys}
    precision = getattr(options, "precision", "fp32")
    build(lambda images: images, precision)  # validate now, before any model is loaded
    return ImageEvalAttack(name, build, options.norm, options.eps, precision, parameters, min_classes)


def make_pgd(o: PGDOptions) -> EvalAttack:
    return _make("pgd", o, lambda clf, precision: PGD(
        clf, o.eps, o.alpha, o.steps, o.norm, random_start=True, restarts=o.restarts, loss="ce",
        targeted=o.targeted, track_best=True, precision=precision), ("steps", "alpha", "restarts"))


def make_fgsm(o: FGSMOptions) -> EvalAttack:
    return _make("fgsm", o, lambda clf, precision: FGSM(clf, o.eps, o.norm, targeted=o.targeted,
                                                        precision=precision), ())


def make_apgd_ce(o: APGDOptions) -> EvalAttack:
    return _make("apgd-ce", o, lambda clf, precision: APGD(
        clf, o.eps, o.steps, o.norm, loss="ce", restarts=o.restarts, precision=precision), ("steps", "restarts"))


def make_apgd_dlr(o: APGDOptions) -> EvalAttack:
    """AutoAttack's untargeted ``apgd-dlr`` (Croce & Hein 2020, eq. 5): APGD on
    -(z_y - max_{j!=y} z_j) / (z_pi1 - z_pi3), undefined below 3 classes (refused there, as AutoAttack's checks)."""
    return _make("apgd-dlr", o, lambda clf, precision: APGD(
        clf, o.eps, o.steps, o.norm, loss="dlr", restarts=o.restarts, precision=precision), ("steps", "restarts"),
        min_classes=3)


def make_apgd_t(o: APGDTOptions) -> EvalAttack:
    return _make("apgd-t", o, lambda clf, precision: APGD(
        clf, o.eps, o.steps, o.norm, targeted=True, n_target_classes=o.target_classes,
        restarts=o.restarts, precision=precision), ("steps", "restarts", "target_classes"))


def make_apgd(o: APGDTOptions) -> EvalAttack:
    return _make("apgd", o, lambda clf, precision: APGDEnsemble(
        clf, o.eps, o.steps, o.norm, o.restarts, o.target_classes, precision=precision),
        ("steps", "restarts", "target_classes"))


def make_square(o: SquareOptions) -> EvalAttack:
    return _make("square", o, lambda clf, precision: square_attack(
        clf, o.eps, n_queries=o.square_queries, norm=o.norm, restarts=o.restarts, targeted=o.targeted,
        precision=precision), ("square_queries", "restarts"))
