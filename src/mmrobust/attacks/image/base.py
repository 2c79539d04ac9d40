"""What every pixel-space attack shares: validation, eval-mode handling, projection, fp32, randomness.

Design choices, each for a reason:

* Gradients are taken with ``torch.autograd.grad(loss, delta)`` w.r.t. the perturbation only; nothing calls
  ``.backward()``, so no parameter ``.grad`` is touched. (The reference MMCoA/TeCoA code calls ``backward``
  inside PGD during training and silently adds ten extra gradient terms to the training step.)
* The model is put in eval mode for the attack and every submodule's previous mode is restored afterwards
  (restoring only the top-level flag would lose deliberately frozen submodules).
* Attacks run in fp32 with autocast disabled by default: low-precision gradients can mask attacks. A lower
  ``precision`` (tf32, bf16; :mod:`mmrobust.utils.precision`) is a measured opt-in, and evaluation re-checks
  a subset in fp32 (sanity check ``precision``).
* All randomness comes from per-example streams (:mod:`.streams`) keyed by the example, so an example's
  attack is the same whatever its batch, and an evaluation batch replays exactly on resume. Direct API
  calls without streams draw the keys from ``generator``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ...errors import ConfigError, NumericalError
from ...utils.precision import autocast_dtype_name, check_precision, precision_context
from .streams import ExampleStreams

NORMS = {"linf": "Linf", "inf": "Linf", "l_inf": "Linf", "l2": "L2"}

Classifier = Callable[[torch.Tensor], torch.Tensor]


def normalize_norm(norm: str) -> str:
    """``"linf"``/``"Linf"``/``"inf"`` -> ``"Linf"``, ``"l2"`` -> ``"L2"``; anything else is a ConfigError."""
    key = str(norm).strip().lower()
    if key not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; use linf or l2")
    return NORMS[key]


def check_eps(eps: float, norm: str) -> float:
    """eps is a fraction of the pixel range for Linf (1/255 ...) and a raw radius for L2."""
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise ConfigError(f"eps must be a number, got {eps!r}") from None
    if not math.isfinite(eps) or eps <= 0:
        raise ConfigError(f"eps must be a positive finite number, got {eps}")
    if norm == "Linf" and eps > 1:
        raise ConfigError(f"Linf eps {eps} exceeds the whole pixel range [0, 1] (give eps as a fraction, e.g. 4/255)")
    return eps


def check_positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {value}")
    return value


def check_steps(steps: int, name: str = "steps") -> int:
    if int(steps) != steps or int(steps) < 1:
        raise ConfigError(f"{name} must be an integer of at least 1, got {steps}")
    return int(steps)


def check_images(images: torch.Tensor, labels: torch.Tensor) -> None:
    """Attacks are defined on N x C x H x W pixels in [0, 1] with one integer label per image."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ConfigError(f"expected images as an N x C x H x W tensor, got {getattr(images, 'shape', type(images))}")
    if labels.shape != (images.shape[0],):
        raise ConfigError(f"expected {images.shape[0]} labels, got shape {tuple(labels.shape)}")
    if not torch.isfinite(images).all():
        raise NumericalError("the images contain NaN or inf values; attacks need finite pixels in [0, 1]")
    low, high = float(images.min()), float(images.max())
    if low < -1e-6 or high > 1 + 1e-6:
        raise ConfigError(f"images must be pixels in [0, 1], got values in [{low:.3g}, {high:.3g}]")


def check_logits(logits: torch.Tensor, where: str = "during the attack") -> torch.Tensor:
    if not torch.isfinite(logits).all():
        raise NumericalError(f"the model returned non-finite logits {where}; the attack cannot be trusted")
    return logits


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Put every submodule of ``model`` in eval mode, restoring each one's own previous mode afterwards."""
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def per_example_norm(x: torch.Tensor, norm: str) -> torch.Tensor:
    flat = x.flatten(1)
    return flat.abs().amax(dim=1) if norm == "Linf" else flat.norm(p=2, dim=1)


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def project(delta: torch.Tensor, eps: float | torch.Tensor, norm: str) -> torch.Tensor:
    """Project the perturbation onto the eps-ball (per example)."""
    if norm == "Linf":
        if isinstance(eps, torch.Tensor):
            eps = _view(eps, delta)
            return torch.maximum(torch.minimum(delta, eps), -eps)
        return delta.clamp(-eps, eps)
    norms = per_example_norm(delta, "L2").clamp_min(1e-12)
    eps_t = eps if isinstance(eps, torch.Tensor) else torch.full_like(norms, float(eps))
    factor = torch.minimum(torch.ones_like(norms), eps_t / norms)
    return delta * _view(factor, delta)


def clip_to_box(images: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The perturbation that keeps ``images + delta`` inside [0, 1] (shrinking, which keeps it in the ball)."""
    return (images + delta).clamp(0.0, 1.0) - images


def steepest_ascent(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """sign(g) for Linf, g / ||g||_2 for L2: the unit-norm direction of steepest ascent."""
    if norm == "Linf":
        return grad.sign()
    return grad / _view(per_example_norm(grad, "L2").clamp_min(1e-12), grad)


def random_start(images: torch.Tensor, eps: float, norm: str, streams: ExampleStreams, *label: object) -> torch.Tensor:
    """A random perturbation in the eps-ball (uniform per coordinate for Linf, uniform radius for L2).

    Drawn from each example's own stream under ``("start", *label)`` (e.g. the restart number).
    """
    shape, device = tuple(images.shape[1:]), images.device
    if norm == "Linf":
        delta = (2 * streams.uniform(shape, "start", *label, device=device) - 1) * eps
    else:
        direction = streams.normal(shape, "start", *label, device=device)
        direction = direction / _view(per_example_norm(direction, "L2").clamp_min(1e-12), direction)
        radius = streams.uniform((), "start-radius", *label, device=device) * eps
        delta = direction * _view(radius, direction)
    return clip_to_box(images, delta)


def model_device(classifier: Any, fallback: torch.device) -> torch.device:
    if isinstance(classifier, nn.Module):
        for tensor in list(classifier.parameters()) + list(classifier.buffers()):
            return tensor.device
    return fallback


class ImageAttack:
    """Base of the pixel-space attacks: ``adv = attack(images, labels)``.

    ``classifier`` maps [0, 1] images to logits (normally a ZeroShotClassifier whose text embeddings are
    fixed, so the text side is never re-encoded per step). In targeted mode ``attack(images, labels,
    targets)`` pushes towards ``targets``; without them each attack picks its own (PGD: the highest-scoring
    wrong class).

    Randomness: ``attack(..., streams=ExampleStreams)`` gives each example its own stream (evaluation keys
    them by dataset index); without ``streams`` the keys are drawn from ``generator`` (or the global RNG).
    ``precision`` ("fp32" default, "tf32", "bf16", "amp") sets the arithmetic of the attack's forward/backward.
    """

    def __init__(
        self,
        classifier: Classifier,
        eps: float,
        norm: str = "Linf",
        targeted: bool = False,
        generator: torch.Generator | None = None,
        precision: str = "fp32",
    ) -> None:
        if not callable(classifier):
            raise ConfigError("the attacked classifier must be callable: images -> logits")
        self.classifier = classifier
        self.norm = normalize_norm(norm)
        self.eps = check_eps(eps, self.norm)
        self.targeted = bool(targeted)
        self.generator = generator
        self.precision = check_precision(precision)

    # ------------------------------------------------------------------ public
    def __call__(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None,
                 streams: ExampleStreams | None = None) -> torch.Tensor:
        return self.attack(images, labels, targets, streams)

    def attack(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None,
               streams: ExampleStreams | None = None) -> torch.Tensor:
        """Adversarial images: detached, same shape, in [0, 1], within the eps-ball around ``images``."""
        check_images(images, labels)
        if streams is None:
            streams = ExampleStreams.from_generator(images.shape[0], self.generator)
        elif len(streams) != images.shape[0]:
            raise ConfigError(f"{len(streams)} random streams for {images.shape[0]} images")
        device = model_device(self.classifier, images.device)
        clean = images.detach().to(device=device, dtype=torch.float32)
        labels = labels.detach().to(device=device, dtype=torch.long)
        if targets is not None:
            targets = targets.detach().to(device=device, dtype=torch.long)
        with eval_mode(self.classifier), precision_context(self.precision, device), torch.enable_grad():
            adv = self._run(clean, labels, targets, streams)
        adv = (clean + project(adv - clean, self.eps, self.norm)).clamp(0.0, 1.0)  # exact guarantee
        return adv.detach().to(images.device, images.dtype)

    def describe(self) -> dict[str, Any]:
        return {"attack": type(self).__name__, "norm": self.norm, "eps": self.eps, "targeted": self.targeted,
                "precision": self.precision,
                "autocast_dtype": autocast_dtype_name(self.precision, model_device(self.classifier, "cpu"))}

    # ------------------------------------------------------------------ helpers for subclasses
    def _run(self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
             streams: ExampleStreams) -> torch.Tensor:
        raise NotImplementedError

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        return check_logits(self.classifier(images).float())

    def _success(self, logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        """Per-example: misclassified (untargeted) or classified as the target (targeted)."""
        pred = logits.argmax(dim=1)
        return pred == targets if targets is not None else pred != labels

    def _resolve_targets(
        self, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None
    ) -> torch.Tensor | None:
        """None for untargeted attacks; the given targets, or the highest-scoring wrong classes, otherwise."""
        if not self.targeted:
            return None
        return self._default_targets(images, labels) if targets is None else targets

    def _default_targets(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The highest-scoring wrong class of each clean image."""
        with torch.no_grad():
            logits = self._logits(images)
        logits = logits.clone()
        logits.scatter_(1, labels[:, None], float("-inf"))
        return logits.argmax(dim=1)


class ImageEmbedder(nn.Module):
    """images in [0, 1] -> image embeddings: the "logits" PGD sees when it attacks an embedding objective
    instead of a classifier.

    ``normalize=False`` (FARE's training loss, the study's mode-4 multimodal attack: distances between raw
    embeddings); ``normalize=True`` gives L2-normalised embeddings (the retrieval Co-Attack, whose published
    KL terms compare normalised CLIP embeddings).
    """

    def __init__(self, model: Any, normalize: bool = False) -> None:
        super().__init__()
        self.model = model
        self.normalize = bool(normalize)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(images, normalize=self.normalize)
