"""The benchmark as a study's OOD backend (:class:`mmrobust.studies.ood.OODBackend`).

Why here and passed in: a fine-tuning study's ``--ood-dataset`` rows are a benchmark over the rows' models, but
studies and benchmark are siblings on the package ladder (neither imports the other); the CLI hands this
object to :func:`mmrobust.studies.run_study`.
"""

from __future__ import annotations

from typing import Any

from ..data.catalog import Catalog, expand_dataset_list
from .datasets import plan_datasets
from .runner import BenchmarkConfig, run_benchmark
from .table import family_vectors


class BenchmarkOOD:
    def retrieval_sets(self, datasets: str, data_root: str | None) -> list[str]:
        choices = plan_datasets(expand_dataset_list(datasets), Catalog(), data_root)
        return [c.item for c in choices if c.task != "classification"]

    def run(self, models: list[str], datasets: str, output_dir: str, eval_config: Any, title: str,
            labels: dict[str, str], log: Any, share_output: bool = False) -> dict[str, Any]:
        return run_benchmark(BenchmarkConfig(models=models, datasets=datasets, output_dir=output_dir, eval=eval_config,
                                             title=title, labels=labels, log=log, share_output=share_output))

    def family_vectors(self, report: dict[str, Any]) -> dict[str, Any]:
        return family_vectors(report)
