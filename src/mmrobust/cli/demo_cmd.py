"""``mmrobust demo``: attack, defend and re-attack the embedded proxy:digits model, offline, in minutes."""

from __future__ import annotations

from typing import Any

import typer

from ..demo import DemoConfig
from .errors import user_errors_exit
from .options import flags, values_for, with_options


@user_errors_exit
@with_options(flags(DemoConfig, exclude=("data_root", "templates", "precision", "compile")))
def demo_command(**shared: Any) -> None:
    """Evaluate, fine-tune (clean, TeCoA, MMCoA) and re-evaluate; print one table, write JSON/CSV/PNG.

    Without --text-goal the evaluation text attack uses zero-shot-margin (task-aware, stronger after
    fine-tuning); training keeps the study's embedding-kl."""
    from ..demo import run_demo

    run_demo(DemoConfig(**values_for(DemoConfig, shared, norm="linf")), echo=typer.echo)

