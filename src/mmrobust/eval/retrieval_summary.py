"""Human-readable lines for a retrieval report (CLI and bench tables share them).

Every number says what it is: ``R@K`` is recall (the model's score, higher = more robust); ``ASR@1`` is
the attack success rate (the attack's score, higher = stronger attack) — Co-Attack's tracker shows users
mixing the two up.
"""

from __future__ import annotations

from typing import Any

DIRECTIONS = (("text_to_image", "T->I"), ("image_to_text", "I->T"))


def recall_text(recall: dict[str, Any]) -> str:
    parts = []
    for direction, short in DIRECTIONS:
        values = " / ".join(f"{100 * recall[direction]['r@' + str(k)]:.1f}" for k in (1, 5, 10))
        parts.append(f"{short} R@1/5/10 {values}")
    return "  ".join(parts) + f"  mean recall {100 * recall['mean']:.1f}"


def success_text(asr: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"
    return "  ".join(f"{short} ASR@1 {pct(asr[d]['asr@1'])}" for d, short in DIRECTIONS)


def summary_lines(report: dict[str, Any]) -> list[str]:
    data = report["dataset"]
    source = report.get("source_model")
    head = (f"{report['model']['spec']} on {data['name']}/{data['split']} (retrieval, {data['n_images']} images, "
            f"{data['n_captions']} captions, seed {report['seed']})"
            + (f"; attacks crafted on {source['spec']} (transfer)" if source else ""))
    lines = [head, f"  clean        recall: {recall_text(report['metrics']['clean']['recall'])}"]
    for name, block in report["metrics"].get("attacks", {}).items():
        lines.append(f"  {name:<12} recall: {recall_text(block['recall'])}")
        lines.append(f"  {'':<12} attack success rate: {success_text(block['attack_success_rate'])}  ({block['seconds']:.1f}s)")
    if data.get("n_skipped_no_captions"):
        lines.append(f"  note: {data['n_skipped_no_captions']} image(s) without captions were skipped")
    if report.get("unreliable"):
        lines.append(f"  UNRELIABLE: adversarial images outside the threat model in {', '.join(report['sanity']['failed'])}")
    return lines
