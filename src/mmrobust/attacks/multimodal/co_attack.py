"""``co-attack``: image perturbations optimised against the adversarial text embeddings.

Unlike ``sep`` the PGD maximises the cross-entropy of the classifier built from the **adversarial**
prompts — the one that finally scores the images — so the image perturbation exploits what the text
perturbation did (Co-Attack's idea that image and text perturbations should cooperate). The best iterate
against that classifier is kept, so per example it is never weaker than the last iterate. This is the
classification form of Co-Attack; the study's own adv mode 4 (an embedding KL between the adversarial
image and the adversarial captions) is ``co-attack-kl`` (:mod:`.embedding_kl`).
"""

from __future__ import annotations

from ...models.zeroshot import ZeroShotClassifier
from .base import MultimodalEvalAttack


class CoAttack(MultimodalEvalAttack):
    name = "co-attack"
    pgd_against = "adversarial prompts (the classifier that scores the result)"
    track_best = True

    def pgd_target(self) -> ZeroShotClassifier:
        return self.prompt_attack.classifier

