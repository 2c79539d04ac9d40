"""Per-example random streams: results do not depend on the batch size, and the cascade equals attacking each."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmrobust.attacks.image.streams import ExampleStreams
from mmrobust.eval.run import EvalConfig, run_evaluation
from robust_test_models import prototype_digits_model

RANDOM_ATTACKS = ("pgd", "apgd-ce", "apgd-t", "square")


def test_a_stream_belongs_to_its_example_not_to_its_batch():
    everyone = ExampleStreams.for_examples(7, [3, 10, 42, 99], "pgd")
    alone = ExampleStreams.for_examples(7, [42], "pgd")
    draws = everyone.uniform((3, 4, 4), "start", 0)
    assert torch.equal(alone.uniform((3, 4, 4), "start", 0)[0], draws[2])
    assert torch.equal(everyone.subset(torch.tensor([2])).uniform((3, 4, 4), "start", 0), alone.uniform((3, 4, 4), "start", 0))
    # different restarts, attacks, seeds and examples give different numbers
    assert not torch.equal(everyone.uniform((3, 4, 4), "start", 1), draws)
    assert not torch.equal(ExampleStreams.for_examples(7, [3, 10, 42, 99], "square").uniform((3, 4, 4), "start", 0), draws)
    assert not torch.equal(ExampleStreams.for_examples(8, [3, 10, 42, 99], "pgd").uniform((3, 4, 4), "start", 0), draws)
    assert not torch.equal(draws[0], draws[1])
    derived = everyone.derive("apgd-t")
    assert not torch.equal(derived.uniform((5,), "x"), everyone.uniform((5,), "x"))


def test_stream_values_look_uniform_and_normal():
    streams = ExampleStreams.for_examples(0, range(64), "pgd")
    u = streams.uniform((1000,), "start", 0)
    assert u.dtype == torch.float32 and float(u.min()) >= 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    # neighbouring counters and neighbouring examples are uncorrelated
    assert abs(float(torch.corrcoef(torch.stack([u[:, :-1].flatten(), u[:, 1:].flatten()]))[0, 1])) < 0.02
    assert abs(float(torch.corrcoef(torch.stack([u[:-1].flatten(), u[1:].flatten()]))[0, 1])) < 0.02
    z = streams.normal((1000,), "start", 0)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02


def test_generator_keys_are_reproducible():
    a = ExampleStreams.from_generator(4, torch.Generator().manual_seed(1)).uniform((8,), "start")
    b = ExampleStreams.from_generator(4, torch.Generator().manual_seed(1)).uniform((8,), "start")
    assert torch.equal(a, b)


def _run(tmp_path, name: str, **kwargs):
    base = dict(model="test:prototype", dataset="digits", n_samples=40, batch_size=8, attacks=",".join(RANDOM_ATTACKS),
                eps=8 / 255, steps=6, square_queries=40, seed=5, progress=False, output=str(tmp_path / f"{name}.json"),
                sanity=False, ensemble="each")
    return run_evaluation(EvalConfig(**(base | kwargs)), model=prototype_digits_model())


def test_per_example_outcomes_do_not_depend_on_the_batch_size(tmp_path):
    small = _run(tmp_path, "b8", batch_size=8)
    large = _run(tmp_path, "b16", batch_size=16)
    clean = np.array(small["per_example"]["clean"])
    for name in RANDOM_ATTACKS:
        assert small["per_example"][name] == large["per_example"][name], name
        robust = np.array(small["per_example"][name])
        assert robust.sum() < clean.sum(), f"{name} broke nothing: the test would prove little"
    assert np.array(small["per_example"]["worst_case"]).any(), "everything broken: the test would prove little"


def test_cascade_gives_the_worst_case_of_attacking_each_while_attacking_less(tmp_path):
    each = _run(tmp_path, "each", ensemble="each")
    cascade = _run(tmp_path, "cascade", ensemble="cascade", batch_size=16)
    assert cascade["per_example"]["worst_case"] == each["per_example"]["worst_case"]
    assert cascade["robust_accuracy"] == each["robust_accuracy"]
    assert cascade["ensemble"]["mode"] == "cascade" and each["ensemble"]["mode"] == "each"
    n_clean = each["metrics"]["clean"]["n_correct"]
    first = RANDOM_ATTACKS[0]
    assert cascade["metrics"]["attacks"][first]["n_attacked"] == each["metrics"]["attacks"][first]["n_attacked"] == n_clean
    standing = n_clean
    for name in RANDOM_ATTACKS:  # each attack saw exactly what the earlier ones left standing
        block = cascade["metrics"]["attacks"][name]
        assert block["n_attacked"] == standing
        standing -= block["n_broken"]
        assert block["n_attacked"] <= each["metrics"]["attacks"][name]["n_attacked"]
        assert cascade["ensemble"]["per_attack"][name] == {k: block[k] for k in ("n_attacked", "n_broken")}
    assert standing == cascade["metrics"]["worst_case"]["n_correct"]
    assert sum(b["n_attacked"] for b in cascade["metrics"]["attacks"].values()) < \
        sum(b["n_attacked"] for b in each["metrics"]["attacks"].values())


def test_bad_ensemble_and_precision_are_config_errors(tmp_path):
    from mmrobust.errors import ConfigError

    with pytest.raises(ConfigError, match="ensemble"):
        _run(tmp_path, "bad", ensemble="all")
    with pytest.raises(ConfigError, match="precision"):
        _run(tmp_path, "bad", precision="fp8")
