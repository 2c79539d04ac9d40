"""``mmrobust models`` and ``mmrobust datasets``: what can be passed to --model and --dataset."""

from __future__ import annotations

import typer

from ..data import list_datasets
from ..models import list_models


def models_command() -> None:
    """List the model spec forms (and locally cached proxy models)."""
    for row in list_models():
        typer.echo(f"{row['example']:<36} {row['description']}")
    try:
        from ..proxy.loading import list_proxies
    except ImportError:
        return
    for row in list_proxies():
        typer.echo(f"{'proxy:' + row['name']:<36} {row['status']}")


def datasets_command() -> None:
    """List dataset names, their default split and where the files come from."""
    from ..data.retrieval_registry import list_retrieval_datasets

    for row in list_datasets():
        if row["task"] == "classification":
            typer.echo(f"{row['name']:<16} {row['default_split']:<6} {row['description']}")
    typer.echo("retrieval (--task retrieval):")
    for row in list_retrieval_datasets():
        typer.echo(f"{row['name']:<16} {row['default_split']:<6} {row['description']}")
