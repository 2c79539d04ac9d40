"""Each defense's own hyperparameters: one options class per method, declared on its ``MethodSpec``.

Why per method: a defense's hyperparameter used to be a flat ``TrainConfig`` field every method carried
(``pmg_alpha`` on an MMCoA run), validated by name (``method == "mmcoa"``) and, for PMG-AFT, without a flag
at all. Now a method declares the class of the options it reads (:class:`~.methods.MethodSpec.options`);
the CLI generates their flags from these fields, a value given to a method that does not read it is refused,
and the run's report records exactly the method's options.

Adding a hyperparameter to a defense: one field in its class here (and reading ``self.options.NAME`` in
its objective).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from ..errors import ConfigError
from ..options.fields import option
from ..options.parse import non_negative

TARGET_MODES = ("class", "instance")


@dataclass(frozen=True, kw_only=True)
class MethodOptions:
    """Base: :meth:`validated` checks each field (subclasses add their rules in :meth:`_check`)."""

    def validated(self) -> "MethodOptions":
        self._check()
        return self

    def _check(self) -> None:
        pass

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True)
class ContrastiveOptions(MethodOptions):
    """Options of the contrastive objectives (MMCoA and its text-only ablation)."""

    targets: str = option(
        "class", "Contrastive targets: class (same-class captions are positives) or instance (the reference's "
                 "arange(B)).")
    gather_with_grad: bool = option(
        False, "MMCoA/text-AT under torchrun: contrast against the global batch (all ranks' features, with "
               "gradients) instead of each rank's slice; the loss and gradients then do not depend on the world "
               "size.")

    def _check(self) -> None:
        if self.targets not in TARGET_MODES:
            raise ConfigError(f"unknown --targets {self.targets!r}; known: {', '.join(TARGET_MODES)}")


@dataclass(frozen=True, kw_only=True)
class MMCoAOptions(ContrastiveOptions):
    """MMCoA's loss weights (Zhou et al. 2024, Eq. 5: ``lambda_img * L_img + lambda_txt * L_txt``; 0.5 / 0.5)."""

    lambda_img: float = option(0.5, "MMCoA weight of the adversarial-image term.")
    lambda_txt: float = option(0.5, "MMCoA weight of the adversarial-text term.")

    def _check(self) -> None:
        super()._check()
        for name in ("lambda_img", "lambda_txt"):
            non_negative(getattr(self, name), "--" + name.replace("_", "-"))
        if self.lambda_img == 0 and self.lambda_txt == 0:
            raise ConfigError("--lambda-img and --lambda-txt are both 0: MMCoA would have no loss")


@dataclass(frozen=True, kw_only=True)
class PMGAFTOptions(MethodOptions):
    """PMG-AFT's weights (Wang et al. 2024, Eq. 7: ``L = CE + alpha * KL(adv || pretrained) + beta * KL(adv ||
    clean)``; the paper's defaults are 1 and 1)."""

    pmg_alpha: float = option(1.0, "PMG-AFT weight of the KL to the pre-trained model's predictions (alpha).")
    pmg_beta: float = option(1.0, "PMG-AFT weight of the KL to the clean predictions (beta).")

    def _check(self) -> None:
        for name in ("pmg_alpha", "pmg_beta"):
            non_negative(getattr(self, name), "--" + name.replace("_", "-"))


def option_names(options_class: type | None) -> tuple[str, ...]:
    return () if options_class is None else tuple(f.name for f in fields(options_class))
