"""The trainer's output folder and resume: checkpoint state, saving, and continuing a run where it stopped.

Split from :mod:`.trainer` (issue 20) so the loop reads on its own; :class:`.trainer.Trainer` mixes it in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


from ..errors import ConfigError, ModelLoadError, ReportError
from .checkpointing import (
    START_OVER,
    Position,
    check_same_model,
    checked_position,
    has_checkpoint,
    load_model_weights,
    read_latest,
    restore_rng_state,
    rng_state,
    save_training_checkpoint,
)
from .visual_prompt import PromptedModel


from .trainer_report import REPORT_NAME


class ResumeMixin:
    """Output folder, checkpoint state and resume of a :class:`~.trainer.Trainer` (uses its attributes)."""

    def _prepare_output_dir(self) -> None:
        exists = has_checkpoint(self.output_dir)
        if self.config.resume and not exists:
            raise ConfigError(f"--resume: no training checkpoint in {self.output_dir}")
        if not self.config.resume and (exists or (self.output_dir / REPORT_NAME).exists()):
            raise ConfigError(
                f"{self.output_dir} already holds a training run; pass --resume to continue it or choose another "
                "--output-dir"
            )
        if self.dist.is_main:
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create --output-dir {self.output_dir}: {exc.strerror or exc}") from None
        self.dist.barrier()

    def _state(self, position: Position, accumulators: dict[str, float]) -> dict[str, Any]:
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
            "model_fingerprint": self.fingerprint,
            "config": self.config.to_dict(),
            "history": self.history,
            "epoch_accumulators": accumulators,
        }
        if isinstance(self.model, PromptedModel):
            state["prompt"] = {k: v.detach().cpu() for k, v in self.model.prompt.state_dict().items()}
        return state

    def _save(self, position: Position, accumulators: dict[str, float]) -> Path | None:
        folder = None
        if self.dist.is_main:
            try:
                folder = save_training_checkpoint(
                    self.output_dir, self.export_model(), self._state(position, accumulators), position,
                    keep=self.config.keep_checkpoints,
                )
            except ReportError as exc:
                raise ReportError(f"{exc}; {self._intact_note()}") from None
        self.dist.barrier()
        return folder

    def _intact_note(self) -> str:
        """Where training can continue from after a failed save (the previous checkpoint is untouched)."""
        if has_checkpoint(self.output_dir):
            return f"the previous checkpoint in {self.output_dir} is intact: free space and rerun with --resume"
        return "no checkpoint was written yet"

    def _resume(self) -> tuple[Position, dict[str, float]]:
        folder, state = read_latest(self.output_dir)
        check_same_model(state, self.fingerprint, folder)
        different = self.config.differences(state.get("config", {}))
        if different:
            raise ConfigError(
                f"--resume: the checkpoint in {self.output_dir} was made with other options ({', '.join(different)}); "
                "use the same options or another --output-dir"
            )
        position = checked_position(state, folder, self.config.epochs)
        try:
            if isinstance(self.model, PromptedModel):
                self.model.prompt.load_state_dict(state["prompt"])
            else:
                load_model_weights(self.model, folder)
            self.optimizer.load_state_dict(state["optimizer"])
            restore_rng_state(state["rng"])
            history = [dict(h) for h in state.get("history", [])]
            accumulators = {str(k): float(v) for k, v in dict(state.get("epoch_accumulators", {})).items()}
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as exc:
            raise ModelLoadError(
                f"training state in {folder} does not fit this run ({type(exc).__name__}: {str(exc)[:200]}); "
                f"{START_OVER}"
            ) from None
        self.history = history
        return position, accumulators
