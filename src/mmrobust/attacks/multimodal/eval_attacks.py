"""Factories named in :mod:`mmrobust.attacks.registry` for the multimodal attacks."""

from __future__ import annotations

from typing import Any

from ..protocol import EvalAttack
from .co_attack import CoAttack
from .separate import SeparateAttack


def make_separate(options: dict[str, Any]) -> EvalAttack:
    return SeparateAttack(options)


def make_co_attack(options: dict[str, Any]) -> EvalAttack:
    return CoAttack(options)
