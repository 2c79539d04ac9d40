"""The evaluation side of a test-time defense: its settings from the run's options, and its report block.

The defense itself is a model wrapper (:mod:`mmrobust.models.test_time`), applied in :func:`.run._evaluate`
to the loaded model, so the zero-shot classifier, every attack and the sanity checks run on the defended model.
The report names the defended model (``report["defense"]``) and says plainly whether its robustness was
measured with gradients through the counterattack (``adaptive``) or not.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import ConfigError
from ..models.test_time import GRADIENT_MODES, TTCSettings
from ..options.fields import flag_of
from ..options.parse import non_negative, non_negative_int, number
from .options import DefenseOptions

#: the defenses ``--test-time-defense`` accepts ("none" = the undefended model)
DEFENSES = ("ttc",)
TTC_FIELDS = ("ttc_eps", "ttc_steps", "ttc_alpha", "ttc_tau", "ttc_beta", "ttc_gradient")


def defense_settings(options: DefenseOptions, seed: int) -> TTCSettings | None:
    """The validated settings of the requested defense, or None (no defense); ConfigError names the flag."""
    name = options.test_time_defense
    name = None if name is None or str(name).strip().lower() in ("", "none") else str(name).strip().lower()
    given = [f for f in TTC_FIELDS if getattr(options, f) is not None]
    if name is None:
        if given:
            raise ConfigError(f"{flag_of(DefenseOptions, given[0])} applies to --test-time-defense ttc only")
        return None
    if name not in DEFENSES:
        raise ConfigError(f"unknown --test-time-defense {options.test_time_defense!r}; use none or "
                          f"{', '.join(DEFENSES)}")
    defaults = TTCSettings()
    values: dict[str, Any] = {"seed": int(seed)}
    if options.ttc_eps is not None:
        values["eps"] = non_negative(options.ttc_eps, "--ttc-eps")
    if options.ttc_steps is not None:
        values["steps"] = non_negative_int(options.ttc_steps, "--ttc-steps")
    if options.ttc_alpha is not None:
        values["alpha"] = number(options.ttc_alpha, "--ttc-alpha")
    if options.ttc_tau is not None:
        values["tau"] = non_negative(options.ttc_tau, "--ttc-tau")
    if options.ttc_beta is not None:
        values["beta"] = number(options.ttc_beta, "--ttc-beta")
    if options.ttc_gradient is not None:
        mode = str(options.ttc_gradient).strip().lower()
        if mode not in GRADIENT_MODES:
            raise ConfigError(f"unknown --ttc-gradient {options.ttc_gradient!r}; use {', '.join(GRADIENT_MODES)}")
        values["gradient"] = mode
    settings = TTCSettings(**{**{k: getattr(defaults, k) for k in ("eps", "steps", "alpha", "tau", "beta",
                                                                     "gradient")}, **values})
    return settings


NON_ADAPTIVE = ("robustness measured only with non-adaptive attacks: the gradient attacks treat the counterattack "
                "as a constant shift (straight-through), ignoring how it depends on the input; this could hide "
                "gradient masking. Rerun with --ttc-gradient bpda or unrolled for the adaptive evaluation; the "
                "sanity check adaptive_defense (adaptive_check here) compares them on the probe images only.")
ADAPTIVE = {
    "unrolled": ("adaptive: gradient attacks differentiate exactly through every counterattack step (--ttc-gradient "
                 "unrolled). TTC's sign step has a zero derivative almost everywhere, so this gradient differs from "
                 "the straight-through one only through the eps-ball and pixel-box clipping; --ttc-gradient bpda "
                 "also differentiates a surrogate of the sign step."),
    "bpda": ("adaptive: gradient attacks differentiate through every counterattack step with BPDA for its sign step "
             "(backward of alpha*g/mean|g|, second order through the image tower) and for its tau gate (backward "
             "of a sigmoid of tau - r), --ttc-gradient bpda."),
}
NOT_IMPLEMENTED = ("not implemented, so not measured: EOT over a randomised counterattack (the noise is one fixed "
                   "pattern per seed here, the reference draws it afresh) and a dedicated tau-aware objective "
                   "(maximising the noise sensitivity so that no counterattack runs; only bpda's gate surrogate "
                   "gives the attacker that signal). A robust accuracy here is an upper bound, not a guarantee.")


def defense_report(settings: TTCSettings, attacks: Sequence[Any] = ()) -> dict[str, Any]:
    """The report's ``defense`` block: what defended the model and how its robustness was measured."""
    adaptive = settings.gradient != "detach"
    gradient_attacks = [a.name for a in attacks if a.threat_model() is not None]
    block = {**settings.describe(), "adaptive": adaptive,
             "attacked_through_defense": [a.name for a in attacks],
             "evaluation": ADAPTIVE[settings.gradient] if adaptive else NON_ADAPTIVE,
             "not_measured": NOT_IMPLEMENTED,
             "departures": ("the random start is one fixed uniform pattern per image shape drawn from the seed "
                            "(the reference draws fresh noise per call), so the defended classifier is "
                            "deterministic")}
    if not attacks:
        block["evaluation"] = "clean accuracy of the defended model only (no attack ran)"
    elif not gradient_attacks:
        block["evaluation"] = ("no pixel-space attack ran: only the prompts were attacked (query attacks scored "
                               "on the defended model); the image-side robustness of the defense was not measured")
    return block
