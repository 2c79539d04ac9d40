"""``mmrobust train --seeds 0,1,2``: the same fine-tune once per seed, and what the seeds agree on.

Why: one fine-tune is one draw of its training randomness (training subset, data order, attack starts). The
study (Zhou et al., 2024) reports single runs; on the proxies a few points separate two seeds of the same
recipe (``bench/RESULTS_findings.md``), so a defense's held-out accuracy needs the seeds' mean ± sd, the t
interval of that mean (training noise) and the pooled Wilson interval over all seed x image outcomes. Each seed
trains into ``DIR/seed-S`` (a finished seed is reused, an interrupted one resumed) and ``DIR/seeds.json`` holds
the summary, computed only with :func:`mmrobust.stats.seed_summary`.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..stats import seed_summary
from ..utils.files import write_json_atomic
from .config import TrainConfig

#: held-out accuracies a report's ``final_eval`` may carry
METRICS = ("clean_accuracy", "pgd_accuracy")


def seed_run(config: TrainConfig, seed: int, train_fn: Callable[[TrainConfig], dict[str, Any]]) -> dict[str, Any]:
    """One seed's report: reused when ``DIR/seed-S`` finished with the same recipe, else trained (resumed)."""
    from .checkpointing import has_checkpoint

    run_dir = Path(config.output_dir) / f"seed-{seed}"
    run = replace(config, seed=seed, output_dir=str(run_dir), resume=has_checkpoint(run_dir))
    report_file = run_dir / "report.json"
    if report_file.is_file() and (run_dir / "final" / "mmrobust.json").is_file():
        report = json.loads(report_file.read_text(encoding="utf-8"))
        if (report.get("config") or {}).get("epochs") != run.epochs:  # more epochs asked: continue that run
            return train_fn(replace(run, resume=True))
        different = run.differences(report.get("config") or {})
        if different:
            raise ConfigError(f"{run_dir} holds a finished run with other {', '.join(different)}; "
                              "use another --output-dir")
        return report
    return train_fn(run)


def summarize(reports: Sequence[dict[str, Any]], seeds: Sequence[int]) -> dict[str, Any]:
    """Per held-out metric: mean ± sd over seeds, t interval of the mean, pooled Wilson interval."""
    finals = [r.get("final_eval") or {} for r in reports]
    runs = [{"seed": seed, "final_checkpoint": report.get("final_checkpoint"),
             **{k: final[k] for k in ("n", *METRICS) if k in final}}
            for seed, report, final in zip(seeds, reports, finals)]
    summaries = {metric: seed_summary([round(f[metric] * f["n"]) for f in finals], [f["n"] for f in finals]).as_dict()
                 for metric in METRICS if finals and all(metric in f for f in finals)}
    return {"seeds": list(seeds), "runs": runs, "final_eval": summaries}


def train_seeds(config: TrainConfig, seeds: Sequence[int],
                train_fn: Callable[[TrainConfig], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Fine-tune once per seed under ``config.output_dir/seed-S``; write and return ``seeds.json``."""
    if train_fn is None:
        from .trainer import train as train_fn
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds needs distinct seeds, got {list(seeds)}")
    config.validate()  # a bad option is one error line before the first seed trains
    seeds = [int(seed) for seed in seeds]
    reports = [seed_run(config, seed, train_fn) for seed in seeds]
    summary = summarize(reports, seeds)
    write_json_atomic(Path(config.output_dir) / "seeds.json", summary)
    return summary
