"""Validity of adversarial class prompts: class-name collisions are reported and can be forbidden; the
sentence-similarity constraint uses a real sentence encoder; a masked LM that cannot load says why."""

from __future__ import annotations

import pytest

from mmrobust.attacks.text.attacked_text import AttackedText
from mmrobust.attacks.text.attacker import TextAttacker
from mmrobust.attacks.text.classnames import ClassNameConstraint, collisions
from mmrobust.attacks.text.constraints import default_word_constraints
from mmrobust.attacks.text.goals import EmbeddingKLGoal
from mmrobust.attacks.text.search import GreedyWordImportanceSearch
from mmrobust.attacks.text.transformations import Transformation
from mmrobust.errors import ModelLoadError

CLASSES = ["seven", "four", "pickup truck", "truck", "cat"]


def test_collisions_are_new_other_class_names_as_whole_words():
    assert collisions("This is a photo of a seven", "This is a photo of a four", 0, CLASSES) == ["four"]
    assert collisions("This is a photo of a seven", "This is a photo of a seven", 0, CLASSES) == []
    # a multi-word name counts only as the whole sequence; the own class never counts
    assert collisions("a photo of a red truck", "a photo of a pickup truck", 3, CLASSES) == ["pickup truck"]
    assert collisions("a photo of a red truck", "a photo of a pickup car", 3, CLASSES) == []
    # a name the original already contained is not new; substrings of words are not names
    assert collisions("a cat near a truck", "a cat near a Four", 4, CLASSES) == ["four"]
    assert collisions("a photo of a seven", "a photo of a catamaran", 0, CLASSES) == []


class FixedSwap(Transformation):
    """Every word may become any of a fixed list (class names included): collisions are easy to make."""

    name = "fixed"

    def __init__(self, words):
        self.words = list(words)

    def word_candidates(self, text, indices):
        return {i: list(self.words) for i in indices}


def attack_prompts(model, prompts, protect: bool, max_words=2, chunk=1):
    constraints = default_word_constraints()
    if protect:
        constraints.append(ClassNameConstraint(CLASSES, {p: c for c, p in enumerate(prompts)}))
    attacker = TextAttacker(model, EmbeddingKLGoal(model), FixedSwap(["four", "seven", "pickup", "image", "cat", "drawing"]),
                            constraints, GreedyWordImportanceSearch(max_words), chunk_size=chunk)
    return attacker.attack(prompts)


@pytest.mark.parametrize("chunk", [1, 8])
def test_protect_classnames_keeps_own_words_and_introduces_no_other_name(tiny_model, chunk):
    prompts = [f"This is a photo of a {c}" for c in CLASSES]
    free = attack_prompts(tiny_model, prompts, protect=False, chunk=chunk)
    assert sum(bool(collisions(r.original, r.perturbed, c, CLASSES)) for c, r in enumerate(free)) > 0
    protected = attack_prompts(tiny_model, prompts, protect=True, chunk=chunk)
    assert any(r.n_changed for r in protected)
    for c, r in enumerate(protected):
        assert collisions(r.original, r.perturbed, c, CLASSES) == []
        assert r.perturbed.lower().endswith(CLASSES[c])  # the class's own words are untouched


def test_minilm_sentence_similarity_is_a_real_sentence_encoder():
    from mmrobust.attacks.text.similarity import SemanticSimilarityConstraint

    constraint = SemanticSimilarityConstraint(0.8)
    original = AttackedText("a photo of a cat")
    close, far = original.replace(4, "kitten"), original.replace(4, "spreadsheet")
    sims = constraint.similarities([[close, far]])[0]
    assert sims[0] > sims[1] and float(sims.max()) <= 1.0 + 1e-5
    assert constraint.encoder_calls == 1


def test_masked_lm_import_failure_names_the_torchvision_cause(tmp_path, monkeypatch):
    from mlm_test_models import save_tiny_mlm

    folder = save_tiny_mlm(tmp_path / "mlm")
    import transformers

    def broken(*args, **kwargs):
        try:
            raise RuntimeError("operator torchvision::nms does not exist")
        except RuntimeError as exc:
            raise ModuleNotFoundError("Could not import module 'BertForMaskedLM'. Are this object's requirements "
                                      "defined correctly?") from exc

    monkeypatch.setattr(transformers.AutoModelForMaskedLM, "from_pretrained", broken)
    from mmrobust.attacks.text.mlm import MaskedLanguageModel

    with pytest.raises(ModelLoadError) as info:
        MaskedLanguageModel.load(str(folder))
    message = str(info.value)
    assert "torchvision::nms" in message and "does not match the installed torch" in message
    assert "\n" not in message
