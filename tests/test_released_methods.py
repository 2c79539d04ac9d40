"""The released-code training variants (``mmcoa-released``, ``tecoa-released``): the leak reproduced exactly.

The check is against the released loop's *mechanics*, written out here as the study's code runs them:
``zero_grad()``, then PGD whose every step calls ``loss.backward()`` (into the perturbation *and* the
parameters), then the training loss's ``backward()`` on top. mmrobust's variants must give the same final
adversarial images and the same accumulated parameter gradients, although their attack only takes
gradients w.r.t. the perturbation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import pytest

from test_training import first_batch, ready_trainer


def released_loop_grads(trainer, batch, loss_of_adv) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The released ``attack_pgd`` + update, with its ``backward()`` calls, on the trainer's objective."""
    objective, cfg = trainer.objective, trainer.config
    params = trainer.selection.parameters
    for p in params:
        p.grad = None
    images = batch.images.detach()
    eps, alpha = cfg.eps, cfg.alpha
    generator = torch.Generator().manual_seed(batch.generator.initial_seed())
    delta = (torch.rand(images.shape, generator=generator) * 2 - 1) * eps
    delta = ((images + delta).clamp(0, 1) - images).requires_grad_(True)
    for _ in range(cfg.steps):
        # the released attack re-encodes the class prompts with the model each step (multiGPU_CLIP)
        class_embeddings = objective.class_embeddings(grad=True)
        logits = objective.zero_shot_logits(images + delta, class_embeddings)
        F.cross_entropy(logits, batch.labels).backward()  # the leak: parameters get this gradient too
        d = (delta.detach() + alpha * delta.grad.sign()).clamp(-eps, eps)
        delta.data = (images + d).clamp(0, 1) - images
        delta.grad.zero_()
    adv = (images + delta).detach()
    loss_of_adv(adv).backward()
    return adv, {str(i): p.grad.detach().clone() for i, p in enumerate(params) if p.grad is not None}


def objective_grads(trainer, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    adversarial = trainer.objective.adversarial_inputs(batch)
    params = trainer.selection.parameters
    for p in params:
        p.grad = None
    trainer.objective.loss(batch, adversarial).loss.backward()
    return adversarial["images"], {str(i): p.grad.detach().clone() for i, p in enumerate(params) if p.grad is not None}


def test_tecoa_released_update_equals_the_released_loop(tmp_path) -> None:
    trainer = ready_trainer(tmp_path, "tecoa-released", train="full", steps=3)
    batch = first_batch(trainer)

    def tecoa_loss(adv):
        logits = trainer.objective.zero_shot_logits(adv, trainer.objective.class_embeddings(grad=True))
        return F.cross_entropy(logits, batch.labels)

    adv_ref, grads_ref = released_loop_grads(trainer, batch, tecoa_loss)
    adv, grads = objective_grads(trainer, first_batch(trainer))
    assert torch.equal(adv, adv_ref)
    assert grads.keys() == grads_ref.keys() and grads
    for k in grads:
        torch.testing.assert_close(grads[k], grads_ref[k], rtol=1e-4, atol=2e-5)  # float32 summation order


def test_the_leak_changes_the_update(tmp_path) -> None:
    """The variant is not the corrected method: without the leak term the gradients differ."""
    trainer = ready_trainer(tmp_path, "tecoa-released", train="full", steps=3)
    batch = first_batch(trainer)
    adversarial = trainer.objective.adversarial_inputs(batch)
    assert len(adversarial["iterates"]) == 3
    terms = trainer.objective.loss(batch, adversarial)
    assert terms.parts["attack_gradient_leak"] > 0
    assert float(terms.loss.detach()) == pytest.approx(terms.parts["ce_adv"] + terms.parts["attack_gradient_leak"], rel=1e-5)


def test_mmcoa_released_uses_instance_targets_and_coupled_adam(tmp_path) -> None:
    trainer = ready_trainer(tmp_path, "mmcoa-released", method_options={"lambda_txt": 0.0, "lambda_img": 1.0}, steps=2)
    assert type(trainer.optimizer) is torch.optim.Adam
    assert type(ready_trainer(tmp_path / "c", "mmcoa").optimizer) is torch.optim.AdamW
    from mmrobust.training.pairs import symmetric_contrastive_loss

    batch = first_batch(trainer)
    objective = trainer.objective
    captions = objective.captions(batch.labels)

    def released_loss(adv):
        feats = objective.model.encode_image(adv, normalize=True)
        text = objective.encode_captions(captions.texts)
        return symmetric_contrastive_loss(feats, text, captions.index, objective.model.logit_scale, "instance")

    adv_ref, grads_ref = released_loop_grads(trainer, batch, released_loss)
    adv, grads = objective_grads(trainer, first_batch(trainer))
    assert torch.equal(adv, adv_ref)
    for k in grads_ref:
        torch.testing.assert_close(grads[k], grads_ref[k], rtol=1e-4, atol=2e-5)  # float32 summation order


def test_study_released_preset_runs_test_py_modes_at_temperature_100(tmp_path) -> None:
    """``--preset study-released``: modes 1-4 of the released test.py, evaluated at the fixed 100*cos."""
    from mlm_test_models import save_tiny_mlm

    from mmrobust.eval.run import EvalConfig, run_evaluation

    mlm = save_tiny_mlm(tmp_path / "mlm")
    report = run_evaluation(EvalConfig(model="tiny", dataset="digits", n_samples=8, batch_size=8,
                                       preset="study-released", steps=2, mlm=str(mlm), progress=False))
    assert report["logit_scale"] == pytest.approx(100.0)
    assert [a["name"] for a in report["attacks"]] == ["pgd", "bert-attack-released", "sep", "co-attack-kl"]
    own = run_evaluation(EvalConfig(model="tiny", dataset="digits", n_samples=8, batch_size=8, progress=False,
                                    preset="study-released", steps=2, mlm=str(mlm), logit_scale=10.0))
    assert own["logit_scale"] == pytest.approx(10.0)  # a flag overrides the protocol's temperature


def test_pmg_aft_released_update_equals_the_released_script(tmp_path) -> None:
    """PMG_AFT.py's loop written out: ImageNet-normalised pixels (resize, then ImageNet mean/std), plain cosine
    logits in the attack and the loss, ``KLDivLoss(reduction="sum")(log_softmax(adv), softmax(other))``, the
    attack's ``backward()`` leak; and ``SGD(momentum=0.9)``."""
    trainer = ready_trainer(tmp_path, "pmg-aft-released", train="full", steps=3)
    assert type(trainer.optimizer) is torch.optim.SGD
    assert trainer.optimizer.defaults["momentum"] == 0.9 and trainer.optimizer.defaults["weight_decay"] == 0
    objective = trainer.objective
    model, original = objective.model, objective.ctx.original
    imagenet_mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    imagenet_std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def script_logits(net, x, classes):
        resized = F.interpolate(x, size=(net.image_size, net.image_size), mode=net.resize_mode, align_corners=False)
        features = net._encode_normalized_images((resized - imagenet_mean) / imagenet_std)
        return F.normalize(features, dim=-1) @ classes.t()

    from mmrobust.models.zeroshot import encode_class_prompts

    original_classes = encode_class_prompts(original, objective.ctx.class_prompts).detach()
    sum_kl = torch.nn.KLDivLoss(reduction="sum")

    def script_loss(adv):
        classes = objective.class_embeddings(grad=True)
        output = script_logits(model, adv, classes)
        with torch.no_grad():
            output_ori = script_logits(original, adv, original_classes)
        output_clean = script_logits(model, batch.images, classes)
        return (F.cross_entropy(output, batch.labels)
                + sum_kl(F.log_softmax(output, dim=1), F.softmax(output_clean, dim=1))
                + sum_kl(F.log_softmax(output, dim=1), F.softmax(output_ori, dim=1)))

    batch = first_batch(trainer)
    objective.zero_shot_logits = lambda x, classes: script_logits(model, x, classes)  # the script's attack logits
    adv_ref, grads_ref = released_loop_grads(trainer, batch, script_loss)
    del objective.zero_shot_logits
    adv, grads = objective_grads(trainer, first_batch(trainer))
    assert torch.equal(adv, adv_ref)
    assert grads.keys() == grads_ref.keys() and grads
    for k in grads:
        torch.testing.assert_close(grads[k], grads_ref[k], rtol=1e-4, atol=2e-5)  # float32 summation order
    corrected = ready_trainer(tmp_path / "corrected", "pmg-aft", train="full", steps=3)
    adv_corrected, _ = objective_grads(corrected, first_batch(corrected))
    assert not torch.equal(adv_corrected, adv)  # the temperature and the normalisation change the attack itself
