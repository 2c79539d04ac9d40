"""``co-attack``: Collaborative multimodal adversarial attack (Zhang, Yi & Sang, ACM MM 2022), retrieval form.

Follows the published CLIP retrieval code (``adversarial-for-goodness/Co-Attack``,
``MultiModalAttacker.run_before_fusion`` with ``adv=4``, ``RetrievalCLIPEval.py``):

1. **Caption first**: each caption is attacked with the text recipe (BERT-Attack with ``--mlm``, else the
   offline ``embed-sub``; ``--text-attack`` chooses) under the *embedding-KL* goal — the published
   BERT-Attack maximises KL(softmax(e_clean) || softmax(e_adv)) over the text embedding, label- and
   image-free. One word per caption, 10 candidates (``--text-words``, ``--text-candidates``).
2. **Then the image**, by PGD maximising, per image,
   ``KL(softmax(v_clean) || softmax(v_adv)) + alpha * KL(softmax(t_adv) || softmax(v_adv))``
   on L2-normalised embeddings (softmax over embedding dimensions): the image embedding is pushed away from
   its clean self and from the *adversarial* caption's embedding, so the two perturbations cooperate.
   ``alpha = 3`` (the published default), 10 steps, step ``1.25 * eps / steps`` (published), random start,
   last iterate. The published eps is 2/255.
3. Both the adversarial images and the adversarial captions are scored.

Departures, each for a reason: (a) the published random start is uniform in [0, eps] (one-sided, which
looks accidental) from torch's global generator; mmrobust uses its symmetric start in [-eps, eps], drawn
from each image's own stream (seed, dataset index, attack), so an image's result does not depend on its batch. (b) The published loop pairs each
caption with a copy of its image and keeps the image attacked against the *last* caption; here each image
is attacked once against all its adversarial captions (the KL term averaged over them), which is what an
image with several captions means for retrieval. (c) KL terms are summed per image instead of averaged
over the batch, so results do not depend on the batch size (sign steps are unaffected). (d) ``--alpha``
overrides the step size; the loss weight is the ``co_attack_weight`` option (default 3). (e) The
``co_attack_text_goal`` option (``--co-attack-text-goal``; Python API: ``EvalConfig.co_attack_text_goal``) swaps the published label-free caption goal for
``pair-similarity`` (the caption-only attacks' goal), to compare Co-Attack with them on an equal text part.
"""

from __future__ import annotations

from typing import Any

import torch

from ..image.base import ImageEmbedder
from .base import RetrievalAttack, RetrievalBatch, RetrievalOutcome, batch_owner, encode_captions, flatten
from .embedding_pgd import embedding_pgd, kl_rows
from .multimodal import MultimodalRetrievalAttack
from .options import CoAttackOptions
from .text import attack_captions


class CoAttack(MultimodalRetrievalAttack):
    name = "co-attack"
    text_goal = "embedding-kl"

    def __init__(self, options: CoAttackOptions) -> None:
        super().__init__(options)
        self.text_goal = options.co_attack_text_goal
        self.weight = options.co_attack_weight

    def attack_batch(self, batch: RetrievalBatch) -> RetrievalOutcome:
        model = self.ctx.model
        embedder = ImageEmbedder(model, normalize=True)
        with torch.no_grad():
            clean = embedder(batch.images).float()
        # the published goal ignores the images; the pair-similarity variant needs each caption's own image
        adv_captions, counts = attack_captions(self.attacker(), batch.captions, clean, self.log)

        adv_text = encode_captions(model, flatten(adv_captions)).to(batch.images.device)
        owner = batch_owner(batch.captions).to(batch.images.device)
        n_captions = torch.bincount(owner, minlength=len(batch.captions)).clamp_min(1).float()
        weight = self.weight

        def objective(adv: torch.Tensor, rows: torch.Tensor, _targets: Any) -> torch.Tensor:
            away_from_clean = kl_rows(clean[rows], adv)
            per_caption = kl_rows(adv_text, adv[owner])
            away_from_text = torch.zeros(len(batch.captions), device=adv.device).index_add(0, owner, per_caption)
            return away_from_clean + weight * (away_from_text / n_captions)[rows]

        adv_images = embedding_pgd(embedder, objective, batch.images, self.image, self.step_size(),
                                   self.streams(batch))
        return RetrievalOutcome(adv_images=adv_images, adv_captions=adv_captions, extra=counts)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "weight_adversarial_caption": self.weight, "order": "caption, then image",
                "reference": "Zhang et al., ACM MM 2022; adversarial-for-goodness/Co-Attack run_before_fusion adv=4"}


def make_co_attack(options: CoAttackOptions) -> RetrievalAttack:
    return CoAttack(options)
