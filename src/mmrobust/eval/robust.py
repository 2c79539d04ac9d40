"""The robust evaluation loop: attack only what still stands; per-example results, resumable.

Why not every attack on every image: an image misclassified clean counts as not robust anyway, and in the
worst case an image one attack broke stays broken whatever the others do. AutoAttack (Croce & Hein 2020)
therefore attacks only the clean-correct images and runs each further attack only on the images still
standing; with ~40 % clean accuracy most of the compute of "every attack on every image" is wasted.

* Clean-misclassified images are never attacked (both modes); they count as not robust.
* ``ensemble="cascade"`` (default, as AutoAttack): attack k runs only on the images attacks 1..k-1 left
  standing, so its per-example result is the robustness *after* attacks 1..k (cumulative).
* ``ensemble="each"``: every attack runs on every clean-correct image (standalone per-attack numbers).

Worst-case accuracy is identical in both modes on the same seed: each example's randomness comes from
streams keyed by (seed, dataset index, attack) (:mod:`mmrobust.attacks.image.streams`), so attack k gives
an example the same outcome whichever other images share its call. Per attack the state records, per
example, ``True`` (attacked, survived), ``False`` (attacked, broken) or ``None`` (not attacked), hence
``n_attacked``/``n_broken`` in the report.

It only talks to :class:`~mmrobust.attacks.protocol.EvalAttack`: ``prepare`` once (text attacks perturb
the class prompts there), then per batch ``begin_batch`` + ``attack_batch``. Every adversarial image an
attack returns is checked against its threat model (eps-ball and [0, 1]). Before each attack on each
batch the global RNGs are also seeded from (seed, position, attack), so even attacks that use the
global RNG replay identically after a resume. Clean and adversarial predictions are scored in fp32
whatever the attacks' precision.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..attacks.protocol import AttackContext, EvalAttack, batch_seed
from ..data.base import ImageClassificationDataset
from ..errors import ConfigError
from ..utils.precision import precision_context
from .classification import accuracy_summary, check_finite_logits, iterate_batches
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


ENSEMBLE_MODES = ("cascade", "each")


def check_ensemble(mode: str) -> str:
    value = str(mode).strip().lower()
    if value not in ENSEMBLE_MODES:
        raise ConfigError(f"unknown --ensemble {mode!r}; use cascade (attack what still stands) or each")
    return value


def run_attacks(
    ctx: AttackContext,
    attacks: Sequence[EvalAttack],
    dataset: ImageClassificationDataset,
    indices: Sequence[int],
    batch_size: int,
    state: EvalState,
    state_file: StateFile | None = None,
    after_batch: AfterBatch | None = None,
    ensemble: str = "cascade",
    global_position: Callable[[int], int] | None = None,
    examples: Any = None,
) -> EvalState:
    """Clean predictions plus the attacks on what still stands, batch by batch, from ``state.next_position``.

    ``state`` is updated in place and saved after each batch; ``attacks`` must already be prepared.
    ``global_position`` maps a batch's position in ``indices`` to its position in the whole run (a shard of a
    torchrun evaluation, :mod:`.distributed`), which keys the batch's seeding.
    """
    ensemble = check_ensemble(ensemble)
    done_here = 0
    progress = "robust" if ctx.progress else None
    for batch in iterate_batches(dataset, indices, batch_size, ctx.device, state.next_position, progress):
        position = batch.positions.start if global_position is None else global_position(batch.positions.start)
        example_ids = [int(indices[p]) for p in batch.positions]  # local positions into this shard's indices
        t0 = time.perf_counter()
        with torch.no_grad(), precision_context("fp32", ctx.device):
            logits = ctx.classifier(batch.images)
        check_finite_logits(logits, f"clean batch at position {position}")
        clean_correct = (logits.argmax(dim=1) == batch.labels).cpu()
        state.clean_seconds += time.perf_counter() - t0
        standing = clean_correct.clone()
        batch_results: dict[str, list[bool | None]] = {}
        for attack in attacks:
            t1 = time.perf_counter()
            rows = (standing if ensemble == "cascade" else clean_correct).nonzero().squeeze(1)
            values: list[bool | None] = [None] * len(example_ids)
            if rows.numel():
                correct = _attack_rows(ctx, attack, batch, position, rows, example_ids, state, examples)
                for row, value in zip(rows.tolist(), correct.tolist()):
                    values[row] = bool(value)
                standing[rows[~correct]] = False
            batch_results[attack.name] = values
            state.attack_seconds[attack.name] = state.attack_seconds.get(attack.name, 0.0) + time.perf_counter() - t1
        # commit the whole batch at once, so a crash mid-batch leaves the state at the previous batch
        state.labels.extend(int(v) for v in batch.labels.cpu().tolist())
        state.clean_correct.extend(bool(v) for v in clean_correct.tolist())
        for name, result in batch_results.items():
            state.attack_correct.setdefault(name, []).extend(result)
        state.next_position = batch.positions.stop
        if state_file is not None:
            state_file.save(state)
        done_here += 1
        if after_batch is not None:
            after_batch(done_here)
    return state


def _attack_rows(ctx: AttackContext, attack: EvalAttack, batch, position: int, rows: torch.Tensor,
                 example_ids: Sequence[int], state: EvalState, examples: Any = None) -> torch.Tensor:
    """Run ``attack`` on the batch's images at ``rows``; per-row correctness under attack (bool, CPU)."""
    on_device = rows.to(batch.images.device)
    images, labels = batch.images[on_device], batch.labels[on_device]
    seed_globals(batch_seed(ctx.seed, position, "global:" + attack.name))
    attack.begin_batch(position, [example_ids[r] for r in rows.tolist()])
    with precision_context("fp32", ctx.device):
        outcome = attack.attack_batch(images, labels)
    correct = torch.as_tensor(outcome.correct).bool().cpu().reshape(-1)
    if correct.numel() != rows.numel():
        raise RuntimeError(f"attack {attack.name} returned {correct.numel()} results for {rows.numel()} images")
    if examples is not None and examples.wants(attack.name):  # --save-examples (.examples)
        examples.capture(attack, images, labels, outcome, [example_ids[r] for r in rows.tolist()])
    extra = state.attack_extra.setdefault(attack.name, {})
    for key, value in outcome.extra.items():
        extra[key] = extra.get(key, 0.0) + float(value)
    if outcome.adv_images is not None:
        check = ball_violations(images, outcome.adv_images, attack.threat_model())
        state.ball_checks[attack.name] = _merge_ball(state.ball_checks.get(attack.name, {}), check)
    return correct


def summarize(
    state: EvalState, attacks: Sequence[EvalAttack], n_classes: int, ensemble: str = "cascade"
) -> tuple[dict[str, Any], dict[str, list[bool]]]:
    """Metrics block and per-example arrays from a finished state.

    An example counts as robust under an attack only if it was attacked and survived (clean-wrong images are
    never attacked; in cascade mode neither are images an earlier attack broke, so per-attack numbers are
    cumulative there). Worst case: robust under every attack. ``n_attacked``/``n_broken``: how many images an
    attack was run on and how many of those it broke.
    """
    labels = np.asarray(state.labels, dtype=np.int64)
    clean = np.asarray(state.clean_correct, dtype=bool)
    metrics: dict[str, Any] = {"clean": accuracy_summary(clean, labels, n_classes), "attacks": {}}
    per_example: dict[str, list[bool]] = {"labels": labels.tolist(), "clean": clean.tolist()}
    worst = clean.copy()
    by_modality: dict[str, np.ndarray] = {}
    n_clean_correct = int(clean.sum())
    for attack in attacks:
        raw = state.attack_correct.get(attack.name, [])
        robust = np.array([value is True for value in raw], dtype=bool)  # not attacked = broken or clean-wrong
        attacked = np.array([value is not None for value in raw], dtype=bool)
        block = accuracy_summary(robust, labels, n_classes)
        block["n_attacked"] = int(attacked.sum())
        block["n_broken"] = int((attacked & ~robust).sum())
        block["attack_success_rate"] = (
            float((clean & ~robust).sum() / n_clean_correct) if n_clean_correct else float("nan")
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
    exact = _exact_modalities(attacks, check_ensemble(ensemble))
    metrics["by_modality"] = {"clean": metrics["clean"]["accuracy"]}
    for modality in ("image", "text", "multimodal"):
        known = modality in by_modality and modality in exact
        metrics["by_modality"][modality] = float(by_modality[modality].mean()) if known else None
    metrics["by_modality"]["worst_case"] = worst_block["accuracy"]
    missing = sorted(set(by_modality) - exact)
    if missing:
        metrics["by_modality"]["note"] = (f"{', '.join(missing)}: not measured standalone in cascade mode (an "
                                          "earlier attack of another modality spared those images); use --ensemble each")
    metrics["ensemble"] = check_ensemble(ensemble)
    return metrics, per_example


def _exact_modalities(attacks: Sequence[EvalAttack], ensemble: str) -> set[str]:
    """Modalities whose worst case the run measured exactly: all in ``each`` mode; in cascade only a modality
    whose attacks come first in the list (later ones never saw the images earlier attacks broke)."""
    modalities = [a.modality for a in attacks]
    if ensemble == "each" or not modalities:
        return set(modalities)
    first = modalities[0]
    prefix = len(modalities) - modalities[::-1].index(first)  # up to the last attack of the first modality
    return {first} if all(m == first for m in modalities[:prefix]) else set()
