"""Builders named in :mod:`mmrobust.attacks.registry` for the multimodal attacks."""

from __future__ import annotations

from ..options import Mode4Options, MultimodalOptions
from ..protocol import EvalAttack
from .co_attack import CoAttack
from .embedding_kl import EmbeddingKLCoAttack
from .separate import SeparateAttack


def make_separate(options: MultimodalOptions) -> EvalAttack:
    return SeparateAttack(options)


def make_co_attack(options: MultimodalOptions) -> EvalAttack:
    return CoAttack(options)


def make_co_attack_kl(options: Mode4Options) -> EvalAttack:
    return EmbeddingKLCoAttack(options)
