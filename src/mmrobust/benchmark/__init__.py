"""Many models x many datasets, one table: the study's IID + OOD evaluation in one command.

One cell per (model, dataset) is a normal eval report under ``DIR/cells/``; :mod:`.cells` runs and reuses
them, :mod:`.table` turns them into rows with intervals, :mod:`.plot` draws the heat map. ``--preset a,b,c``
(:mod:`.protocols`) makes one cell per (model, dataset, protocol), all protocols on the same images, and one
column group per protocol with a ranking table.
"""

from .runner import BenchmarkConfig, run_benchmark

__all__ = ["BenchmarkConfig", "run_benchmark"]
