"""Typed option groups: each option declared once, with its flag, unit and help (see :mod:`.fields`).

Why a package at the bottom of the ladder: the groups are composed into the configs of every layer above
(eval, training, studies, demo) and the CLI generates its flags from them, so they may import nothing but
:mod:`mmrobust.errors` and each other.
"""

from .fields import OptionInfo, group_fields, group_values, option, option_info
from .parse import normalize_norm, parse_budget, positive_int

__all__ = ["OptionInfo", "group_fields", "group_values", "normalize_norm", "option", "option_info",
           "parse_budget", "positive_int"]
