"""``sga``: Set-level Guidance Attack (Lu et al., ICCV 2023), for transfer across vision–language models.

Follows the published code (``Zoky-2020/SGA``, ``attacker.py``: ``SGAttacker.attack``):

1. **Text, guided by the clean images**: every caption of the image set is attacked to lower its cosine
   to its own clean image (the ``pair-similarity`` goal; 1 word, 10 candidates).
2. **Image, guided by the adversarial caption set, at several scales**: PGD maximises, per image,
   ``- sum_s sum_{c in captions(i)} cos(v_adv^(s), t_adv1_c)`` where ``s`` runs over the image itself and
   its copies resized to each scale in ``sga_scales`` (default 0.5, 0.75, 1.25, 1.5; Python API) after adding Gaussian
   noise (std 0.05), clamped to [0, 1] and resized back (bicubic). Published defaults: eps 2/255, 10 steps,
   step 0.5/255 (mmrobust's default eps/4 equals it), uniform random start, sign steps, last iterate.
3. **Text again, guided by the adversarial images**: the *original* captions are attacked to lower their
   cosine to the adversarial image; these captions and the adversarial images are scored.

Cross-modal guidance runs both ways (text -> image -> text) and each image is attacked against its whole
caption *set* (the set-level part).

Departures: (a) the published text step ranks words by the KL of the masked caption's embedding and
picks substitutes by the image cosine; mmrobust's search uses the goal (the image cosine) for both.
(b) The published substitutes come from BERT's masked LM (mmrobust's ``bert-attack``, chosen by
``--mlm``); without a masked LM the caption steps use the offline ``embed-sub``. (c) The published
gradient is divided by its mean absolute value before the sign, which the sign makes a no-op; mmrobust
takes the sign directly (L2 uses the normalised gradient). (d) The loss is summed per image rather than
averaged over the batch (sign steps are unaffected). (e) The random start (uniform in [-eps, eps], as
published) and the noise of every step and scale come from each image's own stream (keyed by seed,
dataset index and attack) instead of NumPy's global generator, so an image's result does not depend on
the batch size or its neighbours. That noise costs about 40x ``torch.randn`` on CPU (measured ~50 ms per
224-px image per scale and step on one loaded thread), the price of batch-size-independent results.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...models.base import VisionLanguageModel
from ..image.streams import ExampleStreams
from .base import RetrievalAttack, RetrievalBatch, RetrievalOutcome, batch_owner, encode_captions, flatten
from .embedding_pgd import embedding_pgd
from .multimodal import MultimodalRetrievalAttack
from .options import SGAOptions
from .text import attack_captions

NOISE_STD = 0.05


class ScaledEmbedder(nn.Module):
    """Pixels -> normalised embeddings of the image and its noisy rescaled copies: N x (1 + S) x D.

    Every call is one PGD step on the whole batch (:func:`.embedding_pgd.embedding_pgd`); call ``k`` draws
    the noise of scale ``s`` of each image from that image's stream under ``("sga-noise", s, k)``, so the
    noise an image sees never depends on the other images of its batch.
    """

    def __init__(self, model: VisionLanguageModel, scales: Sequence[float], streams: ExampleStreams) -> None:
        super().__init__()
        self.model = model
        self.scales = tuple(scales)
        self.streams = streams
        self.calls = 0

    def copies(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.shape[0] != len(self.streams):
            raise RuntimeError(f"SGA embedder: {images.shape[0]} images but {len(self.streams)} random streams")
        size = images.shape[-2:]
        out = [images]
        for s, scale in enumerate(self.scales):
            noise = self.streams.normal(tuple(images.shape[1:]), "sga-noise", s, self.calls, device=images.device)
            noisy = images + NOISE_STD * noise.to(images.dtype)
            shape = (max(1, int(scale * size[0])), max(1, int(scale * size[1])))
            scaled = F.interpolate(noisy, size=shape, mode="bicubic", align_corners=False).clamp(0.0, 1.0)
            out.append(F.interpolate(scaled, size=tuple(size), mode="bicubic", align_corners=False))
        self.calls += 1
        return out

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = torch.cat(self.copies(images))
        embeddings = self.model.encode_image(batch, normalize=True).float()
        return embeddings.view(1 + len(self.scales), images.shape[0], -1).transpose(0, 1)


class SGA(MultimodalRetrievalAttack):
    name = "sga"
    text_goal = "pair-similarity"

    def __init__(self, options: SGAOptions) -> None:
        super().__init__(options)
        self.scales = tuple(options.sga_scales)

    def attack_batch(self, batch: RetrievalBatch) -> RetrievalOutcome:
        model = self.ctx.model
        attacker = self.attacker()
        device = batch.images.device
        with torch.no_grad():
            clean = model.encode_image(batch.images, normalize=True).float()
        guide_captions, _ = attack_captions(attacker, batch.captions, clean, self.log)
        guide = encode_captions(model, flatten(guide_captions)).to(device)
        owner = batch_owner(batch.captions).to(device)
        mine = (owner[None, :] == torch.arange(len(batch.captions), device=device)[:, None]).float()

        def objective(embeddings: torch.Tensor, rows: torch.Tensor, _targets: Any) -> torch.Tensor:
            similarity = torch.einsum("nsd,cd->nsc", embeddings, guide)  # image x scale x caption
            return -(similarity * mine[rows][:, None, :]).sum(dim=(1, 2))

        streams = self.streams(batch)
        embedder = ScaledEmbedder(model, self.scales, streams)
        adv_images = embedding_pgd(embedder, objective, batch.images, self.image, self.step_size(), streams)
        with torch.no_grad():
            adv_features = model.encode_image(adv_images, normalize=True).float()
        adv_captions, counts = attack_captions(attacker, batch.captions, adv_features, self.log)
        return RetrievalOutcome(adv_images=adv_images, adv_captions=adv_captions, extra=counts)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "scales": list(self.scales), "scale_noise_std": NOISE_STD,
                "order": "caption (clean-image guided), image (adversarial-caption-set guided), "
                         "caption (adversarial-image guided)",
                "reference": "Lu et al., ICCV 2023; Zoky-2020/SGA SGAttacker.attack"}


def make_sga(options: SGAOptions) -> RetrievalAttack:
    return SGA(options)
