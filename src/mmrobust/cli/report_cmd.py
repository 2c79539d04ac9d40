"""``mmrobust report``: one self-contained HTML page (images inlined, no network) of any run's output."""

from __future__ import annotations

from typing import Optional

import typer

from .errors import user_errors_exit


@user_errors_exit
def report_command(
    path: str = typer.Argument(..., help="An eval report (JSON), or a benchmark, study or training output folder."),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", help="HTML file to write (default: REPORT.html beside the JSON, FOLDER/report.html)."),
) -> None:
    """Render a run as one HTML page: settings, tables with intervals, plots, sanity checks, example gallery."""
    from ..report import render_report

    typer.echo(f"page: {render_report(path, output)}")
