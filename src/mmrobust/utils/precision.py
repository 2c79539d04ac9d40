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
* ``amp``: the attack arithmetic of TeCoA's and TGA-ZSR's evaluation code, which runs its attacks inside
  ``torch.cuda.amp.autocast()`` (fp16): float16 autocast on CUDA, bfloat16 on every other device (CPU, MPS),
  where fp16 autocast is not the reference's arithmetic. Attacks only: no gradient scaler, so training refuses
  it. :func:`autocast_dtype` names the dtype a device gets; reports record it (``autocast_dtype``).

The TF32 switches are process-wide backend flags; :func:`precision_context` sets them and restores the
previous values on exit, so nothing leaks out of the attack or training step.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from ..errors import ConfigError

PRECISIONS = ("fp32", "tf32", "bf16", "amp")
#: the policies training accepts (``amp``'s fp16 would need a gradient scaler)
TRAINING_PRECISIONS = ("fp32", "tf32", "bf16")


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


def autocast_dtype(precision: str, device: torch.device | str) -> torch.dtype | None:
    """The dtype ``precision`` autocasts to on ``device`` (None: no autocast)."""
    precision = check_precision(precision)
    if precision == "bf16":
        return torch.bfloat16
    if precision == "amp":
        return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16
    return None


def autocast_dtype_name(precision: str, device: torch.device | str) -> str | None:
    """:func:`autocast_dtype` as reports write it: "float16", "bfloat16" or None."""
    dtype = autocast_dtype(precision, device)
    return None if dtype is None else str(dtype).removeprefix("torch.")


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the enclosed forward/backward under ``precision`` on ``device`` (see the module docstring):
    ``torch.autocast(device_type, dtype)`` with :func:`autocast_dtype`, or autocast off."""
    precision = check_precision(precision)
    device_type = torch.device(device).type
    dtype = autocast_dtype(precision, device)
    autocast: contextlib.AbstractContextManager = contextlib.nullcontext()
    try:
        if dtype is not None:
            autocast = torch.autocast(device_type=device_type, dtype=dtype)
        else:
            autocast = torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:
        if dtype is not None:
            raise ConfigError(f"--precision {precision} is not supported on {device_type} (no autocast there)") from None
    with _tf32(precision == "tf32"), autocast:
        yield


def precision_note(precision: str, device: torch.device | str) -> str:
    """One line for reports: what the policy means on this device."""
    precision = check_precision(precision)
    device_type = torch.device(device).type
    if precision == "tf32" and device_type != "cuda":
        return f"tf32 is a no-op on {device_type}: the arithmetic is fp32"
    if precision in ("bf16", "amp"):
        name = autocast_dtype_name(precision, device)
        return (f"{precision}: {name} autocast on {device_type}; clean and final adversarial predictions are scored "
                "in fp32")
    return {"fp32": "fp32 throughout (autocast and TF32 off)",
            "tf32": "TF32 matmuls/convolutions on CUDA; scoring in fp32"}[precision]
