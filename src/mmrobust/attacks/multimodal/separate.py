"""``sep``: the study's multimodal evaluation (adv mode 3, "both1").

The class prompts are text-attacked once; each image batch is attacked with PGD against the **clean**
prompts (last iterate, as in the study); the adversarial images are then classified against the
adversarial prompts. The two perturbations never see each other.
"""

from __future__ import annotations

from ...models.zeroshot import ZeroShotClassifier
from .base import MultimodalEvalAttack


class SeparateAttack(MultimodalEvalAttack):
    name = "sep"
    pgd_against = "clean prompts (independent of the text attack)"
    track_best = False

    def pgd_target(self) -> ZeroShotClassifier:
        return self.ctx.classifier

