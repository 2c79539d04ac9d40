"""The one parser of each kind of value: pixel budgets, norms, integers.

Why one each: there used to be three eps parsers and three norm parsers, and they disagreed —
``eval --norm l_inf`` was announced as an L2 budget because one of them lacked "l_inf".
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..errors import ConfigError

#: spellings of the two threat models -> the attacks' names
NORMS = {"linf": "Linf", "inf": "Linf", "l_inf": "Linf", "l-inf": "Linf", "l2": "L2", "l_2": "L2"}


def normalize_norm(norm: Any) -> str:
    """``"linf"``/``"Linf"``/``"inf"``/``"l_inf"`` -> ``"Linf"``, ``"l2"`` -> ``"L2"``; else one ConfigError."""
    key = str(norm).strip().lower()
    if key not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; use linf or l2")
    return NORMS[key]


_BUDGET = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?:/\s*([0-9]*\.?[0-9]+))?")


def parse_budget(value: Any, norm: Any = "linf", flag: str = "--eps") -> float | None:
    """A flag's budget -> the Python API's value; None stays None (the default applies).

    Under L-inf a bare number K means K/255 (the literature's units: ``--eps 1`` is MMCoA's 1/255) and a
    fraction ``a/b`` is taken literally (``4/255``); under L2 the number is the raw radius.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{flag} must be a number, got {value!r}")
    text = str(value).strip()
    match = _BUDGET.fullmatch(text)
    if not match:
        raise ConfigError(f"{flag} {value!r} is not a number: give K (meaning K/255) or a fraction like 4/255")
    numerator = float(match.group(1))
    linf = normalize_norm(norm or "linf") == "Linf"
    if match.group(2):
        denominator = float(match.group(2))
        if denominator == 0:
            raise ConfigError(f"{flag} {value!r} divides by zero")
        result = numerator / denominator
        if not linf:
            return _positive_finite(result, value, flag)
        return _in_range(result, value, flag)
    if not linf:
        return _positive_finite(numerator, value, flag)
    if numerator > 255:
        raise ConfigError(f"{flag} {text} is absurd: under L-inf K means K/255 and 255 is the whole range")
    return _in_range(numerator / 255.0, value, flag)


def _positive_finite(result: float, value: Any, flag: str) -> float:
    if not math.isfinite(result) or result <= 0:
        raise ConfigError(f"{flag} must be a positive number, got {value}")
    return result


def _in_range(result: float, value: Any, flag: str) -> float:
    if not math.isfinite(result) or result <= 0 or result > 1:
        raise ConfigError(f"{flag} {value!r} must lie in (0, 255/255] of the pixel range")
    return result


def number(value: Any, flag: str) -> float:
    """A finite number (not a bool), else one ConfigError naming ``flag``."""
    if isinstance(value, bool):
        raise ConfigError(f"{flag} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{flag} must be finite, got {value}")
    return out


def positive_int(value: Any, flag: str) -> int:
    """An integer of at least 1 (``4.0`` is 4; ``True``, 0 and 2.5 are not)."""
    out = number(value, flag)
    if not out.is_integer() or out < 1:
        raise ConfigError(f"{flag} must be an integer of at least 1, got {value}")
    return int(out)


def non_negative_int(value: Any, flag: str) -> int:
    out = number(value, flag)
    if not out.is_integer() or out < 0:
        raise ConfigError(f"{flag} must be an integer of at least 0, got {value}")
    return int(out)


def positive(value: Any, flag: str) -> float:
    out = number(value, flag)
    if out <= 0:
        raise ConfigError(f"{flag} must be positive, got {value}")
    return out


def non_negative(value: Any, flag: str) -> float:
    out = number(value, flag)
    if out < 0:
        raise ConfigError(f"{flag} must be >= 0, got {value}")
    return out
