"""Exceptions whose message is meant to be shown to a user as one line.

The CLI prints ``error: <message>`` for any :class:`MMRobustError` and exits non-zero, so messages must
name the offending input (spec, file, option) and the cause, and must not rely on a traceback.
"""

from __future__ import annotations


class MMRobustError(Exception):
    """Base class: an error caused by user input or environment, not by a bug in mmrobust."""


class ModelLoadError(MMRobustError):
    """A model spec could not be resolved or its weights could not be loaded."""


class DatasetError(MMRobustError):
    """A dataset name, root, file or subsample request is invalid."""


class ConfigError(MMRobustError):
    """An option value is invalid (eps, steps, norm, output path, ...)."""


class ReportError(MMRobustError):
    """A report could not be written."""


class NumericalError(MMRobustError):
    """A model produced non-finite values (NaN/inf) where finite ones are required."""
