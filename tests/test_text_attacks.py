"""Text attacks: recipes lower accuracy, respect the word budget, stay deterministic, fail loudly on bad input.

The classifier under attack is checkable: its text side is the tiny CLIP's text tower and its image side
a fixed orthonormal read-out of the pixels, so images can be *made* whose features are the clean class
embeddings (clean accuracy 100 %); any accuracy drop is then the text attack's doing.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from mmrobust.attacks.protocol import AttackContext
from mmrobust.attacks.registry import build_attack
from mmrobust.attacks.text.attacked_text import AttackedText
from mmrobust.attacks.text.recipes import build_text_attack
from mmrobust.attacks.text.transformations import CharacterEditSwap, EmbeddingNeighbourSwap
from mmrobust.attacks.text.words import split_words
from mmrobust.errors import ConfigError, ModelLoadError
from mmrobust.models.zeroshot import ZeroShotClassifier, build_prompts, encode_class_prompts
from mmrobust.models.base import TextTokens, VisionLanguageModel
from mmrobust.models.tiny import build_tiny
from mlm_test_models import MLM_WORDS

CLASSES = ["cat", "dog", "airplane", "truck", "frog", "horse", "ship", "bird"]
TEMPLATES = ["This is a photo of a {}", "a blurry picture of the {}."]


class ReadoutCLIP(VisionLanguageModel):
    """Text: a tiny CLIP's text side. Images (3 x 8 x 8): features = orthonormal read-out of (pixels - 0.5)."""

    backend = "test"

    def __init__(self, text_model: VisionLanguageModel, seed: int = 0, hide_token_embedding: bool = False) -> None:
        super().__init__(spec="readout-test", image_size=8, image_mean=(0.0, 0.0, 0.0), image_std=(1.0, 1.0, 1.0))
        self.text_model = text_model
        self.hide_token_embedding = hide_token_embedding
        dim = int(text_model.encode_text(["x"]).shape[-1])
        generator = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(3 * 8 * 8, dim, generator=generator))
        self.register_buffer("readout", q.t().contiguous())  # D x P, orthonormal rows

    def _encode_normalized_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.flatten(1) - 0.5) @ self.readout.t()

    def _encode_tokens(self, tokens: TextTokens) -> torch.Tensor:
        return self.text_model._encode_tokens(tokens)

    @property
    def tokenizer(self):
        return self.text_model.tokenizer

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.text_model.logit_scale

    def _towers(self) -> dict[str, list[nn.Module]]:
        return {"image": [], "text": [self.text_model]}

    def token_embedding(self):
        return None if self.hide_token_embedding else self.text_model.token_embedding()

    def images_for(self, features: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] whose features are a positive multiple of ``features`` (one image per row)."""
        delta = features @ self.readout
        delta = delta * (0.45 / delta.abs().amax(dim=1, keepdim=True))
        return (0.5 + delta).view(-1, 3, 8, 8)


def make_setup(per_class: int = 3, noise: float = 0.02, hide_token_embedding: bool = False, seed: int = 0):
    """(model, clean classifier, prompts, images, labels) with clean accuracy 100 %."""
    model = ReadoutCLIP(build_tiny(seed=seed), hide_token_embedding=hide_token_embedding).eval()
    prompts = build_prompts(CLASSES, TEMPLATES)
    with torch.no_grad():
        class_embeddings = encode_class_prompts(model, prompts)
    generator = torch.Generator().manual_seed(seed + 1)
    labels = torch.arange(len(CLASSES)).repeat_interleave(per_class)
    features = class_embeddings[labels]
    spread = (class_embeddings[:, None] - class_embeddings[None]).norm(dim=-1)
    spread = spread[spread > 0].min()
    features = features + noise * spread * torch.randn(features.shape, generator=generator)
    images = model.images_for(features)
    classifier = ZeroShotClassifier(model, class_embeddings, CLASSES)
    with torch.no_grad():
        assert (classifier(images).argmax(1) == labels).all(), "the checkable setup must start at 100 % clean accuracy"
    return model, classifier, prompts, images, labels


def context(model, classifier, prompts, options, images=None, labels=None, templates=TEMPLATES, classes=CLASSES):
    return AttackContext(model=model, classifier=classifier, classes=classes, templates=templates, prompts=prompts,
                         device=torch.device("cpu"), seed=0, progress=False,
                         attack_images=images, attack_labels=labels)


def run_eval_attack(name, setup, **options):
    model, classifier, prompts, images, labels = setup
    attack = build_attack(name, options)
    attack.prepare(context(model, classifier, prompts, options, images, labels))
    attack.begin_batch(0)
    outcome = attack.attack_batch(images, labels)
    return attack, outcome.correct.float().mean().item()


@pytest.fixture(scope="module")
def setup():
    return make_setup()


# ---------------------------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize("name", ["embed-sub", "typo"])
def test_offline_text_attacks_lower_accuracy(setup, name):
    attack, accuracy = run_eval_attack(name, setup, text_words=1)
    assert accuracy < 1.0, f"{name} left the 100 %-accurate classifier untouched"
    described = attack.describe()
    assert described["n_prompts"] == len(CLASSES) * len(TEMPLATES)
    assert described["n_prompts_changed"] > 0 and described["queries"] > 0


def test_zero_shot_margin_goal_is_task_aware(setup):
    _, kl_accuracy = run_eval_attack("typo", setup, text_words=1)
    attack, margin_accuracy = run_eval_attack("typo", setup, text_words=1, text_goal="zero-shot-margin")
    assert margin_accuracy < 1.0
    # it optimises exactly this accuracy on these images, the label-free goal does not
    assert margin_accuracy <= kl_accuracy
    assert attack.describe()["attacker"]["goal"] == "zero-shot-margin"


def test_embed_sub_falls_back_to_minilm_vocabulary():
    model, *_ = make_setup(hide_token_embedding=True)
    swap = EmbeddingNeighbourSwap.from_model(model, k=5)
    assert "MiniLM" in swap.source
    neighbours = swap.neighbours(["cat", "qzxv"])
    assert len(neighbours[0]) == 5 and neighbours[1] == []
    assert all(w.isalpha() and "##" not in w for w in neighbours[0])
    assert "cat" not in neighbours[0]


# ---------------------------------------------------------------------------------------------- budget
def _differing_positions(original: str, perturbed: str) -> int:
    a, b = split_words(original), split_words(perturbed)
    assert len(a) == len(b), "substitutions must keep the number of words"
    return sum(x.text != y.text for x, y in zip(a, b))


PROPERTY_TEXTS = [
    "This is a photo of a cat",
    "a blurry photo of the big red truck.",
    "An airplane, flying over the green mountains at dawn!",
    "the quick brown fox jumps over the lazy dog near the river bank",
    "Tiny frog; large horse (ship) -- bird?",
    "photograph",
    "of the a",
]


@pytest.mark.parametrize("recipe", ["embed-sub", "typo"])
@pytest.mark.parametrize("max_words", [1, 2, 4])
def test_at_most_n_words_change(tiny_model, recipe, max_words):
    attacker = build_text_attack(recipe, tiny_model, max_words=max_words, candidates=5, seed=3)
    results = attacker.attack(PROPERTY_TEXTS)
    assert [r.original for r in results] == PROPERTY_TEXTS
    for result in results:
        differing = _differing_positions(result.original, result.perturbed)
        assert differing == result.n_changed == len(result.changed) <= max_words
        assert result.marked.count("[[") == result.n_changed
        assert result.queries >= result.n_changed
    assert results[-1].n_changed == 0  # stop words only: nothing may change
    assert any(r.n_changed == min(max_words, 2) for r in results)


def test_substitution_keeps_punctuation_and_case():
    text = AttackedText("This is a photo of a Cat.")
    changed = text.replace(6, "Dog")
    assert changed.text == "This is a photo of a Dog."
    assert changed.changed_words() == [("Cat", "Dog")] and changed.marked() == "This is a photo of a [[Dog]]."
    with pytest.raises(ValueError):
        text.replace(6, "ice cream")


# ---------------------------------------------------------------------------------------------- determinism
def test_typo_is_deterministic_under_seed(tiny_model):
    texts = PROPERTY_TEXTS[:4]
    first = build_text_attack("typo", tiny_model, max_words=2, seed=7).attack(texts)
    again = build_text_attack("typo", tiny_model, max_words=2, seed=7).attack(texts)
    assert [r.to_dict() for r in first] == [r.to_dict() for r in again]
    a = CharacterEditSwap(k=10, seed=0).edits("photograph", "t", 0)
    b = CharacterEditSwap(k=10, seed=1).edits("photograph", "t", 0)
    assert a == CharacterEditSwap(k=10, seed=0).edits("photograph", "t", 0) and a != b
    assert len(a) == 10 and all(w != "photograph" for w in a)


def test_attacker_batches_queries_restores_mode_and_keeps_gradients_clean(tiny_model):
    tiny_model.train()
    calls = []
    original_encode = tiny_model.encode_text

    def counting_encode(texts, normalize=False):
        calls.append(len(texts))
        assert not torch.is_grad_enabled()
        return original_encode(texts, normalize=normalize)

    tiny_model.encode_text = counting_encode
    results = build_text_attack("embed-sub", tiny_model, max_words=2).attack(PROPERTY_TEXTS[:3])
    del tiny_model.encode_text
    assert tiny_model.training and all(m.training for m in tiny_model.modules())
    assert all(p.grad is None for p in tiny_model.parameters())
    queries = sum(r.queries for r in results)
    # one call for the originals, then one per importance set / candidate set, never one per candidate
    assert len(calls) - 1 < queries and sum(calls) - len(PROPERTY_TEXTS[:3]) == queries


# ---------------------------------------------------------------------------------------------- reports
def test_describe_lists_every_prompt_and_resume_reuses_prompts(setup, monkeypatch):
    model, classifier, prompts, images, labels = setup
    options = {"text_words": 1}
    attack = build_attack("embed-sub", options)
    attack.prepare(context(model, classifier, prompts, options))
    state = json.loads(json.dumps(attack.state_dict()))
    described = attack.describe()
    flat = [p for per_class in prompts for p in per_class]
    assert [p["original"] for p in described["prompts"]] == flat
    for entry in described["prompts"]:
        assert entry["n_changed"] <= 1 and "queries" in entry and entry["class"] in CLASSES
        if entry["n_changed"]:
            assert "[[" in entry["marked"] and entry["perturbed"] != entry["original"]
    expected = attack.attack_batch(images, labels).correct

    resumed = build_attack("embed-sub", options)
    resumed.prepare(context(model, classifier, prompts, options))
    monkeypatch.setattr(resumed.prompt_attack, "build_attacker", lambda: pytest.fail("resume re-ran the text attack"))
    resumed.load_state_dict(state)
    assert torch.equal(resumed.attack_batch(images, labels).correct, expected)
    assert resumed.describe()["prompts"] == described["prompts"]


def test_attack_that_changes_nothing_says_so(setup):
    model, classifier, *_ = setup
    # "a ox": "a" is a stop word and "ox" is shorter than the typo recipe's minimum: nothing may change
    options = {"text_words": 1}
    attack = build_attack("typo", options)
    classes = ["ox"] * len(CLASSES)
    prompts = build_prompts(classes, ["a {}"])
    attack.prepare(context(model, classifier, prompts, options, templates=["a {}"], classes=classes))
    described = attack.describe()
    assert described["n_prompts_changed"] == 0
    assert any("changed no prompt" in w for w in described["warnings"])


# ---------------------------------------------------------------------------------------------- bad input
def test_bad_inputs_fail_loudly(setup, tiny_model):
    model, classifier, prompts, images, labels = setup
    with pytest.raises(ConfigError, match="empty"):
        build_text_attack("typo", tiny_model).attack([])
    for bad_words in (0, -1):
        with pytest.raises(ConfigError, match="words"):
            build_attack("embed-sub", {"text_words": bad_words})
        with pytest.raises(ConfigError, match="words"):
            build_text_attack("typo", tiny_model, max_words=bad_words)
    with pytest.raises(ConfigError, match="recipe"):
        build_text_attack("synonym-magic", tiny_model)
    with pytest.raises(ConfigError, match="goal"):
        build_text_attack("typo", tiny_model, goal="nonsense")
    attack = build_attack("typo", {})
    with pytest.raises(ConfigError, match=r"\{\}"):
        attack.prepare(context(model, classifier, prompts, {}, templates=["a photo"]))
    attack = build_attack("typo", {"text_goal": "zero-shot-margin"})
    attack.prepare(context(model, classifier, prompts, {"text_goal": "zero-shot-margin"}))
    with pytest.raises(ConfigError, match="attack_images"):
        attack.state_dict()
    with pytest.raises(ModelLoadError, match="does not exist"):
        build_text_attack("bert-attack", tiny_model, mlm="/nonexistent/mlm-folder")


def test_long_texts_are_truncated_with_a_warning(tiny_model):
    long_text = "a photo of " + " ".join(["colourful"] * 60) + " cat"
    with pytest.warns(UserWarning, match="longer than the model's context"):
        results = build_text_attack("typo", tiny_model).attack([long_text, "a photo of a cat"])
    assert results[0].truncated and not results[1].truncated
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_text_attack("typo", tiny_model).attack(["a photo of a cat"])


# ---------------------------------------------------------------------------------------------- masked LM
def test_bert_attack_with_a_masked_lm_lowers_accuracy(setup, tiny_mlm_folder):
    attack, accuracy = run_eval_attack("bert-attack", setup, text_words=1, mlm=str(tiny_mlm_folder))
    assert accuracy < 1.0
    described = attack.describe()
    assert described["mlm"] == str(tiny_mlm_folder) and described["attacker"]["transformation"] == "masked-lm"
    new_words = [new.lower() for p in described["prompts"] for _, new in p["changed"]]
    assert new_words and set(new_words) <= set(MLM_WORDS)
    assert all(p["n_changed"] <= 1 for p in described["prompts"])


def test_bert_attack_budget_and_threshold(tiny_model, tiny_mlm_folder):
    from mmrobust.attacks.text.mlm import MaskedLanguageModel

    mlm = MaskedLanguageModel.load(str(tiny_mlm_folder))
    results = build_text_attack("bert-attack", tiny_model, max_words=2, mlm=mlm).attack(PROPERTY_TEXTS[:4])
    for result in results:
        assert _differing_positions(result.original, result.perturbed) == result.n_changed <= 2
    assert any(r.n_changed for r in results)
    silent = build_text_attack("bert-attack", tiny_model, mlm=mlm, mlm_threshold=1e6).attack(PROPERTY_TEXTS[:2])
    assert all(r.n_changed == 0 for r in silent)  # nothing clears the threshold: nothing changes


def test_masked_lm_without_tokenizer_is_one_clear_error(tiny_mlm_folder, tmp_path):
    from mmrobust.attacks.text.mlm import MaskedLanguageModel

    (tmp_path / "config.json").write_text((tiny_mlm_folder / "config.json").read_text())
    with pytest.raises(ModelLoadError, match="tokenizer"):
        MaskedLanguageModel.load(str(tmp_path))


def test_duplicate_texts_are_attacked_once(tiny_model):
    texts = ["a photo of a cat", "a photo of a dog", "a photo of a cat", "a photo of a cat"]
    results = build_text_attack("embed-sub", tiny_model).attack(texts)
    alone = build_text_attack("embed-sub", tiny_model).attack(["a photo of a cat"])[0]
    assert [r.original for r in results] == texts
    assert results[0].perturbed == results[2].perturbed == results[3].perturbed == alone.perturbed
    assert results[0].queries == alone.queries > 0 and results[2].queries == results[3].queries == 0
