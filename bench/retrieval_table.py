"""Markdown rows from retrieval reports: recall (model's score) and attack success rate (attack's score).

    python bench/retrieval_table.py r.json [more.json ...]
"""

from __future__ import annotations

import json
import sys


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def rows(report: dict) -> list[str]:
    source = (report.get("source_model") or {}).get("spec")
    setting = f"{source} -> {report['model']['spec']}" if source else report["model"]["spec"]
    out = []
    blocks = {"clean": report["metrics"]["clean"], **report["metrics"].get("attacks", {})}
    for name, block in blocks.items():
        r, asr = block["recall"], block.get("attack_success_rate")
        cells = [setting, name]
        cells += [pct(r[d][f"r@{k}"]) for d in ("text_to_image", "image_to_text") for k in (1, 5, 10)]
        cells.append(pct(r["mean"]))
        cells += [pct(asr[d]["asr@1"]) if asr else "-" for d in ("text_to_image", "image_to_text")]
        cells.append(f"{block.get('seconds', 0):.0f}" if asr else "-")
        out.append("| " + " | ".join(cells) + " |")
    return out


HEADER = ("| crafted -> scored | attack | T→I R@1 | T→I R@5 | T→I R@10 | I→T R@1 | I→T R@5 | I→T R@10 | mean R "
          "| T→I ASR@1 | I→T ASR@1 | s |\n" + "|" + "---|" * 12)

if __name__ == "__main__":
    print(HEADER)
    for path in sys.argv[1:]:
        print("\n".join(rows(json.load(open(path)))))
