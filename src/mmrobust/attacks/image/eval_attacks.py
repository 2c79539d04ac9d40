"""Image attacks as :class:`~mmrobust.attacks.protocol.EvalAttack` objects for ``mmrobust eval --attack``.

The factories named in :mod:`mmrobust.attacks.registry` (``make_pgd`` ...) take the parsed option dict
(``eps`` as a fraction for Linf / a raw radius for L2, ``norm``, ``steps``, ``alpha``, ``restarts`` ...)
and return an attack that, per batch, builds the pixel attack with a generator seeded from
(seed, batch position) — so a resumed evaluation reproduces every batch exactly.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ...errors import ConfigError
from ..protocol import AttackContext, BatchOutcome, EvalAttack
from .apgd import APGD
from .base import ImageAttack, check_eps, check_positive, check_steps, normalize_norm
from .pgd import FGSM, PGD
from .square import Square

#: defaults when the user does not say (documented in ``mmrobust eval --help``)
DEFAULT_STEPS = 10
DEFAULT_SQUARE_QUERIES = 1000
DEFAULT_TARGET_CLASSES = 9


def image_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validated image-attack options with defaults filled in (eps is required)."""
    if options.get("eps") is None:
        raise ConfigError("image attacks need --eps")
    norm = normalize_norm(options.get("norm") or "linf")
    eps = check_eps(options["eps"], norm)
    steps = check_steps(options.get("steps") if options.get("steps") is not None else DEFAULT_STEPS)
    alpha = options.get("alpha")
    alpha = eps / 4 if alpha is None else check_positive("alpha", alpha)
    restarts = check_steps(options.get("restarts") if options.get("restarts") is not None else 1, "restarts")
    queries = check_steps(options.get("square_queries") or DEFAULT_SQUARE_QUERIES, "square queries")
    n_targets = check_steps(options.get("n_target_classes") or DEFAULT_TARGET_CLASSES, "APGD-T target classes")
    return {"eps": eps, "norm": norm, "steps": steps, "alpha": alpha, "restarts": restarts,
            "square_queries": queries, "n_target_classes": n_targets}


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
        from ...models.zeroshot import check_finite_logits

        check_finite_logits(logits, f"{self.name} adversarial images")
        extra = {}
        if isinstance(attack, Square) or hasattr(attack, "queries_used"):
            extra["queries"] = float(getattr(attack, "queries_used", 0.0)) * images.shape[0]
        return BatchOutcome(correct=(logits.argmax(dim=1) == labels).cpu(), adv_images=adv, extra=extra)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "modality": self.modality, **threat_model_description(self.norm, self.eps),
                **self.parameters, "attack": getattr(self, "_described", {})}

    def threat_model(self) -> dict[str, Any]:
        return {"norm": self.norm, "eps": self.eps}


class APGDEnsemble(ImageAttack):
    """APGD-CE then APGD-T on the examples APGD-CE left robust: AutoAttack's white-box pair, worst case."""

    def __init__(self, classifier: Any, eps: float, steps: int, norm: str, restarts: int, n_target_classes: int,
                 generator: torch.Generator | None) -> None:
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


def _make(name: str, options: dict[str, Any], build: Callable[[dict[str, Any]], Callable], keys: tuple[str, ...]):
    opts = image_options(options)
    parameters = {key: opts[key] for key in keys}
    builder = build(opts)
    builder(lambda images: images, torch.Generator())  # validate now, before any model is loaded
    return ImageEvalAttack(name, builder, opts["norm"], opts["eps"], parameters)


def make_pgd(options: dict[str, Any]) -> EvalAttack:
    return _make("pgd", options, lambda o: lambda clf, gen: PGD(
        clf, o["eps"], o["alpha"], o["steps"], o["norm"], random_start=True, restarts=o["restarts"], loss="ce",
        generator=gen, track_best=True), ("steps", "alpha", "restarts"))


def make_fgsm(options: dict[str, Any]) -> EvalAttack:
    return _make("fgsm", options, lambda o: lambda clf, gen: FGSM(clf, o["eps"], o["norm"], generator=gen), ())


def make_apgd_ce(options: dict[str, Any]) -> EvalAttack:
    return _make("apgd-ce", options, lambda o: lambda clf, gen: APGD(
        clf, o["eps"], o["steps"], o["norm"], loss="ce", restarts=o["restarts"], generator=gen),
        ("steps", "restarts"))


def make_apgd_t(options: dict[str, Any]) -> EvalAttack:
    return _make("apgd-t", options, lambda o: lambda clf, gen: APGD(
        clf, o["eps"], o["steps"], o["norm"], targeted=True, n_target_classes=o["n_target_classes"],
        restarts=o["restarts"], generator=gen), ("steps", "restarts", "n_target_classes"))


def make_apgd(options: dict[str, Any]) -> EvalAttack:
    return _make("apgd", options, lambda o: lambda clf, gen: APGDEnsemble(
        clf, o["eps"], o["steps"], o["norm"], o["restarts"], o["n_target_classes"], gen),
        ("steps", "restarts", "n_target_classes"))


def make_square(options: dict[str, Any]) -> EvalAttack:
    return _make("square", options, lambda o: lambda clf, gen: Square(
        clf, o["eps"], n_queries=o["square_queries"], norm=o["norm"], restarts=o["restarts"], generator=gen),
        ("square_queries", "restarts"))
