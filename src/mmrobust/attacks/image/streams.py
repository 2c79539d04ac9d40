"""Per-example random streams: the randomness of an attack on one image never depends on its batch.

Why: seeding one generator per batch made an example's random start depend on where it sat in its batch,
so ``-b 8`` and ``-b 16`` gave different robust accuracy on the same images (93.75 % vs 96.88 % with
APGD). Here every random start, restart, target run and Square proposal of an example is drawn from a
stream keyed by (seed, dataset index, attack) plus a label naming the draw (purpose, restart, iteration).
The same example then gets the same numbers whatever the batch size, whichever other examples are still
being attacked (the cascade attacks only what still stands) and after a resume.

The streams are counter-based, like Philox (Salmon et al., SC 2011): value ``j`` of a stream is a hash of
(key, label, j), computed with exact integer arithmetic, vectorised over examples and elements, so it is
fast on any device and gives identical numbers on CPU and GPU. The hash is Wellons' ``lowbias32``
(three rounds keyed by the two 32-bit halves of the key and by the label) — statistically plenty for
attack noise; it is not, and need not be, cryptographic.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Sequence

import torch

_MASK32 = 0xFFFFFFFF


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """Low 32 bits of ``x * constant`` for ``x`` < 2^32, without ever overflowing int64 (16-bit limbs)."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' lowbias32 integer hash on int64 tensors holding 32-bit values."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _label(parts: Sequence[object]) -> int:
    """A 32-bit number naming one draw, e.g. ("start", restart) or ("window", restart, iteration)."""
    return _hash64("|".join(str(p) for p in parts)) & _MASK32


@dataclass(frozen=True)
class ExampleStreams:
    """One independent random stream per example; ``keys`` is an (N, 2) int64 tensor of 32-bit words (CPU)."""

    keys: torch.Tensor

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_examples(cls, seed: int, example_ids: Sequence[int], attack: str) -> "ExampleStreams":
        """Streams keyed by (run seed, dataset index of each example, attack name): what evaluation uses."""
        words = []
        for index in example_ids:
            key = _hash64(f"{int(seed)}|{int(index)}|{attack}")
            words.append((key & _MASK32, key >> 32))
        return cls(torch.tensor(words, dtype=torch.int64).reshape(-1, 2))

    @classmethod
    def from_generator(cls, n: int, generator: torch.Generator | None) -> "ExampleStreams":
        """Keys drawn from a generator (or the global RNG): for direct API use and training batches."""
        device = generator.device if generator is not None else torch.device("cpu")
        keys = torch.randint(0, 1 << 32, (n, 2), generator=generator, device=device, dtype=torch.int64)
        return cls(keys.cpu())

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def subset(self, rows: torch.Tensor) -> "ExampleStreams":
        """The streams of the examples at ``rows`` (an index or boolean tensor)."""
        return ExampleStreams(self.keys[rows.to("cpu")])

    def derive(self, *label: object) -> "ExampleStreams":
        """Independent child streams (e.g. the APGD-CE and APGD-T parts of one ensemble)."""
        salt = _label(("derive",) + label)
        first = _mix32(self.keys[:, 0] ^ salt)
        return ExampleStreams(torch.stack([first, _mix32(self.keys[:, 1] ^ first)], dim=1))

    # ------------------------------------------------------------------ draws
    def bits(self, shape: Sequence[int], *label: object, device: torch.device | str = "cpu") -> torch.Tensor:
        """(N, *shape) int64 tensor of 32-bit hash values for the draw named ``label``."""
        n_values = int(math.prod(shape))
        keys = self.keys.to(device)
        counter = torch.arange(n_values, device=device, dtype=torch.int64)[None, :]
        x = _mix32(counter ^ keys[:, :1])
        x = _mix32(x ^ _label(label))
        x = _mix32(x ^ keys[:, 1:])
        return x.reshape(len(self), *shape)

    def uniform(self, shape: Sequence[int], *label: object, device: torch.device | str = "cpu") -> torch.Tensor:
        """(N, *shape) float32 values in [0, 1) (24 bits each)."""
        return (self.bits(shape, *label, device=device) >> 8).to(torch.float32) * (1.0 / (1 << 24))

    def normal(self, shape: Sequence[int], *label: object, device: torch.device | str = "cpu") -> torch.Tensor:
        """(N, *shape) standard normal float32 values (Box-Muller on two uniform draws)."""
        u1 = self.uniform(shape, *label, "normal-radius", device=device).clamp_min(1.0 / (1 << 25))
        u2 = self.uniform(shape, *label, "normal-angle", device=device)
        return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
