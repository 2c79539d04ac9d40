"""The task-aware text goal reaches the text attacks from the CLI config, with images from another split."""

from __future__ import annotations

from mmrobust.eval.run import EvalConfig, run_evaluation


def test_zero_shot_margin_goal_uses_train_images(tmp_path) -> None:
    config = EvalConfig(model="tiny", dataset="digits", n_samples=20, batch_size=20, attacks="typo",
                        text_goal="zero-shot-margin", text_goal_images=2, output=str(tmp_path / "r.json"),
                        progress=False)
    report = run_evaluation(config)
    info = report["text_goal_images"]
    assert info == {"split": "train", "n": 20, "per_class": 2, "from_evaluation_images": False}
    assert report["attack_options"]["text_goal"] == "zero-shot-margin"
    assert report["metrics"]["by_modality"]["text"] <= report["metrics"]["by_modality"]["clean"]


def test_text_and_multimodal_attacks_share_one_prompt_attack(tmp_path, monkeypatch) -> None:
    """embed-sub, sep and co-attack in one run use the same adversarial prompts, computed once."""
    from mmrobust.attacks.text.attacker import TextAttacker

    calls = []
    original = TextAttacker.attack

    def counting(self, texts, *args, **kwargs):
        calls.append(len(texts))
        return original(self, texts, *args, **kwargs)

    monkeypatch.setattr(TextAttacker, "attack", counting)
    config = EvalConfig(model="tiny", dataset="digits", n_samples=8, batch_size=8, attacks="embed-sub,sep,co-attack",
                        eps=8 / 255, steps=2, sanity=False, output=str(tmp_path / "r.json"), progress=False)
    report = run_evaluation(config)
    assert len(calls) == 1
    blocks = {block["name"]: block for block in report["attacks"]}
    prompts = {name: [p["perturbed"] for p in blocks[name]["prompts"]] for name in ("embed-sub", "sep", "co-attack")}
    assert prompts["embed-sub"] == prompts["sep"] == prompts["co-attack"]
