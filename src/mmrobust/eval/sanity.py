"""Automatic checks that a robustness number can be trusted (after AutoAttack's ``checks.py`` and
Carlini et al. 2019, "On Evaluating Adversarial Robustness").

A defended-looking model is often a broken evaluation: gradients that vanish (masking), attacks that get
weaker with more steps or a bigger budget, a black-box attack that beats the white-box ones, adversarial
images outside the threat model, results that change with the batch size. Each check below either passes,
fails (the report gets ``unreliable: true`` and a loud warning on stderr) or is skipped with a reason —
a run never claims a check it did not do.

Checks from the main run's results: ``robust_le_clean`` (every attack), ``threat_model`` (every attack that
returns images). Probe checks, only when image-perturbing (image or multimodal) attacks were requested, on the first ``n_probe`` evaluation
examples: ``gradients``, ``steps_monotone``, ``eps_monotone``, ``large_eps``, ``square_vs_whitebox``
(Linf only), ``batch_size``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..attacks.protocol import AttackContext, EvalAttack, batch_seed
from ..data.base import ImageClassificationDataset
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
    max_zero_gradient_fraction: float = 0.1
    large_eps_max_accuracy: float = 0.05
    slack_examples: int = 1
    slack_fraction: float = 0.02


def _slack(n: int, config: SanityConfig) -> float:
    """Allowed accuracy difference before calling two numbers different: a few examples of noise."""
    return (config.slack_examples / max(n, 1)) + config.slack_fraction


class _Probe:
    """The probe examples and the helpers that attack them deterministically."""

    def __init__(self, ctx: AttackContext, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                 threat: dict[str, Any]) -> None:
        self.ctx, self.images, self.labels = ctx, images, labels
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
        """Accuracy (and per-example correctness) under ``make(generator)``, batch by batch."""
        results = []
        for start, x, y in self._batches(batch_size or self.batch_size):
            generator = torch.Generator()
            generator.manual_seed(batch_seed(self.ctx.seed, start, "sanity:" + salt))
            adv = make(generator)(x, y)
            results.append(self.correct(adv, y))
        correct = torch.cat(results)
        return float(correct.float().mean()), correct

    def pgd(self, eps: float, steps: int, alpha: float | None = None, random_start: bool = True):
        from ..attacks.image.pgd import PGD
        from ..attacks.options import default_step_size

        alpha = alpha if alpha is not None else default_step_size(eps, self.norm)
        return lambda gen: PGD(self.ctx.classifier, eps, alpha, steps, self.norm, random_start=random_start,
                               generator=gen, track_best=True)

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
    clean_acc = sum(state.clean_correct) / max(n, 1)

    # ---- from the main run
    checks["robust_le_clean"] = _check(
        all(sum(state.attack_correct.get(a.name, [])) / max(n, 1) <= clean_acc + _slack(n, config) for a in attacks),
        clean_accuracy=clean_acc,
        attack_raw_accuracy={a.name: sum(state.attack_correct.get(a.name, [])) / max(n, 1) for a in attacks},
        note="accuracy on attacked inputs must not exceed clean accuracy (slack: a few examples)",
    )
    if state.ball_checks:
        bad = {name: c for name, c in state.ball_checks.items() if c["n_out_of_box"] or c["n_outside_ball"]}
        checks["threat_model"] = _check(not bad, per_attack=dict(state.ball_checks),
                                        note="every adversarial image inside the eps-ball and in [0, 1]")
    else:
        skipped["threat_model"] = "no attack returned adversarial images"

    perturbing = [a for a in attacks if a.threat_model() is not None]  # image and multimodal attacks
    probe_names = ["gradients", "steps_monotone", "eps_monotone", "large_eps", "square_vs_whitebox", "batch_size"]
    if not perturbing:
        for name in probe_names:
            skipped[name] = "no image-perturbing attack in this run (these checks probe pixel-space attacks)"
    else:
        _probe_checks(ctx, attacks, state, dataset, indices, batch_size, config, checks, skipped,
                      perturbing[0].threat_model())

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
    batch = next(iterate_batches(dataset, list(indices)[:n_probe], n_probe, ctx.device))
    probe = _Probe(ctx, batch.images, batch.labels, batch_size, threat)
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
            wb_correct &= torch.tensor(state.attack_correct[attack.name][:n_probe], dtype=torch.bool)
        clean = torch.tensor(state.clean_correct[:n_probe], dtype=torch.bool)
        _, sq_correct = probe.attack_accuracy(
            lambda gen: square_attack(ctx.classifier, eps, norm, n_queries=config.square_queries, generator=gen),
            "square")
        wb_acc = float((wb_correct & clean).float().mean())
        sq_acc = float((sq_correct & clean).float().mean())
        only_square = int((clean & wb_correct & ~sq_correct).sum())
        checks["square_vs_whitebox"] = _check(
            sq_acc >= wb_acc - slack, whitebox_accuracy=wb_acc, square_accuracy=sq_acc,
            n_fooled_only_by_square=only_square, whitebox_attacks=[a.name for a in whitebox],
            square_queries=config.square_queries,
            note="a black-box attack beating the white-box ones means the gradients mislead")

    first = probe.batch_size
    second = max(1, first // 2) if first > 1 else min(2, n_probe)
    if second == first:
        skipped["batch_size"] = "only one probe example"
    else:
        deterministic = probe.pgd(eps, config.probe_attack_steps, random_start=False)
        acc_a = probe.attack_accuracy(deterministic, "batch", first)[0]
        acc_b = probe.attack_accuracy(deterministic, "batch", second)[0]
        checks["batch_size"] = _check(abs(acc_a - acc_b) <= slack, batch_sizes=[first, second],
                                      accuracy=[acc_a, acc_b], attack="PGD without random start")


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
