"""``bert-attack-released`` reproduces the study's released BertAttack prompt for prompt.

The golden prompts in tests/fixtures/released/bert_attack_prompts.json were produced by the released code
itself (ElleZWQ/MMCoA ``attack/bert_attack.py``, run by bench/released_parity_text.py on the seeded models
rebuilt here); mmrobust's recipe must give the very same strings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

FIXTURE = Path(__file__).parent / "fixtures" / "released" / "bert_attack_prompts.json"
GOLDEN = json.loads(FIXTURE.read_text())


def _case(name: str) -> dict:
    return next(c for c in GOLDEN["cases"] if c["name"] == name)


@pytest.fixture(scope="module")
def digits():
    from mmrobust.models import load_model

    return load_model("proxy:digits", "cpu").eval()


def _mlm(case: dict):
    import torchvision_shim  # noqa: F401
    import transformers

    from mmrobust.attacks.text.mlm import MaskedLanguageModel
    from mmrobust.models.tokenizers import minilm_model_dir

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_model_dir()), local_files_only=True)
    torch.manual_seed(case["seed"])
    model = transformers.BertForMaskedLM(transformers.BertConfig(**case["config"])).eval()
    return MaskedLanguageModel(model, tokenizer, "seeded-random-bert")


def _released(case: dict, model, chunk_size: int = 128):
    from mmrobust.attacks.text.recipes import build_text_attack

    attacker = build_text_attack("bert-attack-released", model, max_words=case["num_perturbation"],
                                 mlm=_mlm(case), chunk_size=chunk_size)
    return attacker, [r.perturbed for r in attacker.attack(GOLDEN["prompts"])]


@pytest.mark.parametrize("name", [c["name"] for c in GOLDEN["cases"] if not c.get("slow")])
def test_released_recipe_gives_the_released_prompts(name, digits):
    case = _case(name)
    attacker, prompts = _released(case, digits)
    assert prompts == case["adversarial"]
    # one forward for the chunk plus the perplexity forwards, at most one per multi-piece word the released code ran
    assert 1 < attacker.last_cost.mlm_forwards <= case["reference_mlm_forwards"]


def test_released_recipe_is_the_same_one_prompt_at_a_time(digits):
    case = _case("small-2words")
    attacker, prompts = _released(case, digits, chunk_size=1)
    assert prompts == case["adversarial"]
    # one text at a time runs what the released code runs: an MLM forward per text, one per multi-piece word
    # (the released code's single up-front forward covers all texts)
    assert attacker.last_cost.mlm_forwards == case["reference_mlm_forwards"] - 1 + len(GOLDEN["prompts"])


@pytest.mark.slow
def test_released_recipe_on_a_bert_base_sized_mlm(digits):
    cases = [c for c in GOLDEN["cases"] if c.get("slow")]
    if not cases:
        pytest.skip("fixture made without --full")
    _, prompts = _released(cases[0], digits)
    assert prompts == cases[0]["adversarial"]


def test_released_recipe_refuses_what_the_released_code_never_had(digits):
    from mmrobust.attacks.text.recipes import build_text_attack
    from mmrobust.errors import ConfigError

    with pytest.raises(ConfigError, match="embedding-KL"):
        build_text_attack("bert-attack-released", digits, mlm=_mlm(_case("small-1word")), goal="embedding-cos")
    with pytest.raises(ConfigError, match="no similarity"):
        build_text_attack("bert-attack-released", digits, mlm=_mlm(_case("small-1word")), min_similarity=0.5)
