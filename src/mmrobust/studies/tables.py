"""A study's table as text (printed), CSV (spreadsheets) and JSON (with config, seed and versions).

Accuracies are stored as fractions and shown in percent. Every row carries its reliability verdict
(``ok`` / ``UNRELIABLE (...)`` / ``unchecked``), so a number from an evaluation whose sanity checks failed or
did not run can never be read as a checked robustness claim.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ..utils.files import atomic_write, write_json_atomic


@dataclass(frozen=True)
class Column:
    """One table column: the row key, a title, and how to format it (pct, pp = percentage points, int,
    float, text)."""

    key: str
    title: str
    kind: str = "pct"

    def format(self, value: Any) -> str:
        if value is None:
            return "-"
        if self.kind == "pct":
            return f"{100 * float(value):.1f}%"
        if self.kind == "pp":
            return f"{100 * float(value):+.1f} pp"
        if self.kind == "int":
            return f"{int(value):,}"
        if self.kind == "float":
            return f"{float(value):g}"
        return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Fixed-width text, one line per row, columns as wide as their widest entry."""
    cells = [[c.title for c in columns]] + [[c.format(row.get(c.key)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(text.rjust(w) if columns[i].kind != "text" else text.ljust(w)
                       for i, (text, w) in enumerate(zip(line, widths))).rstrip() for line in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Raw values (fractions, not percent) under the column keys."""

    def _write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([c.key for c in columns])
            for row in rows:
                writer.writerow(["" if row.get(c.key) is None else row.get(c.key) for c in columns])

    atomic_write(path, _write)


def write_table(out: Path, rows: Sequence[dict[str, Any]], columns: Sequence[Column], meta: dict[str, Any]) -> str:
    """``table.csv`` + ``table.json`` under ``out``; returns the text table."""
    text = format_table(rows, columns)
    write_csv(out / "table.csv", rows, columns)
    write_json_atomic(out / "table.json", {
        **meta,
        "columns": [{"key": c.key, "title": c.title, "kind": c.kind} for c in columns],
        "rows": list(rows),
        "table": text,
    })
    return text
