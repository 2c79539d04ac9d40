"""Render a run's page to one self-contained HTML file (jinja2, autoescaped; images inlined; no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..utils.files import atomic_write
from .pages import page_for

TEMPLATE_DIR = Path(__file__).with_name("templates")


def environment() -> Any:
    """jinja2 environment with autoescaping on for every template (a class name never becomes markup)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(page: dict[str, Any]) -> str:
    from .. import __version__

    return environment().get_template("page.html.j2").render(page=page, mmrobust_version=__version__)


def default_output(path: str | Path) -> Path:
    """``report.json`` -> ``report.html``; a folder -> ``FOLDER/report.html``."""
    path = Path(path)
    return path / "report.html" if path.is_dir() else path.with_suffix(".html")


def render_report(path: str | Path, output: str | Path | None = None) -> Path:
    """Write the page of ``path`` (eval report, benchmark/study/training folder); returns the HTML path."""
    out = Path(output) if output is not None else default_output(path)
    html = render_html(page_for(path))
    atomic_write(out, lambda tmp: tmp.write_text(html, encoding="utf-8"))
    return out
