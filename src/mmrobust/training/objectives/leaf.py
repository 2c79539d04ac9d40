"""LEAF (Abad Rocamora, Schlarmann, Singh, Wu, Hein & Cevher 2025, "Robustness in Both Domains: CLIP Needs a
Robust Text Encoder"): adversarial fine-tuning of the *text* tower against character edits, FARE's loss moved to
the text side; ``leaf-fare`` adds FARE on the image tower, the pairing LEAF's released models use.

Followed: ``LIONS-EPFL/LEAF`` — ``utils_AT.py`` ``train_one_epoch_text_only`` (lines ~290-322), the attack in
``utils_attacks.py`` ``attack_text_leaf`` (lines 297-393; here :mod:`mmrobust.attacks.text.leaf`), the defaults
of ``scripts/train_leaf_vitl.sh`` (``--rho=50 --k_adv 1``; ``params_AT.py``'s bare defaults are rho 20, k 1)::

    t_adv = argmax_{t' : Lev(t', t) <= k} || f_T(t') - f_T0(t) ||_2^2      (LEAF's random search, rho candidates)
    L_LEAF = E_t || f_T(t_adv) - f_T0(t) ||_2^2                            (``F.mse_loss(..., reduction='none')
                                                                            .sum(dim=-1).mean()``)

on unnormalised text embeddings (``--normalize_fare`` is off in the scripts), ``f_T0`` the frozen pre-trained
text tower. LEAF freezes the image tower (``model.visual`` ``requires_grad_(False)``) and trains the rest; here
``--train text`` (the text tower and its projection; the temperature gets no gradient from this loss anyway).

``leaf-fare``: ``L = L_FARE(image) + L_LEAF(text)``, both weight 1, trained ``full``. LEAF pairs the two by
fine-tuning the text tower of a FARE checkpoint (``--model hf-hub:chs20/fare2-clip``), i.e. one after the other;
the two losses here depend on disjoint parameters (FARE's on the image tower, LEAF's on the text tower), so
summing them trains each tower on its own loss in one run (same steps, batches and learning rate for both).

Departures: the captions are the run's class prompts (``--templates``' first), not DataComp captions; each
distinct caption of a batch is attacked once and the loss is averaged over the batch's images; LEAF's
``--constrain`` (no new dictionary words, nltk) is not implemented (see :mod:`mmrobust.attacks.text.leaf`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...attacks.text.leaf import LEAFAttack
from .base import LossTerms, Objective, ObjectiveContext, TrainBatch
from .fare import FARE, squared_distance


def step_rng(generator: torch.Generator | None) -> np.random.Generator:
    """The attack's random draws for this step, seeded from the step's generator (reproducible per step)."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=generator)))


class LEAF(Objective):
    name = "leaf"
    needs_original = True

    def __init__(self, ctx: ObjectiveContext) -> None:
        super().__init__(ctx)
        self.text_attack = LEAFAttack(self.model, rho=self.options.leaf_rho, k=self.options.leaf_k)

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        captions = self.captions(batch.labels)
        with torch.no_grad():
            anchors = self.ctx.original.encode_text(captions.texts, normalize=False)
        adv = self.text_attack.attack(captions.texts, anchors, step_rng(batch.generator))
        return {"captions": captions, "adv_texts": adv, "text_anchors": anchors}

    def text_loss(self, adversarial: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        captions = adversarial["captions"]
        features = self.model.encode_text(adversarial["adv_texts"], normalize=False)
        loss = squared_distance(features, adversarial["text_anchors"])[captions.index].mean()
        changed = sum(a != t for a, t in zip(adversarial["adv_texts"], captions.texts)) / max(len(captions.texts), 1)
        return loss, {"l2_text_adv": float(loss.detach()), "changed_caption_rate": float(changed)}

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        loss, parts = self.text_loss(adversarial)
        return LossTerms(loss, parts)


class LEAFFARE(LEAF):
    """LEAF on the text tower + FARE on the image tower (``L_FARE + L_LEAF``)."""

    name = "leaf-fare"
    needs_image_attack = True

    def __init__(self, ctx: ObjectiveContext) -> None:
        super().__init__(ctx)
        self._fare = FARE(ctx)

    def adversarial_inputs(self, batch: TrainBatch) -> dict[str, Any]:
        return {**self._fare.adversarial_inputs(batch), **super().adversarial_inputs(batch)}

    def loss(self, batch: TrainBatch, adversarial: dict[str, Any]) -> LossTerms:
        image = self._fare.loss(batch, adversarial)
        text, parts = self.text_loss(adversarial)
        return LossTerms(image.loss + text, {"l2_image_adv": float(image.loss.detach()), **parts})
