"""Test-time counterattacks (TTC: Xing, Zhao, Sebe, CVPR 2025) as a defended model every attack must defeat.

TTC is training-free: before an image is classified, it is *counterattacked* — perturbed within a small L-inf
ball to push its image embedding away from the embedding it had on arrival. The paper's observation: an image
attacked to maximise the classification loss is "falsely stable" (its embedding barely moves under random
noise), so a small push in the embedding-distance direction escapes the adversarial region, while a clean image
is sensitive to noise and is left (almost) alone.

Reference (read, not copied): ``Sxing2/CLIP-Test-time-Counterattacks``, ``code/test_time_counterattack.py``:

- ``tau_thres_weighted_counterattacks`` (lines 68-159) — the algorithm below;
- ``compute_tau`` (62-66) — the noise-sensitivity ratio (used there only for fine-tuned victims; otherwise the
  same ratio is taken at step 0, lines 115-117, which is what this module does);
- defaults from its argparse (lines 53-57) and ``TTC.sh``: ``--ttc_eps 4 --ttc_numsteps 2 --ttc_stepsize 1``
  (all /255, lines 353-354), ``--tau_thres 0.2 --beta 2``; L-inf (``norm='l_inf'`` at lines 226, 267).

The algorithm, for an input ``x`` (pixels in [0, 1]) and the model's raw (unnormalised) image features ``f``:

1. ``d_0`` = uniform noise in [-eps, eps], clipped so ``x + d_0`` stays in [0, 1] (lines 76, 86);
2. ``r = ||f(x + d_0) - f(x)|| / ||f(x)||`` per image — the sensitivity to that noise (lines 115-117);
3. ``steps`` signed-gradient ascent steps of size ``alpha`` on ``sum ||f(x + d) - f(x)||^2``, each projected onto
   the eps-ball and the pixel box (lines 111-135), keeping every iterate ``d_0 .. d_K``;
4. images with ``r < tau`` (``sign(tau - r) > 0``, line 119: insensitive, i.e. likely attacked) get
   ``sum_k w_k d_k`` with ``w_k = exp(beta k) / sum_j exp(beta j)`` (later steps weigh more, lines 140-144);
   the others (``r >= tau``) get ``d_0``, the random noise alone (``weights_hard``, lines 146-149);
5. the prediction is made on ``x + d`` (lines 231-233, 272-274).

``eps = 0`` returns ``x`` unchanged (line 72), so the defended model is then exactly the undefended one.

Departures, on purpose: the reference draws fresh noise from the global RNG at every call; here the noise is one
fixed pattern per image shape drawn from the run's seed, so the defended classifier is a deterministic function
of its input (attacks, sanity probes and the batch-size check all see the same function, and runs repeat
exactly). A randomised defense would need EOT to be attacked fairly; that is not implemented.

How attacks differentiate the defense (``gradient``):

- ``"detach"`` (default): the counterattack runs on a detached copy and its perturbation is added as a
  constant, so gradients flow through ``f(x + d)`` as if ``d`` did not depend on ``x`` (straight-through). This
  is how a defense-unaware gradient attack sees the pipeline; it can hide gradient masking.
- ``"unrolled"``: the exact gradient through every counterattack step (the projections, every iterate). TTC's
  step is ``sign(grad)``, whose derivative is zero almost everywhere, and the tau gate and the weights go through
  ``sign`` too, so this gradient differs from the detached one only through the clipping to the eps-ball and the
  pixel box — itself the shape of obfuscated gradients (Athalye et al. 2018). (The inner gradient is therefore
  taken without ``create_graph``: its derivative would be multiplied by sign's zero; a test checks that the two
  give the same gradient.)
- ``"bpda"``: the unrolled graph with BPDA for the sign step (Athalye et al. 2018): the forward pass is TTC's
  exactly, the backward pass differentiates ``alpha * g / mean|g|`` in place of ``alpha * sign(g)``, with the
  inner gradient ``g`` kept differentiable (``create_graph``, second order through the image tower; attention runs
  on the math kernel, which supports it). The tau gate too: forward hard, backward a sigmoid of
  ``(tau - r) / 0.02``, so the attacker's gradient also sees that raising an image's noise sensitivity ``r``
  above tau switches its counterattack off. (A dedicated tau-aware objective, e.g. maximising ``r``, is not
  implemented.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from ..errors import ConfigError
from .base import VisionLanguageModel
from .wrapper import WrappedModel

#: how attacks differentiate through the counterattack (see the module docstring)
GRADIENT_MODES = ("detach", "unrolled", "bpda")
#: BPDA's backward for the tau gate: sigmoid((tau - r) / T); r is a relative distance, 0.02 ~ a tenth of tau's default
GATE_TEMPERATURE = 0.02
REFERENCE = ("Xing, Zhao, Sebe, CVPR 2025, 'CLIP is Strong Enough to Fight Back: Test-time Counterattacks "
             "towards Zero-shot Adversarial Robustness of CLIP'; code Sxing2/CLIP-Test-time-Counterattacks, "
             "code/test_time_counterattack.py tau_thres_weighted_counterattacks")


@dataclass(frozen=True)
class TTCSettings:
    """The counterattack's hyperparameters; the defaults are the reference's (``TTC.sh``)."""

    eps: float = 4 / 255
    steps: int = 2
    alpha: float = 1 / 255
    tau: float = 0.2
    beta: float = 2.0
    gradient: str = "detach"
    #: seeds the fixed noise pattern of the random start
    seed: int = 0

    def __post_init__(self) -> None:
        if self.gradient not in GRADIENT_MODES:
            raise ConfigError(f"unknown TTC gradient mode {self.gradient!r}; use one of {', '.join(GRADIENT_MODES)}")
        if not 0 <= self.eps <= 1:
            raise ConfigError(f"the TTC budget must lie in [0, 1] of the pixel range, got {self.eps}")
        if isinstance(self.steps, bool) or int(self.steps) != self.steps or self.steps < 0:
            raise ConfigError(f"the TTC steps must be an integer of at least 0, got {self.steps}")
        if not self.alpha > 0:
            raise ConfigError(f"the TTC step size must be positive, got {self.alpha}")
        if not self.tau >= 0:
            raise ConfigError(f"the TTC tau threshold must be >= 0, got {self.tau}")
        if not abs(self.beta) < float("inf"):
            raise ConfigError(f"the TTC beta must be finite, got {self.beta}")

    def describe(self) -> dict[str, Any]:
        return {"name": "ttc", **asdict(self), "eps_255": round(self.eps * 255, 6),
                "alpha_255": round(self.alpha * 255, 6), "norm": "Linf", "reference": REFERENCE}


def _box(delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Clip ``delta`` so that ``x + delta`` lies in [0, 1]; differentiable in both (min/max, not clamp)."""
    return torch.maximum(torch.minimum(delta, 1 - x), -x)


def counterattack(encode: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, settings: TTCSettings,
                  noise: torch.Tensor, *, differentiable: bool = False, surrogate: bool = False,
                  create_graph: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(the counterattack perturbation ``d``, the per-image mask of images counterattacked: ``r < tau``).

    ``encode`` gives raw image features of [0, 1] pixels; ``noise`` is uniform in [-1, 1] (broadcast to ``x``).
    ``differentiable``: keep the graph through every step (``"unrolled"``); else everything runs detached.
    ``surrogate``: BPDA for the sign step (``"bpda"``; implies ``differentiable`` and a differentiable inner
    gradient). ``create_graph`` overrides whether the inner gradient is differentiable (tests).
    """
    differentiable = differentiable or surrogate
    create_graph = differentiable and (surrogate if create_graph is None else create_graph)
    if not create_graph:
        return _counterattack(encode, x, settings, noise, differentiable, surrogate, False)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):  # second order through attention: the math kernel has a double backward
        return _counterattack(encode, x, settings, noise, differentiable, surrogate, True)


def _counterattack(encode, x, settings, noise, differentiable, surrogate, create_graph):
    s = settings
    n = x.shape[0]
    if s.eps <= 0:
        return torch.zeros_like(x), torch.zeros(n, dtype=torch.bool, device=x.device)
    if not differentiable:
        x = x.detach()
    with torch.enable_grad():
        delta = _box((noise * s.eps).to(x.dtype).expand_as(x), x)
        iterates = [delta]
        if s.steps == 0:  # the reference's "random noise" variant (attack_iters == 0)
            return (delta if differentiable else delta.detach()), torch.zeros(n, dtype=torch.bool, device=x.device)
        with torch.set_grad_enabled(differentiable):
            anchor = encode(x).float()
        if not differentiable:
            anchor = anchor.detach()
        anchor_norm = anchor.norm(dim=-1).clamp_min(1e-12)
        ratio = None
        for step in range(int(s.steps)):
            if not differentiable or not delta.requires_grad:
                delta = delta.detach().requires_grad_(True)
            features = encode(x + delta).float()
            if step == 0:  # the gate's ratio keeps its graph only for BPDA's gate surrogate
                ratio = (features - anchor).norm(dim=-1) / anchor_norm
                ratio = ratio if surrogate else ratio.detach()
            loss = ((features - anchor) ** 2).sum()
            (grad,) = torch.autograd.grad(loss, delta, create_graph=create_graph)
            direction = grad.sign()
            if surrogate:  # forward: sign(g); backward: d(g / mean|g|), per image
                smooth = grad / grad.abs().flatten(1).mean(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
                direction = smooth + (direction - smooth).detach()
            delta = (delta + s.alpha * direction).clamp(-s.eps, s.eps)
            delta = _box(delta, x)
            if not differentiable:
                delta = delta.detach()
            iterates.append(delta)
        counter = (ratio < s.tau).detach()  # sign(tau - r) > 0: insensitive to noise, counterattack it
        k = torch.arange(len(iterates), device=x.device, dtype=torch.float64)
        soft = torch.softmax(s.beta * k, dim=0)  # exp(beta k) / sum_j exp(beta j)
        hard = torch.zeros_like(soft)
        hard[0] = 1.0
        weights = torch.where(counter.view(-1, 1), soft.view(1, -1), hard.view(1, -1)).to(x.dtype)
        if surrogate:  # forward: the hard gate; backward: a sigmoid of (tau - r), so r's dependence on x is seen
            smooth = torch.sigmoid((s.tau - ratio) / GATE_TEMPERATURE).to(x.dtype).view(-1, 1)
            gate = smooth + (counter.to(x.dtype).view(-1, 1) - smooth).detach()
            weights = gate * soft.to(x.dtype).view(1, -1) + (1 - gate) * hard.to(x.dtype).view(1, -1)
        stacked = torch.stack(iterates, dim=1)  # N x (K+1) x C x H x W
        combined = (weights.view(n, -1, *([1] * (x.dim() - 1))) * stacked).sum(dim=1)
    return (combined if differentiable else combined.detach()), counter


class CounterattackedModel(WrappedModel):
    """``base`` with TTC run on every image before it is encoded; texts pass through unchanged.

    It is a :class:`VisionLanguageModel`, so the zero-shot classifier, every attack (image, text, multimodal,
    retrieval helpers) and the sanity probes that call ``encode_image`` see the defended pipeline.
    """

    def __init__(self, base: VisionLanguageModel, settings: TTCSettings) -> None:
        super().__init__(base)
        self.settings = settings
        self._noise: dict[tuple, torch.Tensor] = {}
        self._placed_noise: dict[tuple, torch.Tensor] = {}
        self.to(base.device)

    # ------------------------------------------------------------------ the defense
    def noise_for(self, x: torch.Tensor) -> torch.Tensor:
        """The fixed uniform [-1, 1] pattern for images of ``x``'s shape (one per shape, from the seed)."""
        key = tuple(x.shape[1:])
        if key not in self._noise:
            generator = torch.Generator().manual_seed(int(self.settings.seed) * 1_000_003 + sum(key))
            self._noise[key] = torch.rand((1, *key), generator=generator, dtype=torch.float64) * 2 - 1
        placed = (key, x.device, x.dtype)  # every attack step encodes: copy the pattern to the device once
        if placed not in self._placed_noise:
            self._placed_noise[placed] = self._noise[key].to(device=x.device, dtype=x.dtype)
        return self._placed_noise[placed]

    def counterattack(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the counterattacked images, the mask of images that got the weighted counterattack)."""
        attacked = torch.is_grad_enabled() and images.requires_grad
        mode = self.settings.gradient if attacked else "detach"

        def encode(pixels: torch.Tensor) -> torch.Tensor:
            return self.base.encode_image(pixels, normalize=False)

        delta, counter = counterattack(encode, images, self.settings, self.noise_for(images),
                                       differentiable=mode == "unrolled", surrogate=mode == "bpda")
        return images + delta, counter

    def encode_image(self, images: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        if self.settings.eps <= 0:
            return self.base.encode_image(images, normalize=normalize)
        defended, _ = self.counterattack(images)
        return self.base.encode_image(defended, normalize=normalize)

    # everything else is the base model's (:class:`~mmrobust.models.wrapper.WrappedModel`): the defense acts on
    # the [0, 1] pixels, so the normalised-pixel encoder stays the undefended one
    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "test_time_defense": self.settings.describe()}

    def checkpoint_config(self) -> dict[str, Any]:
        raise ConfigError("a test-time defense is an evaluation option, not weights: save the base model instead")

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            if "base" in modules:
                return getattr(modules["base"], name)
            raise


def defend(model: VisionLanguageModel, settings: TTCSettings | None) -> VisionLanguageModel:
    """``model`` behind TTC (``settings``), or ``model`` itself when ``settings`` is None."""
    return model if settings is None else CounterattackedModel(model, settings)
