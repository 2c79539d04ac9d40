"""Batched text search: the same adversarial texts as the per-prompt search, for far fewer model calls.

Both drivers run on the same inputs and seed with separate attackers (separate masked-LM caches), and the
outcomes (texts, queries, scores' ranking decisions) must be identical: masked LM with multi-piece words,
1 and 2 words changed, chunk sizes that split the texts unevenly, duplicates, the model-free recipes, the
pair goal, and a text-level constraint.
"""

from __future__ import annotations

import pytest
import torch

from mlm_test_models import save_tiny_mlm
from mmrobust.attacks.text.attacked_text import AttackedText
from mmrobust.attacks.text.goals import ZeroShotMarginGoal
from mmrobust.attacks.text.recipes import build_text_attack
from mmrobust.attacks.text.similarity import SemanticSimilarityConstraint
from mmrobust.errors import ConfigError

TEXTS = [
    "This is a photo of a cat",
    "This is a photo of cats",  # "cats" = cat + ##s: a multi-piece word for the tiny masked LM
    "a blurry picture of the dogs.",
    "two birds and ships near the trees",
    "This is a photo of a cat",  # duplicate
    "A painting of a kitten, small and green!",
    "the big red truck",
    "photograph",
    "of the a",
    "a sketch of ponies and frogs in a boat",
]


@pytest.fixture(scope="module")
def mlm(tmp_path_factory):
    from mmrobust.attacks.text.mlm import MaskedLanguageModel

    return MaskedLanguageModel.load(str(save_tiny_mlm(tmp_path_factory.mktemp("tiny-mlm"))))


def fresh_mlm(mlm):
    """The same weights, a new object: each attacker gets its own candidate cache and forward counter."""
    from mmrobust.attacks.text.mlm import MaskedLanguageModel

    return MaskedLanguageModel(mlm.model, mlm.tokenizer, mlm.spec, mlm.max_length)


def outcomes(results):
    return [(r.original, r.perturbed, r.changed, r.queries) for r in results]


def test_the_tiny_masked_lm_really_has_multi_piece_words(mlm):
    pieces = {w: mlm.tokenizer.tokenize(w) for w in ("cats", "dogs", "trees", "ponies")}
    assert any(len(p) > 1 and "[UNK]" not in p for p in pieces.values()), pieces


@pytest.mark.parametrize("max_words", [1, 2])
@pytest.mark.parametrize("chunk", [3, 128])
def test_batched_bert_attack_equals_per_prompt(tiny_model, mlm, max_words, chunk):
    per_prompt = build_text_attack("bert-attack", tiny_model, max_words=max_words, mlm=fresh_mlm(mlm), chunk_size=1)
    batched = build_text_attack("bert-attack", tiny_model, max_words=max_words, mlm=fresh_mlm(mlm), chunk_size=chunk)
    assert not per_prompt.batched and batched.batched
    slow, fast = per_prompt.attack(TEXTS), batched.attack(TEXTS)
    assert outcomes(fast) == outcomes(slow)
    assert any(r.n_changed for r in fast)
    if max_words == 2:
        assert any(r.n_changed == 2 for r in fast)  # the second step of the lock-step search really ran
    assert any(len(mlm.tokenizer.tokenize(r.original.split()[-1])) > 1 and r.n_changed for r in fast)
    distinct = len(set(TEXTS))
    chunks = -(-distinct // chunk)
    assert per_prompt.last_cost.mlm_forwards == sum(1 for t in dict.fromkeys(TEXTS) if t != "of the a")
    assert batched.last_cost.mlm_forwards == chunks
    assert batched.last_cost.text_encoder_calls < per_prompt.last_cost.text_encoder_calls
    assert batched.last_cost.texts_scored == per_prompt.last_cost.texts_scored == sum(r.queries for r in fast)
    assert batched.last_cost.texts_attacked == per_prompt.last_cost.texts_attacked == distinct


@pytest.mark.parametrize("recipe", ["embed-sub", "typo"])
def test_batched_model_free_recipes_equal_per_prompt(tiny_model, recipe):
    slow = build_text_attack(recipe, tiny_model, max_words=2, seed=3, chunk_size=1).attack(TEXTS)
    fast = build_text_attack(recipe, tiny_model, max_words=2, seed=3, chunk_size=4).attack(TEXTS)
    assert outcomes(fast) == outcomes(slow)


def test_batched_pair_goal_equals_per_prompt(tiny_model):
    dim = int(tiny_model.encode_text(["x"]).shape[-1])
    features = torch.randn(len(TEXTS), dim, generator=torch.Generator().manual_seed(0))
    slow = build_text_attack("typo", tiny_model, goal="pair-similarity", chunk_size=1).attack(TEXTS, features)
    fast = build_text_attack("typo", tiny_model, goal="pair-similarity", chunk_size=64).attack(TEXTS, features)
    assert outcomes(fast) == outcomes(slow) and any(r.n_changed for r in fast)


def letter_counts(texts):
    """A deterministic stand-in sentence encoder: normalised letter histograms."""
    rows = torch.zeros(len(texts), 26)
    for i, text in enumerate(texts):
        for ch in text.lower():
            if "a" <= ch <= "z":
                rows[i, ord(ch) - 97] += 1
    return torch.nn.functional.normalize(rows + 1e-3, dim=-1)


def test_batched_search_with_a_text_constraint_equals_per_prompt(tiny_model):
    def attack(chunk):
        attacker = build_text_attack("typo", tiny_model, max_words=2, chunk_size=chunk)
        constraint = SemanticSimilarityConstraint(0.97, encoder=letter_counts)
        attacker.constraints.append(constraint)
        return attacker, attacker.attack(TEXTS)

    (slow_attacker, slow), (fast_attacker, fast) = attack(1), attack(128)
    assert outcomes(fast) == outcomes(slow)
    unconstrained = build_text_attack("typo", tiny_model, max_words=2).attack(TEXTS)
    assert outcomes(fast) != outcomes(unconstrained)  # the constraint really rejected something
    for r in fast:
        if r.n_changed:
            sim = float(letter_counts([r.original])[0] @ letter_counts([r.perturbed])[0])
            assert sim >= 0.97
    assert 0 < fast_attacker.last_cost.similarity_encoder_calls < slow_attacker.last_cost.similarity_encoder_calls


def test_masked_lm_candidates_are_cached_for_the_whole_run(tiny_model, mlm):
    attacker = build_text_attack("bert-attack", tiny_model, max_words=1, mlm=fresh_mlm(mlm))
    first = attacker.attack(TEXTS[:4])
    assert attacker.last_cost.mlm_forwards == 1
    with torch.no_grad():  # "training": the attacked model's weights change between epochs
        for p in tiny_model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    again = attacker.attack(TEXTS[:4])
    assert attacker.last_cost.mlm_forwards == 0 and attacker.total_cost.mlm_forwards == 1
    assert [r.original for r in again] == [r.original for r in first]
    attacker.attack(TEXTS[:6])  # only the new texts need a forward
    assert attacker.last_cost.mlm_forwards == 1


def test_goals_that_depend_on_other_texts_are_searched_one_by_one(tiny_model):
    prompts = ["a photo of a cat", "a photo of a dog"]
    dim = int(tiny_model.encode_text(["x"]).shape[-1])
    images = torch.nn.functional.normalize(torch.randn(4, dim, generator=torch.Generator().manual_seed(1)), dim=-1)
    goal = ZeroShotMarginGoal(tiny_model, images, torch.tensor([0, 0, 1, 1]), 2, 1)
    attacker = build_text_attack("typo", tiny_model, goal=goal)
    assert not attacker.batched and attacker.describe()["batched"] is False
    attacker.attack(prompts)
    assert attacker.last_cost.text_encoder_calls > 0


def test_chunk_size_below_one_is_refused(tiny_model):
    with pytest.raises(ConfigError, match="chunk size"):
        build_text_attack("typo", tiny_model, chunk_size=0)


def test_padded_masked_lm_forward_matches_one_text_forwards(mlm):
    texts = [AttackedText(t) for t in TEXTS[:4]]
    items = [(t.text, [(w.start, w.end) for w in t.words], list(range(len(t.words)))) for t in texts]
    together = mlm.word_candidates_many(items)
    alone = [mlm.word_candidates(*item) for item in items]
    assert together == alone


# ---------------------------------------------------------------------------------------------- reports
def test_every_text_report_has_cost_and_collision_fields(tiny_model):
    from mmrobust.attacks.protocol import AttackContext
    from mmrobust.attacks.registry import build_attack
    from mmrobust.models.zeroshot import ZeroShotClassifier, build_prompts

    classes, templates = ["cat", "dog", "kitten", "puppy"], ["This is a photo of a {}"]
    prompts = build_prompts(classes, templates)
    classifier = ZeroShotClassifier.from_prompts(tiny_model, classes, templates)
    for name in ("embed-sub", "typo", "sep", "co-attack-kl"):
        ctx = AttackContext(model=tiny_model, classifier=classifier, classes=classes, templates=templates,
                            prompts=prompts, device=tiny_model.device, progress=False)
        attack = build_attack(name, {"eps": 1 / 255, "steps": 1})
        attack.prepare(ctx)
        block = attack.describe()
        assert block["class_name_collisions"] == sum(1 for p in block["prompts"] if p["collides_with"])
        assert all(isinstance(p["collides_with"], list) for p in block["prompts"])
        cost = block["cost"]
        assert cost["text_encoder_calls"] > 0 and cost["texts_attacked"] == len(classes)
        assert cost["texts_scored"] == block["queries"] and cost["seconds"] >= 0
