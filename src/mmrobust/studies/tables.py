"""A study's table as text (printed), CSV (spreadsheets) and JSON (with config, seed and versions).

Accuracies are stored as fractions and shown in percent. Every row carries its reliability verdict
(``ok`` / ``UNRELIABLE (...)`` / ``unchecked``), so a number from an evaluation whose sanity checks failed or
did not run can never be read as a checked robustness claim.
"""

from __future__ import annotations

import csv
import math
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

    def render(self, row: dict[str, Any]) -> str:
        """The value, with ``± sd`` over seeds and the 95 % interval ``[low, high]`` when the row has them."""
        value = row.get(self.key)
        text = self.format(value)
        if value is None or self.kind not in INTERVAL_KINDS:
            return text
        sign = "+" if self.kind == "pp" else ""
        sd = (row.get("sd") or {}).get(self.key)
        if sd is not None and math.isfinite(sd):
            text += f" ± {100 * sd:.1f}"
        interval = (row.get("ci") or {}).get(self.key)
        if interval is not None:
            text += f" [{100 * interval[0]:{sign}.1f}, {100 * interval[1]:{sign}.1f}]"
        return text


#: column kinds that carry an interval (accuracies and differences in percentage points)
INTERVAL_KINDS = ("pct", "pp")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Fixed-width text, one line per row, columns as wide as their widest entry."""
    cells = [[c.title for c in columns]] + [[c.render(row) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["  ".join(text.rjust(w) if columns[i].kind != "text" else text.ljust(w)
                       for i, (text, w) in enumerate(zip(line, widths))).rstrip() for line in cells]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
    """Raw values (fractions, not percent) under the column keys; ``KEY_low`` / ``KEY_high`` (95 % interval) and
    ``KEY_sd`` (over seeds) follow a column that has them."""
    fields: list[tuple[str, Any]] = []
    for c in columns:
        fields.append((c.key, lambda row, k=c.key: row.get(k)))
        if any(c.key in (row.get("ci") or {}) for row in rows):
            fields += [(f"{c.key}_low", lambda row, k=c.key: _part(row, "ci", k, 0)),
                       (f"{c.key}_high", lambda row, k=c.key: _part(row, "ci", k, 1))]
        if any(c.key in (row.get("sd") or {}) for row in rows):
            fields.append((f"{c.key}_sd", lambda row, k=c.key: (row.get("sd") or {}).get(k)))

    def _write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([name for name, _ in fields])
            for row in rows:
                values = [get(row) for _, get in fields]
                writer.writerow(["" if v is None else v for v in values])

    atomic_write(path, _write)


def _part(row: dict[str, Any], block: str, key: str, index: int) -> Any:
    interval = (row.get(block) or {}).get(key)
    return None if interval is None else interval[index]


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
