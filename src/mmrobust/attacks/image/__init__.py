"""Pixel-space image attacks, torchattacks-style: ``adv = PGD(classifier, eps, alpha, steps)(images, labels)``.

All work on [0, 1] pixels (normalisation lives inside the model), in fp32, with gradients w.r.t. the
perturbation only. :mod:`.eval_attacks` wraps them for ``mmrobust eval --attack``.
"""

from .apgd import APGD
from .base import ImageAttack
from .pgd import FGSM, PGD
from .square import Square

__all__ = ["ImageAttack", "PGD", "FGSM", "APGD", "Square"]
