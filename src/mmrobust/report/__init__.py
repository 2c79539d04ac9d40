"""``mmrobust report``: one self-contained HTML page of an eval report, a benchmark, a study or a training run."""

from .render import render_report

__all__ = ["render_report"]
