"""Automatic checks that a robustness number can be trusted (after AutoAttack's ``checks.py`` and
Carlini et al. 2019, "On Evaluating Adversarial Robustness").

A defended-looking model is often a broken evaluation: gradients that vanish (masking), attacks that get
weaker with more steps or a bigger budget, a black-box attack that beats the white-box ones, adversarial
images outside the threat model, results that change with the batch size. Each check below either passes,
fails (the report gets ``unreliable: true`` and a loud warning on stderr) or is skipped with a reason —
a run never claims a check it did not do.

Checks from the main run's results: ``threat_model`` (every attack that returns images). Robust accuracy
cannot exceed clean accuracy by construction (only clean-correct images are attacked; an unattacked image
counts as broken), so ``robust_le_clean`` is listed as skipped with that reason. Probe checks, only when
image-perturbing (image or multimodal) attacks were requested, on the first ``n_probe`` evaluation
examples: ``gradients``, ``steps_monotone``, ``eps_monotone``, ``large_eps``, ``square_vs_whitebox``
(Linf only), ``batch_size`` (PGD without and with a random start: per-example streams make the outcome
independent of the batch size), ``adaptive_defense`` when a test-time defense (``--test-time-defense``) was
attacked with straight-through gradients (PGD through its counterattack, unrolled or with BPDA for its sign
step, must not break clearly more images), and ``precision`` when attacks ran below fp32 (a subset re-attacked in fp32
must not be broken clearly more often).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..attacks.image.streams import ExampleStreams
from ..attacks.protocol import AttackContext, EvalAttack
from ..data.base import ImageClassificationDataset
from ..utils.precision import precision_context
from .classification import iterate_batches
from .resume import EvalState

#: the "very large" budget that must break any model: 64/255 (Linf) or the L2 radius of that cube's corner
LARGE_EPS_LINF = 64 / 255


@dataclass
class SanityConfig:
    """Sizes of the built-in probes (kept small: they run on top of the evaluation)."""

    n_probe: int = 64
    probe_steps: tuple[int, ...] = (2, 8, 32)
    eps_factors: tuple[float, ...] = (0.5, 1.0, 2.0)
    probe_attack_steps: int = 10
    square_queries: int = 300
    #: examples per attack re-attacked in fp32 when the run used a lower precision
    n_precision: int = 16
    max_zero_gradient_fraction: float = 0.1
    large_eps_max_accuracy: float = 0.05
    slack_examples: int = 1
    slack_fraction: float = 0.02


def _slack(n: int, config: SanityConfig) -> float:
    """Allowed accuracy difference before calling two numbers different: a few examples of noise."""
    return (config.slack_examples / max(n, 1)) + config.slack_fraction


class _Probe:
    """The probe examples and the helpers that attack them deterministically."""

    def __init__(self, ctx: AttackContext, images: torch.Tensor, labels: torch.Tensor, example_ids: Sequence[int],
                 batch_size: int, threat: dict[str, Any]) -> None:
        self.ctx, self.images, self.labels = ctx, images, labels
        self.example_ids = [int(i) for i in example_ids]
        self.batch_size = max(1, min(batch_size, images.shape[0]))
        self.norm = threat["norm"]
        self.eps = float(threat["eps"])

    def _batches(self, batch_size: int):
        for start in range(0, self.images.shape[0], batch_size):
            yield start, self.images[start : start + batch_size], self.labels[start : start + batch_size]

    def correct(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (self.ctx.classifier(images).argmax(dim=1) == labels).cpu()

    def attack_accuracy(self, make, salt: str, batch_size: int | None = None) -> tuple[float, torch.Tensor]:
        """Accuracy (and per-example correctness) under the attack ``make()``, batch by batch, each example with
        its own random stream keyed by (seed, dataset index, salt)."""
        results = []
        for start, x, y in self._batches(batch_size or self.batch_size):
            ids = self.example_ids[start : start + x.shape[0]]
            adv = make()(x, y, streams=ExampleStreams.for_examples(self.ctx.seed, ids, "sanity:" + salt))
            results.append(self.correct(adv, y))
        correct = torch.cat(results)
        return float(correct.float().mean()), correct

    def pgd(self, eps: float, steps: int, alpha: float | None = None, random_start: bool = True):
        from ..attacks.image.pgd import PGD
        from ..attacks.options import default_step_size

        alpha = alpha if alpha is not None else default_step_size(eps, self.norm)
        return lambda: PGD(self.ctx.classifier, eps, alpha, steps, self.norm, random_start=random_start,
                           track_best=True)

    def zero_gradient_fraction(self) -> tuple[float, float]:
        """(fraction of examples whose CE input gradient is all zero, fraction non-finite)."""
        zero, nonfinite = 0, 0
        classifier = self.ctx.classifier
        from ..attacks.image.base import eval_mode

        with eval_mode(classifier), torch.enable_grad():
            for _, x, y in self._batches(self.batch_size):
                x = x.detach().clone().float().requires_grad_(True)
                loss = F.cross_entropy(classifier(x).float(), y, reduction="sum")
                (grad,) = torch.autograd.grad(loss, x)
                flat = grad.flatten(1)
                finite = torch.isfinite(flat).all(dim=1)
                nonfinite += int((~finite).sum())
                zero += int(((flat == 0).all(dim=1) & finite).sum())
        n = self.images.shape[0]
        return zero / n, nonfinite / n


def _check(passed: bool, **detail: Any) -> dict[str, Any]:
    return {"passed": bool(passed), **detail}


def _non_increasing(values: Sequence[float], slack: float) -> bool:
    return all(later <= earlier + slack for earlier, later in zip(values, values[1:]))


def large_eps_for(norm: str, image_shape: Sequence[int]) -> float:
    """64/255 for Linf; for L2 the radius reaching the corner of that cube (64/255 * sqrt(C*H*W))."""
    if norm == "Linf":
        return LARGE_EPS_LINF
    return LARGE_EPS_LINF * math.sqrt(float(torch.tensor(list(image_shape)).prod()))


def run_sanity_checks(
    ctx: AttackContext,
    attacks: Sequence[EvalAttack],
    state: EvalState,
    dataset: ImageClassificationDataset,
    indices: Sequence[int],
    batch_size: int,
    config: SanityConfig | None = None,
) -> dict[str, Any]:
    """Run every applicable check; returns the report's ``sanity`` block (with ``unreliable``)."""
    config = config or SanityConfig()
    t0 = time.perf_counter()
    checks: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    n = len(state.clean_correct)

    # ---- from the main run
    skipped["robust_le_clean"] = ("holds by construction: only clean-correct images are attacked and an "
                                  "unattacked image counts as not robust")
    if state.ball_checks:
        bad = {name: c for name, c in state.ball_checks.items() if c["n_out_of_box"] or c["n_outside_ball"]}
        checks["threat_model"] = _check(not bad, per_attack=dict(state.ball_checks),
                                        note="every adversarial image inside the eps-ball and in [0, 1]")
    else:
        skipped["threat_model"] = "no attack returned adversarial images"

    perturbing = [a for a in attacks if a.threat_model() is not None]  # image and multimodal attacks
    probe_names = ["gradients", "steps_monotone", "eps_monotone", "large_eps", "square_vs_whitebox", "batch_size",
                   "adaptive_defense"]
    if not perturbing:
        for name in probe_names:
            skipped[name] = "no image-perturbing attack in this run (these checks probe pixel-space attacks)"
    else:
        with precision_context("fp32", ctx.device):  # the probes measure the attacks, not the arithmetic
            _probe_checks(ctx, attacks, state, dataset, indices, batch_size, config, checks, skipped,
                          perturbing[0].threat_model())
    with precision_context("fp32", ctx.device):
        _precision_check(ctx, attacks, state, dataset, indices, config, checks, skipped)

    failed = [name for name, c in checks.items() if not c["passed"]]
    return {
        "ran": True,
        "checks_run": list(checks),
        "checks_skipped": skipped,
        "checks": checks,
        "failed": failed,
        "unreliable": bool(failed),
        "n_probe": min(config.n_probe, n),
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()},
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _probe_checks(ctx, attacks, state, dataset, indices, batch_size, config, checks, skipped, threat) -> None:
    n_probe = min(config.n_probe, len(indices))
    probe_ids = list(indices)[:n_probe]
    batch = next(iterate_batches(dataset, probe_ids, n_probe, ctx.device))
    probe = _Probe(ctx, batch.images, batch.labels, probe_ids, batch_size, threat)
    eps, norm = probe.eps, probe.norm
    slack = _slack(n_probe, config)

    zero, nonfinite = probe.zero_gradient_fraction()
    checks["gradients"] = _check(zero + nonfinite <= config.max_zero_gradient_fraction,
                                 zero_fraction=zero, nonfinite_fraction=nonfinite,
                                 threshold=config.max_zero_gradient_fraction,
                                 note="all-zero or non-finite input gradients point to gradient masking")

    by_steps = [probe.attack_accuracy(probe.pgd(eps, s), "steps")[0] for s in config.probe_steps]
    checks["steps_monotone"] = _check(_non_increasing(by_steps, slack), steps=list(config.probe_steps),
                                      accuracy=by_steps, alpha="the PGD step-size rule")

    by_eps = [probe.attack_accuracy(probe.pgd(eps * f, config.probe_attack_steps), "eps")[0]
              for f in config.eps_factors]
    checks["eps_monotone"] = _check(_non_increasing(by_eps, slack), eps=[eps * f for f in config.eps_factors],
                                    accuracy=by_eps, steps=config.probe_attack_steps)

    big = large_eps_for(norm, batch.images.shape[1:])
    big_acc = probe.attack_accuracy(probe.pgd(big, config.probe_attack_steps), "large")[0]
    checks["large_eps"] = _check(big_acc <= config.large_eps_max_accuracy, eps=big, norm=norm, accuracy=big_acc,
                                 threshold=config.large_eps_max_accuracy,
                                 note="a huge budget must drive accuracy to about 0")

    from ..attacks.registry import get_attack_spec

    whitebox = [a for a in attacks if a.modality == "image" and get_attack_spec(a.name).white_box]
    if not whitebox:
        skipped["square_vs_whitebox"] = "no white-box image attack in this run"
    else:
        from ..attacks.image.square import square_attack

        wb_correct = torch.ones(n_probe, dtype=torch.bool)
        for attack in whitebox:
            wb_correct &= torch.tensor([v is True for v in state.attack_correct[attack.name][:n_probe]])
        clean = torch.tensor(state.clean_correct[:n_probe], dtype=torch.bool)
        _, sq_correct = probe.attack_accuracy(
            lambda: square_attack(ctx.classifier, eps, norm, n_queries=config.square_queries), "square")
        wb_acc = float((wb_correct & clean).float().mean())
        sq_acc = float((sq_correct & clean).float().mean())
        only_square = int((clean & wb_correct & ~sq_correct).sum())
        checks["square_vs_whitebox"] = _check(
            sq_acc >= wb_acc - slack, whitebox_accuracy=wb_acc, square_accuracy=sq_acc,
            n_fooled_only_by_square=only_square, whitebox_attacks=[a.name for a in whitebox],
            square_queries=config.square_queries,
            note="a black-box attack beating the white-box ones means the gradients mislead")

    _adaptive_defense_check(ctx, probe, config, checks, skipped, slack)

    first = probe.batch_size
    second = max(1, first // 2) if first > 1 else min(2, n_probe)
    if second == first:
        skipped["batch_size"] = "only one probe example"
    else:
        results = {}
        for label, random_start in (("PGD without random start", False), ("PGD with random start", True)):
            attack = probe.pgd(eps, config.probe_attack_steps, random_start=random_start)
            acc_a, correct_a = probe.attack_accuracy(attack, "batch", first)
            acc_b, correct_b = probe.attack_accuracy(attack, "batch", second)
            results[label] = {"accuracy": [acc_a, acc_b], "n_disagree": int((correct_a != correct_b).sum())}
        checks["batch_size"] = _check(
            all(abs(r["accuracy"][0] - r["accuracy"][1]) <= slack for r in results.values()),
            batch_sizes=[first, second], attacks=results,
            note="per-example random streams: an example's attack must not depend on its batch")


def _adaptive_defense_check(ctx, probe: _Probe, config: SanityConfig, checks, skipped, slack: float) -> None:
    """A test-time defense attacked with straight-through gradients must not look clearly more robust than under
    the adaptive gradients through its counterattack (:mod:`mmrobust.models.test_time`: ``unrolled`` and ``bpda``):
    PGD on the probe each way, the same forward pass scoring all. Fails (unreliable) when an adaptive attack breaks
    clearly more images."""
    from ..models.test_time import CounterattackedModel
    from ..models.zeroshot import ZeroShotClassifier

    model = ctx.model
    if not isinstance(model, CounterattackedModel):
        skipped["adaptive_defense"] = "no test-time defense"
        return
    if model.settings.gradient != "detach":
        skipped["adaptive_defense"] = (f"the run's attacks already differentiate through the counterattack "
                                       f"(--ttc-gradient {model.settings.gradient})")
        return
    if model.settings.eps <= 0:
        skipped["adaptive_defense"] = "the defense's budget is 0: it is the undefended model"
        return
    from dataclasses import replace

    from ..attacks.image.pgd import PGD
    from ..attacks.options import default_step_size

    classifier = ctx.classifier
    attacked = {"straight-through": classifier}
    for mode in ("unrolled", "bpda"):
        twin = CounterattackedModel(model.base, replace(model.settings, gradient=mode))
        attacked[mode] = ZeroShotClassifier(twin, classifier.text_embeddings, classifier.classes,
                                            classifier.fixed_logit_scale)
    eps, steps = probe.eps, config.probe_attack_steps
    alpha = default_step_size(eps, probe.norm)
    accuracy = {}
    for label, target in attacked.items():
        accuracy[label], _ = probe.attack_accuracy(
            lambda: PGD(target, eps, alpha, steps, probe.norm, random_start=True, track_best=True), "adaptive")
    base = accuracy["straight-through"]
    checks["adaptive_defense"] = _check(
        all(accuracy[m] >= base - slack for m in ("unrolled", "bpda")), defense=model.settings.describe()["name"],
        accuracy=accuracy, eps=eps, steps=steps,
        note="PGD through the counterattack (unrolled, or with BPDA for its sign step) breaking clearly more images "
             "than the straight-through PGD of the run means the run's number overstates the defense")


def _precision_check(ctx, attacks, state, dataset, indices, config, checks, skipped) -> None:
    """Re-attack up to ``n_precision`` examples per image attack in fp32 when the run used a lower precision.

    The fp32 replay uses the same per-example streams as the run, so any difference comes from the arithmetic:
    fp32 breaking clearly more images than the run's precision means low precision masked the attack.
    """
    low = [a for a in attacks if getattr(getattr(a, "options", a), "precision", "fp32") != "fp32"]
    replayable = [a for a in low if hasattr(a, "adversarial")]
    if not low:
        skipped["precision"] = "attacks ran in fp32"
        return
    if not replayable:
        skipped["precision"] = "no image attack to replay in fp32 (multimodal attacks are not replayed)"
        return
    precision = replayable[0].precision
    per_attack, passed = {}, True
    for attack in replayable:
        outcomes = state.attack_correct.get(attack.name, [])
        positions = [p for p, value in enumerate(outcomes) if value is not None][: config.n_precision]
        if not positions:
            per_attack[attack.name] = {"n": 0, "note": "no attacked example"}
            continue
        ids = [int(indices[p]) for p in positions]
        batch = next(iterate_batches(dataset, ids, len(ids), ctx.device))
        adv, _ = attack.adversarial(batch.images, batch.labels, ids, precision="fp32")
        with torch.no_grad():
            fp32_correct = (ctx.classifier(adv).argmax(dim=1) == batch.labels).cpu()
        run_broken = sum(1 for p in positions if outcomes[p] is False)
        fp32_broken = int((~fp32_correct).sum())
        ok = fp32_broken <= run_broken + _slack(len(ids), config) * len(ids)
        passed &= ok
        per_attack[attack.name] = {"n": len(ids), "broken_in_run": run_broken, "broken_in_fp32": fp32_broken,
                                   "passed": ok}
    checks["precision"] = _check(passed, precision=precision, per_attack=per_attack,
                                 note="fp32 replay (same random streams) must not break clearly more images")


def warn_if_unreliable(sanity: dict[str, Any]) -> None:
    """A loud, unmissable stderr warning when any check failed."""
    if not sanity.get("unreliable"):
        return
    lines = ["", "!" * 78, "!! WARNING: these robustness numbers are UNRELIABLE — failed sanity checks:"]
    for name in sanity["failed"]:
        detail = {k: v for k, v in sanity["checks"][name].items() if k not in ("passed", "per_attack")}
        lines.append(f"!!   {name}: {detail}")
    lines += ["!! (gradient masking or a broken attack makes a model look robust; see the report's `sanity`)",
              "!" * 78, ""]
    print("\n".join(lines), file=sys.stderr)
