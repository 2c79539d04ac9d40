"""The trainer's log and report: per-epoch entries, the final report and its text-attack block.

Split from :mod:`.trainer` (issue 20); :class:`.trainer.Trainer` mixes it in.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..data.sampling import indices_sha256
from ..errors import ReportError
from ..attacks.text.recipe_specs import RECIPE_SPECS
from ..models import save_checkpoint
from ..utils.environment import environment_versions
from ..utils.files import atomic_write, write_json_atomic
from .checkpointing import (
    Position,
)
from .config import eps_label
from ..utils.distributed import (
    all_reduce_sum,
)
from .text_adversary import TEXT_COUNTS


LOG_NAME = "log.jsonl"
REPORT_NAME = "report.json"
FINAL_NAME = "final"


class ReportMixin:
    """Log lines and the report of a :class:`~.trainer.Trainer` (uses its attributes)."""

    def _write_log(self) -> None:
        """Rewrite ``log.jsonl`` from the history (a resumed run drops epochs it is about to redo)."""
        if not self.dist.is_main:
            return
        text = "".join(json.dumps(entry, default=str) + "\n" for entry in self.history)
        atomic_write(self.output_dir / LOG_NAME, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    # ------------------------------------------------------------------ one step
    def _epoch_entry(self, epoch: int, n_steps: int, acc: dict[str, float], seconds: float) -> dict[str, Any]:
        keys = [k for k in acc if k not in ("n", "grad_norm")]
        sums = all_reduce_sum([acc.get("n", 0.0)] + [acc[k] for k in keys], self.dist)
        n = max(sums[0], 1.0)
        entry: dict[str, Any] = {"epoch": epoch + 1, "steps": n_steps, "n_images": int(sums[0])}
        entry.update({f"train_{k}": v / n for k, v in zip(keys, sums[1:]) if k not in TEXT_COUNTS})
        counts = {k: int(v) for k, v in zip(keys, sums[1:]) if k in TEXT_COUNTS}
        if counts:  # the caption attack's counts over the epoch (all ranks, across a resume)
            entry["text_attack"] = counts
        entry["grad_norm_mean"] = acc.get("grad_norm", 0.0) / max(n_steps, 1)
        entry["logit_scale"] = float(self.model.logit_scale.detach())
        entry["train_s"] = round(seconds, 3)
        entry["eval"] = self._evaluate(epoch)
        if self.dist.is_main and self.config.progress:
            ev = entry["eval"]
            robust = f", PGD {100 * ev['pgd_accuracy']:.2f}%" if "pgd_accuracy" in ev else ""
            tqdm.write(f"epoch {epoch + 1}: loss {entry.get('train_loss', float('nan')):.4f}, held-out clean "
                       f"{100 * ev['clean_accuracy']:.2f}%{robust} (n={ev['n']})")
        return entry

    def _finish(self, position: Position, last_folder: Path | None, t_start: float) -> dict[str, Any]:
        cfg = self.config
        final_dir = self.output_dir / FINAL_NAME
        report: dict[str, Any] = {
            "mmrobust_report_version": 1,
            "task": "adversarial_fine_tuning" if cfg.method != "clean" else "fine_tuning",
            "method": cfg.method,
            "config": cfg.to_dict(),
            "model": self.model.describe(),
            "trainable": self.selection.describe(),
            "objective": self.objective.describe(),
            "threat_model": {"norm": "Linf", "eps": eps_label(cfg.eps), "eps_float": cfg.eps,
                             "alpha": eps_label(cfg.alpha), "steps": cfg.steps},
            "data": {
                "train": {**self.train_set.describe(), "n_used": len(self.train_indices),
                          "indices_sha256": indices_sha256(self.train_indices)},
                "eval": {**self.eval_set.describe(), "n_used": len(self.eval_indices),
                         "indices_sha256": indices_sha256(self.eval_indices)},
                "templates": list(self.templates),
                "caption_template": self.caption_template,
            },
            "distributed": {"world_size": self.dist.world_size, "backend_device": str(self.dist.device)},
            "history": self.history,
            "final_eval": self.history[-1]["eval"] if self.history else None,
            "global_steps": position.global_step,
            "final_checkpoint": str(final_dir),
            "resumed": cfg.resume,
            "versions": environment_versions(),
        }
        if self.text_adversary is not None:
            report["text_attack"] = self._text_attack_block()
            # this process's share (a resume starts at 0)
            report["text_attack_cost"] = self.text_adversary.cost.to_dict()
        if self.dist.is_main:
            try:
                save_checkpoint(self.export_model(), final_dir, metadata={"training_report": REPORT_NAME,
                                                                          "method": cfg.method,
                                                                          "train_mode": cfg.train_mode})
                self.timings["total_s"] = round(time.perf_counter() - t_start, 3)
                report["timings"] = dict(self.timings)
                write_json_atomic(self.output_dir / REPORT_NAME, report)
            except ReportError as exc:
                raise ReportError(f"{exc}; {self._intact_note()}") from None
        self.dist.barrier()
        return report


    def _text_attack_block(self) -> dict[str, Any]:
        """The caption attack as eval reports a text attack: its options, what it changed, class-name collisions
        (summed over the epochs' counts, so all ranks and the epochs before a resume are included)."""
        cfg = self.config
        totals = {k: sum(h.get("text_attack", {}).get(k, 0) for h in self.history) for k in TEXT_COUNTS}
        block: dict[str, Any] = {
            "text_attack": cfg.text_attack, "mlm": cfg.mlm if RECIPE_SPECS[cfg.text_attack].needs_mlm else None,
            "text_words": cfg.text_words, "text_candidates": cfg.text_candidates, "text_goal": cfg.text_goal,
            "text_chunk": cfg.text_chunk, "protect_classnames": cfg.protect_classnames,
            "min_similarity": cfg.min_similarity, "attacker": self.text_adversary.describe(), **totals,
        }
        block["warnings"] = [] if not totals["class_name_collisions"] else [
            f"{totals['class_name_collisions']} adversarial caption(s) named another class: the caption attack "
            "merged classes rather than paraphrasing captions; --protect-classnames forbids it"]
        return block
