"""Image attacks: threat-model guarantees, no parameter-gradient leaks, strength ordering, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmrobust.attacks.image import APGD, FGSM, PGD, Square
from mmrobust.attacks.image.apgd import apgd_checkpoints
from mmrobust.data import load_dataset
from mmrobust.errors import ConfigError, NumericalError
from mmrobust.models.zeroshot import ZeroShotClassifier
from robust_test_models import prototype_digits_model


@pytest.fixture(scope="module")
def digits_batch():
    model = prototype_digits_model()
    ds = load_dataset("digits")
    clf = ZeroShotClassifier.from_prompts(model, ds.classes, ds.templates)
    x = torch.stack([ds[i][0] for i in range(64)])
    y = torch.tensor([ds[i][1] for i in range(64)])
    return clf, x, y


def accuracy(clf, x, y) -> float:
    with torch.no_grad():
        return float((clf(x).argmax(1) == y).float().mean())


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("norm,eps", [("Linf", 16 / 255), ("L2", 1.0)])
def test_pgd_stays_in_ball_and_box_and_lowers_accuracy(digits_batch, norm, eps):
    clf, x, y = digits_batch
    adv = PGD(clf, eps, eps / 4, 10, norm=norm, restarts=2, generator=gen())(x, y)
    assert adv.shape == x.shape and adv.dtype == x.dtype and not adv.requires_grad
    assert adv.min() >= 0 and adv.max() <= 1
    diff = (adv - x).flatten(1)
    norms = diff.abs().amax(1) if norm == "Linf" else diff.norm(dim=1)
    assert float(norms.max()) <= eps * (1 + 1e-5)
    assert accuracy(clf, adv, y) < accuracy(clf, x, y)


def test_pgd_touches_no_parameter_gradient_and_restores_modes(digits_batch):
    clf, x, y = digits_batch
    model = clf.model
    model.train()
    model.text_table.eval()  # a deliberately mixed state must come back as it was
    try:
        PGD(clf, 8 / 255, 2 / 255, 3, generator=gen())(x, y)
        assert model.training and not model.text_table.training and model.image_proj.training
        assert all(p.grad is None for p in model.parameters())
    finally:
        model.eval()


def test_pgd_is_deterministic_under_a_generator(digits_batch):
    clf, x, y = digits_batch
    a = PGD(clf, 8 / 255, 2 / 255, 5, generator=gen(3))(x, y)
    b = PGD(clf, 8 / 255, 2 / 255, 5, generator=gen(3))(x, y)
    c = PGD(clf, 8 / 255, 2 / 255, 5, generator=gen(4))(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_more_steps_and_larger_eps_are_not_weaker(digits_batch):
    clf, x, y = digits_batch
    eps = 12 / 255
    few = PGD(clf, eps, eps / 4, 3, generator=gen(), track_best=True)(x, y)
    many = PGD(clf, eps, eps / 4, 30, generator=gen(), track_best=True)(x, y)
    assert accuracy(clf, many, y) <= accuracy(clf, few, y)
    big = PGD(clf, 64 / 255, 16 / 255, 10, generator=gen())(x, y)
    assert accuracy(clf, big, y) <= 0.05


def test_fgsm_is_one_step_pgd_without_random_start(digits_batch):
    clf, x, y = digits_batch
    a = FGSM(clf, 8 / 255)(x, y)
    b = PGD(clf, 8 / 255, 8 / 255, 1, random_start=False)(x, y)
    assert torch.equal(a, b)
    step = (a - x).abs()
    inside = (a > 0) & (a < 1) & (step > 0)  # moved and not clipped by the [0, 1] box
    assert inside.any() and torch.allclose(step[inside], torch.tensor(8 / 255), atol=1e-6)


def test_targeted_pgd_reaches_the_target(digits_batch):
    clf, x, y = digits_batch
    targets = (y + 1) % 10
    adv = PGD(clf, 64 / 255, 8 / 255, 20, targeted=True, generator=gen())(x, y, targets)
    untargeted = PGD(clf, 64 / 255, 8 / 255, 20, generator=gen())(x, y)
    with torch.no_grad():
        hit = float((clf(adv).argmax(1) == targets).float().mean())
        hit_by_chance = float((clf(untargeted).argmax(1) == targets).float().mean())
    assert hit > 0.3 and hit > hit_by_chance


def test_custom_two_argument_loss(digits_batch):
    clf, x, y = digits_batch
    adv = PGD(clf, 16 / 255, 4 / 255, 5, loss=nn.CrossEntropyLoss(), generator=gen())(x, y)
    assert accuracy(clf, adv, y) < accuracy(clf, x, y)


def test_apgd_checkpoints_follow_the_paper():
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)
    assert apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_apgd_is_at_least_as_strong_as_pgd(digits_batch):
    clf, x, y = digits_batch
    eps = 12 / 255
    pgd = accuracy(clf, PGD(clf, eps, eps / 4, 20, generator=gen())(x, y), y)
    apgd_ce = APGD(clf, eps, steps=20, generator=gen())
    adv = apgd_ce(x, y)
    assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert accuracy(clf, adv, y) <= pgd + 2 / 64
    apgd_t = APGD(clf, eps, steps=10, targeted=True, n_target_classes=3, generator=gen())
    assert accuracy(clf, apgd_t(x, y), y) < accuracy(clf, x, y)
    assert apgd_t.describe()["loss"] == "dlr"


def test_apgd_l2(digits_batch):
    clf, x, y = digits_batch
    adv = APGD(clf, 1.0, steps=10, norm="L2", generator=gen())(x, y)
    assert float((adv - x).flatten(1).norm(dim=1).max()) <= 1.0 + 1e-5
    assert accuracy(clf, adv, y) < accuracy(clf, x, y)


def test_square_is_black_box_and_in_ball(digits_batch):
    clf, x, y = digits_batch
    square = Square(clf, 24 / 255, n_queries=150, generator=gen())
    adv = square(x, y)
    assert float((adv - x).abs().max()) <= 24 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert accuracy(clf, adv, y) < accuracy(clf, x, y)
    assert 1 <= square.queries_used <= 150
    with pytest.raises(ConfigError):
        Square(clf, 1.0, norm="l2")


@pytest.mark.parametrize("kwargs", [dict(eps=0.0), dict(eps=-1 / 255), dict(eps=math.nan), dict(eps=3.0),
                                    dict(norm="l3"), dict(steps=0), dict(alpha=0.0), dict(restarts=0),
                                    dict(loss="hinge")])
def test_bad_parameters_are_config_errors(digits_batch, kwargs):
    clf, _, _ = digits_batch
    args = dict(eps=8 / 255, alpha=2 / 255, steps=5) | kwargs
    with pytest.raises(ConfigError):
        PGD(clf, **args)


def test_non_finite_images_and_logits_are_numerical_errors(digits_batch):
    clf, x, y = digits_batch
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(NumericalError):
        PGD(clf, 8 / 255, 2 / 255, 2)(bad, y)
    with pytest.raises(NumericalError):
        PGD(lambda images: torch.full((images.shape[0], 10), float("nan")), 8 / 255, 2 / 255, 2)(x, y)
    with pytest.raises(ConfigError):
        PGD(clf, 8 / 255, 2 / 255, 2)(x * 2, y)


def test_square_l2_stays_on_its_ball_and_lowers_accuracy_with_eps():
    from mmrobust.attacks.image.square import square_attack
    from mmrobust.attacks.image.square_l2 import SquareL2
    from mmrobust.data import load_dataset
    from mmrobust.models.zeroshot import ZeroShotClassifier
    from robust_test_models import prototype_digits_model

    ds = load_dataset("digits")
    clf = ZeroShotClassifier.from_prompts(prototype_digits_model(), ds.classes, ds.templates)
    x = torch.stack([ds[i][0] for i in range(32)])
    y = torch.tensor([ds[i][1] for i in range(32)])
    clean = float((clf(x).argmax(1) == y).float().mean())
    accuracies = []
    for eps in (0.5, 2.0):
        generator = torch.Generator().manual_seed(0)
        attack = square_attack(clf, eps, "l2", n_queries=150, generator=generator)
        assert isinstance(attack, SquareL2)
        adv = attack(x, y)
        assert float((adv - x).flatten(1).norm(dim=1).max()) <= eps + 1e-5 and adv.min() >= 0 and adv.max() <= 1
        accuracies.append(float((clf(adv).argmax(1) == y).float().mean()))
    assert accuracies[1] <= accuracies[0] <= clean and accuracies[1] < clean
