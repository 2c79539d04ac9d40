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


#: TGA-ZSR's ``--Distance_metric`` choices (TGA-ZSR.py, ``criterion``)
TGA_DISTANCES = ("l2", "cos", "l1")


@dataclass(frozen=True, kw_only=True)
class TGAZSROptions(MethodOptions):
    """TGA-ZSR's loss weights and distance (Yu et al., NeurIPS 2024, Eq. 9 / 12; ``zhyblue424/TGA-ZSR``
    README and ``TGA-ZSR.py`` ``parse_option``: ``--Alpha 0.08``, ``--Beta 0.05``, ``--Distance_metric l2``)."""

    tga_alpha: float = option(0.08, "TGA-ZSR weight of the attention-refinement term (adversarial attention of the "
                                    "fine-tuned model vs clean attention of the frozen one; the code's Alpha).")
    tga_beta: float = option(0.05, "TGA-ZSR weight of the attention-constraint term (clean attention of the "
                                   "fine-tuned model vs the frozen one's; the code's Beta).")
    tga_distance: str = option("l2", "TGA-ZSR distance between attention maps: l2 (per-image L2 norm, batch mean), "
                                     "cos (1 - cosine) or l1 (element-wise mean absolute difference).")

    def _check(self) -> None:
        for name in ("tga_alpha", "tga_beta"):
            non_negative(getattr(self, name), "--" + name.replace("_", "-"))
        if self.tga_distance not in TGA_DISTANCES:
            raise ConfigError(f"unknown --tga-distance {self.tga_distance!r}; known: {', '.join(TGA_DISTANCES)}")


@dataclass(frozen=True, kw_only=True)
class LEAFOptions(MethodOptions):
    """LEAF's character-attack budget (``LIONS-EPFL/LEAF`` ``scripts/train_leaf_*.sh``: ``--rho=50 --k_adv 1``;
    ``params_AT.py`` declares ``--rho`` "number of random positions for the leaf attack", ``--k_adv`` "maximum
    levenshtein distance")."""

    leaf_rho: int = option(50, "LEAF: random positions scored per edit, then random characters tried at the best "
                               "one (rho).")
    leaf_k: int = option(1, "LEAF: character edits per caption, i.e. the Levenshtein budget (k).")

    def _check(self) -> None:
        for name in ("leaf_rho", "leaf_k"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(self, name)})")


def option_names(options_class: type | None) -> tuple[str, ...]:
    return () if options_class is None else tuple(f.name for f in fields(options_class))
