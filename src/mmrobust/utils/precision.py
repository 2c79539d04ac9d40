"""The precision policy of attacks and training: ``fp32`` (default for attacks), ``tf32`` or ``bf16``.

Why a policy and not "whatever the GPU does": on a GPU, TF32 or bf16 make the image side several times
faster, but low-precision gradients can mask an attack (Carlini et al. 2019), so a faster number must be
shown to be as strong (``bench/bench_precision.py``; the evaluation's ``precision`` sanity check re-attacks a
subset in fp32). Every report records the policy.

* ``fp32``: autocast off and TF32 off for matmuls and cuDNN convolutions (cuDNN allows TF32 by default, so
  "fp32" has to switch it off explicitly).
* ``tf32``: fp32 tensors with TF32 tensor-core matmuls/convolutions (CUDA Ampere or newer). On a CPU it is
  a no-op: it computes exactly what ``fp32`` computes.
* ``bf16``: autocast to bfloat16 (CPU and CUDA); weights stay fp32 and optimiser state too (AMP). bf16 has
  fp32's exponent range, so no loss scaling is needed.

The TF32 switches are process-wide backend flags; :func:`precision_context` sets them and restores the
previous values on exit, so nothing leaks out of the attack or training step.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from ..errors import ConfigError

PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(precision: str) -> str:
    """``"FP32"`` -> ``"fp32"``; anything outside :data:`PRECISIONS` is a ConfigError."""
    value = str(precision).strip().lower()
    if value not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    return value


def _tf32_switches() -> list[tuple[object, str]]:
    """The (object, attribute) pairs that allow TF32, in torch's current API, where they exist."""
    switches = []
    for owner in (getattr(torch.backends.cuda, "matmul", None), getattr(torch.backends.cudnn, "conv", None)):
        if owner is not None and hasattr(owner, "fp32_precision"):
            switches.append((owner, "fp32_precision"))
    return switches


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    saved = [(owner, name, getattr(owner, name)) for owner, name in _tf32_switches()]
    try:
        for owner, name, _ in saved:
            setattr(owner, name, "tf32" if enabled else "ieee")
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the enclosed forward/backward under ``precision`` on ``device`` (see the module docstring)."""
    precision = check_precision(precision)
    device_type = torch.device(device).type
    autocast: contextlib.AbstractContextManager = contextlib.nullcontext()
    try:
        if precision == "bf16":
            autocast = torch.autocast(device_type=device_type, dtype=torch.bfloat16)
        else:
            autocast = torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:
        if precision == "bf16":
            raise ConfigError(f"--precision bf16 is not supported on {device_type} (no autocast there)") from None
    with _tf32(precision == "tf32"), autocast:
        yield


def precision_note(precision: str, device: torch.device | str) -> str:
    """One line for reports: what the policy means on this device."""
    precision = check_precision(precision)
    device_type = torch.device(device).type
    if precision == "tf32" and device_type != "cuda":
        return f"tf32 is a no-op on {device_type}: the arithmetic is fp32"
    if precision == "bf16":
        return f"bf16 autocast on {device_type}; clean and final adversarial predictions are scored in fp32"
    return {"fp32": "fp32 throughout (autocast and TF32 off)",
            "tf32": "TF32 matmuls/convolutions on CUDA; scoring in fp32"}[precision]
