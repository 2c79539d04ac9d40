"""Many models x many datasets, one table: the study's IID + OOD evaluation in one command.

One cell per (model, dataset) is a normal eval report under ``DIR/cells/``; :mod:`.cells` runs and reuses
them, :mod:`.table` turns them into rows with intervals, :mod:`.plot` draws the heat map.
"""

from .runner import BenchmarkConfig, run_benchmark

__all__ = ["BenchmarkConfig", "run_benchmark"]
