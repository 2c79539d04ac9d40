"""The robust evaluation loop: every attack attacks every batch; per-example results, resumable.

It only talks to :class:`~mmrobust.attacks.protocol.EvalAttack`: ``prepare`` once (text attacks perturb
the class prompts there), then per batch ``begin_batch`` + ``attack_batch``. Every adversarial image an
attack returns is checked against its threat model (eps-ball and [0, 1]). Before each attack on each
batch the global RNGs are also seeded from (seed, position, attack), so even attacks that use the
global RNG replay identically after a resume.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..attacks.protocol import AttackContext, EvalAttack, batch_seed
from ..data.base import ImageClassificationDataset
from .classification import accuracy_summary, check_finite_logits, iterate_batches
from ..errors import ConfigError
from .resume import EvalState, StateFile

#: hook called after each finished (and saved) batch with the number of batches done in this process
AfterBatch = Callable[[int], None]

#: slack for the eps-ball check (float rounding of clamp/projection)
BALL_TOLERANCE = 1e-5


def seed_globals(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def ball_violations(clean: torch.Tensor, adv: torch.Tensor, threat: dict[str, Any] | None) -> dict[str, float]:
    """How far adversarial images stray outside [0, 1] and the eps-ball (0 = fine), and how many do."""
    diff = (adv.detach().float() - clean.detach().float()).flatten(1)
    out_of_box = ((adv < -BALL_TOLERANCE) | (adv > 1 + BALL_TOLERANCE)).flatten(1).any(dim=1)
    finite = torch.isfinite(adv).flatten(1).all(dim=1)
    result = {"n_checked": float(adv.shape[0]), "n_out_of_box": float((out_of_box | ~finite).sum()),
              "n_outside_ball": 0.0, "max_norm": 0.0}
    if threat is not None:
        norms = diff.abs().amax(dim=1) if threat["norm"] == "Linf" else diff.norm(p=2, dim=1)
        result["max_norm"] = float(norms.max()) if norms.numel() else 0.0
        result["n_outside_ball"] = float((norms > threat["eps"] * (1 + BALL_TOLERANCE) + BALL_TOLERANCE).sum())
    return result


def _merge_ball(total: dict[str, float], new: dict[str, float]) -> dict[str, float]:
    if not total:
        return dict(new)
    merged = {k: total.get(k, 0.0) + new[k] for k in ("n_checked", "n_out_of_box", "n_outside_ball")}
    merged["max_norm"] = max(total.get("max_norm", 0.0), new["max_norm"])
    return merged


def prepare_attacks(attacks: Sequence[EvalAttack], ctx: AttackContext, state: EvalState) -> None:
    """``prepare`` every attack; on resume restore what its first preparation produced."""
    for attack in attacks:
        attack.prepare(ctx)
        saved = state.attack_states.get(attack.name)
        if saved is not None:
            try:
                attack.load_state_dict(saved)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                raise ConfigError(
                    f"the resume state of attack {attack.name} is damaged or hand-edited ({type(exc).__name__}: "
                    f"{exc}); delete the .state.json file beside the report (or pass --no-resume) to start over"
                ) from None
        else:
            state.attack_states[attack.name] = attack.state_dict()


def run_attacks(
    ctx: AttackContext,
    attacks: Sequence[EvalAttack],
    dataset: ImageClassificationDataset,
    indices: Sequence[int],
    batch_size: int,
    state: EvalState,
    state_file: StateFile | None = None,
    after_batch: AfterBatch | None = None,
) -> EvalState:
    """Clean predictions plus every attack on every batch, from ``state.next_position`` to the end.

    ``state`` is updated in place and saved after each batch; ``attacks`` must already be prepared.
    """
    done_here = 0
    progress = "robust" if ctx.progress else None
    for batch in iterate_batches(dataset, indices, batch_size, ctx.device, state.next_position, progress):
        position = batch.positions.start
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = ctx.classifier(batch.images)
        check_finite_logits(logits, f"clean batch at position {position}")
        clean_correct = (logits.argmax(dim=1) == batch.labels).cpu()
        state.clean_seconds += time.perf_counter() - t0
        batch_results: dict[str, list[bool]] = {}
        for attack in attacks:
            t1 = time.perf_counter()
            seed_globals(batch_seed(ctx.seed, position, "global:" + attack.name))
            attack.begin_batch(position)
            outcome = attack.attack_batch(batch.images, batch.labels)
            correct = torch.as_tensor(outcome.correct).bool().cpu().reshape(-1)
            if correct.numel() != len(batch.positions):
                raise RuntimeError(f"attack {attack.name} returned {correct.numel()} results for "
                                   f"{len(batch.positions)} images")
            batch_results[attack.name] = correct.tolist()
            extra = state.attack_extra.setdefault(attack.name, {})
            for key, value in outcome.extra.items():
                extra[key] = extra.get(key, 0.0) + float(value)
            if outcome.adv_images is not None:
                check = ball_violations(batch.images, outcome.adv_images, attack.threat_model())
                state.ball_checks[attack.name] = _merge_ball(state.ball_checks.get(attack.name, {}), check)
            state.attack_seconds[attack.name] = state.attack_seconds.get(attack.name, 0.0) + time.perf_counter() - t1
        # commit the whole batch at once, so a crash mid-batch leaves the state at the previous batch
        state.labels.extend(int(v) for v in batch.labels.cpu().tolist())
        state.clean_correct.extend(bool(v) for v in clean_correct.tolist())
        for name, values in batch_results.items():
            state.attack_correct.setdefault(name, []).extend(values)
        state.next_position = batch.positions.stop
        if state_file is not None:
            state_file.save(state)
        done_here += 1
        if after_batch is not None:
            after_batch(done_here)
    return state


def summarize(
    state: EvalState, attacks: Sequence[EvalAttack], n_classes: int
) -> tuple[dict[str, Any], dict[str, list[bool]]]:
    """Metrics block and per-example arrays from a finished state.

    An example counts as robust under an attack only if it is classified correctly both clean and under
    that attack; ``raw_accuracy`` is the accuracy on the attacked inputs alone (a sanity check compares it
    with the clean accuracy). Worst case: robust under every attack.
    """
    labels = np.asarray(state.labels, dtype=np.int64)
    clean = np.asarray(state.clean_correct, dtype=bool)
    metrics: dict[str, Any] = {"clean": accuracy_summary(clean, labels, n_classes), "attacks": {}}
    per_example: dict[str, list[bool]] = {"labels": labels.tolist(), "clean": clean.tolist()}
    worst = clean.copy()
    by_modality: dict[str, np.ndarray] = {}
    n_clean_correct = int(clean.sum())
    for attack in attacks:
        raw = np.asarray(state.attack_correct.get(attack.name, []), dtype=bool)
        robust = clean & raw
        block = accuracy_summary(robust, labels, n_classes)
        block["raw_accuracy"] = float(raw.mean()) if raw.size else float("nan")
        block["attack_success_rate"] = (
            float((clean & ~raw).sum() / n_clean_correct) if n_clean_correct else float("nan")
        )
        block["n_originally_correct"] = n_clean_correct
        block["modality"] = attack.modality
        block["seconds"] = round(state.attack_seconds.get(attack.name, 0.0), 3)
        if state.attack_extra.get(attack.name):
            block["extra"] = dict(state.attack_extra[attack.name])
        if attack.name in state.ball_checks:
            block["threat_model_check"] = dict(state.ball_checks[attack.name])
        metrics["attacks"][attack.name] = block
        per_example[attack.name] = robust.tolist()
        worst &= robust
        by_modality[attack.modality] = by_modality.get(attack.modality, clean.copy()) & robust
    worst_block = accuracy_summary(worst, labels, n_classes)
    worst_block["attack_success_rate"] = (
        float((clean & ~worst).sum() / n_clean_correct) if n_clean_correct else float("nan")
    )
    metrics["worst_case"] = worst_block
    per_example["worst_case"] = worst.tolist()
    metrics["by_modality"] = {
        "clean": metrics["clean"]["accuracy"],
        "image": float(by_modality["image"].mean()) if "image" in by_modality else None,
        "text": float(by_modality["text"].mean()) if "text" in by_modality else None,
        "multimodal": float(by_modality["multimodal"].mean()) if "multimodal" in by_modality else None,
        "worst_case": worst_block["accuracy"],
    }
    return metrics, per_example
