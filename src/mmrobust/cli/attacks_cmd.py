"""``mmrobust attacks``: the attacks ``mmrobust eval --attack`` accepts, with their modality."""

from __future__ import annotations

import json

import typer

from ..attacks.presets import PRESETS
from ..attacks.registry import list_attacks
from .errors import user_errors_exit


@user_errors_exit
def attacks_command(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List the available attacks (name, modality, white/black-box, description) and the presets."""
    from ..attacks.retrieval.registry import list_retrieval_attacks

    rows = list_attacks()
    retrieval = list_retrieval_attacks()
    if as_json:
        typer.echo(json.dumps([{**r, "task": "classification"} for r in rows]
                              + [{**r, "task": "retrieval"} for r in retrieval], indent=2))
        return
    width = max(len(r["name"]) for r in rows + retrieval)
    for title, table in (("classification (default --task)", rows), ("retrieval (--task retrieval)", retrieval)):
        typer.echo(f"{title}:")
        for row in table:
            box = "white-box" if row["white_box"] else "black-box"
            typer.echo(f"  {row['name']:<{width}}  {row['modality']:<10}  {box:<9}  {row['description']}")
    typer.echo("presets (--preset, classification; benchmark --preset a,b,c compares them on the same images):")
    width = max(len(name) for name in PRESETS)
    for preset in PRESETS.values():
        typer.echo(f"  {preset.name:<{width}}  {preset.description}")
    typer.echo("options per attack: mmrobust attacks --json")
