"""What a text attack cost: model calls, texts scored and seconds, recorded for every attack.

Why calls and not only queries: the usual black-box measure (texts scored) says nothing about how the
work is batched, and on an accelerator a text attack's time is dominated by the number of forward passes
(each one pays the kernel-launch overhead of ~150 ops), not by the texts in them. Counting
``text_encoder_calls`` and ``mlm_forwards`` next to ``texts_scored`` makes the batching visible.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class AttackCost:
    """Counters of one attack (or, summed with ``+``, of many)."""

    #: ``encode_text`` calls made by the goal (originals, importance masks, candidates)
    text_encoder_calls: int = 0
    #: masked-LM forward passes (0 for the recipes without a masked LM, and for cached texts)
    mlm_forwards: int = 0
    #: sentence-encoder calls of the semantic-similarity constraint (0 when it is off)
    similarity_encoder_calls: int = 0
    #: texts attacked (distinct texts when duplicates are attacked once)
    texts_attacked: int = 0
    #: texts the goal scored (importance masks + candidates): the classic "queries"
    texts_scored: int = 0
    #: wall-clock seconds of the attack
    seconds: float = 0.0

    def __add__(self, other: "AttackCost") -> "AttackCost":
        return AttackCost(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seconds"] = round(float(self.seconds), 4)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "AttackCost":
        data = data or {}
        return cls(**{f.name: type(f.default)(data.get(f.name, f.default)) for f in fields(cls)})
