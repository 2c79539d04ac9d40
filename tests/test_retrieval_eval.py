"""``eval --task retrieval``: recalls equal a direct open_clip computation, every attack kind runs inside
its threat model and reports recall and success rate, resume equals an uninterrupted run, transfer runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmrobust.errors import ConfigError
from mmrobust.eval.run import EvalConfig, run_evaluation
from mmrobust.models.tiny import build_tiny

ATTACKS = "pgd,apgd-t,embed-sub,typo,co-attack,sga"



def _config(root: Path, output: Path | None, **kwargs) -> EvalConfig:
    base = dict(model="tiny", dataset="flickr30k", data_root=str(root), output=None if output is None else str(output),
                task="retrieval", batch_size=3, progress=False)
    if kwargs.get("attacks"):
        base.update(eps=8 / 255, steps=2, text_candidates=3)
    base.update(kwargs)
    return EvalConfig(**base)


def _direct_recall(images: np.ndarray, texts: np.ndarray, owner: list[int]) -> dict[str, list[float]]:
    """Co-Attack/SGA's itm_eval, written out: argsort each row, rank of the (best) own item."""
    sim = images @ texts.T
    i2t, t2i = [], []
    for i, row in enumerate(sim):
        order = list(np.argsort(-row))
        i2t.append(min(order.index(j) for j, o in enumerate(owner) if o == i))
    for j, column in enumerate(sim.T):
        t2i.append(list(np.argsort(-column)).index(owner[j]))
    return {"text_to_image": [float(np.mean(np.array(t2i) < k)) for k in (1, 5, 10)],
            "image_to_text": [float(np.mean(np.array(i2t) < k)) for k in (1, 5, 10)]}


def test_recalls_equal_a_direct_open_clip_computation(tin_captions, tmp_path):
    import torchvision_shim  # noqa: F401
    try:
        import open_clip
    except Exception as exc:
        pytest.skip(f"open_clip unusable here: {type(exc).__name__}: {exc}")
    from PIL import Image
    from test_open_clip_adapter import ARCH, TINY_CFG

    (tmp_path / f"{ARCH}.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(tmp_path / f"{ARCH}.json")
    torch.manual_seed(3)
    model, _, preprocess = open_clip.create_model_and_transforms(ARCH)
    model.eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    report = run_evaluation(_config(tin_captions, None, model=f"open_clip:{ARCH}:{tmp_path / 'weights.pt'}"))

    entries = json.loads((tin_captions / "dataset_flickr30k.json").read_text())["images"]
    tokenizer = open_clip.get_tokenizer(ARCH)
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.open(tin_captions / "flickr30k-images" / e["filename"]).convert("RGB"))
                              for e in entries])
        images = model.encode_image(pixels, normalize=True).numpy()
        captions = [s["raw"] for e in entries for s in e["sentences"]]
        texts = model.encode_text(tokenizer(captions), normalize=True).numpy()
    owner = [i for i, e in enumerate(entries) for _ in e["sentences"]]
    expected = _direct_recall(images, texts, owner)
    got = report["metrics"]["clean"]["recall"]
    for direction, values in expected.items():
        assert [got[direction][f"r@{k}"] for k in (1, 5, 10)] == pytest.approx(values, abs=1e-9)
    assert report["task"] == "retrieval" and report["dataset"]["n_captions"] == len(captions)


@pytest.fixture(scope="module")
def attacked(tin_captions, tmp_path_factory):
    output = tmp_path_factory.mktemp("retrieval_run") / "r.json"
    report = run_evaluation(_config(tin_captions, output, attacks=ATTACKS))
    return report, output


def test_every_attack_reports_recall_and_success_rate_inside_its_threat_model(attacked):
    report, output = attacked
    assert json.loads(output.read_text())["metrics"] == json.loads(json.dumps(report["metrics"]))
    blocks = report["metrics"]["attacks"]
    assert list(blocks) == ATTACKS.split(",")
    for name, block in blocks.items():
        assert set(block["recall"]) == {"text_to_image", "image_to_text", "mean"}
        assert set(block["attack_success_rate"]["text_to_image"]) >= {"asr@1", "asr@5", "asr@10"}
        if block["modality"] != "text":
            assert block["ball_check"]["n_outside_ball"] == 0 and block["ball_check"]["n_out_of_box"] == 0
            assert block["ball_check"]["max_norm"] <= 8 / 255 + 1e-6
        if block["modality"] != "image":
            assert block["counts"]["captions_changed"] > 0, name
    assert report["unreliable"] is False and "attack_success_rate" in report["metric_definitions"]
    assert not Path(str(output) + ".state.pt").exists()


def test_resumed_run_equals_uninterrupted(attacked, tin_captions, tmp_path):
    report, _ = attacked
    output = tmp_path / "r.json"

    def stop(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_evaluation(_config(tin_captions, output, attacks=ATTACKS), after_batch=stop)
    assert Path(str(output) + ".state.pt").exists()
    resumed = run_evaluation(_config(tin_captions, output, attacks=ATTACKS))
    assert resumed["resume"]["resumed_from_position"] == 3
    for name, block in report["metrics"]["attacks"].items():
        assert resumed["metrics"]["attacks"][name]["recall"] == block["recall"], name


#: every attack with random parts (starts, APGD-T restarts, SGA noise, typo candidates) and one per kind
STREAM_ATTACKS = "pgd,apgd,typo,co-attack,sga"


def test_per_image_and_per_caption_results_do_not_depend_on_the_batch_size(tin_captions):
    """Each image's randomness comes from its own stream (seed, dataset index, attack), so batches of 2 and
    of 4 images give every caption and every image the same rank, hence the same recalls and success rates."""
    small, large = (run_evaluation(_config(tin_captions, None, attacks=STREAM_ATTACKS, batch_size=b, steps=3))
                    for b in (2, 4))
    assert small["per_query"] == large["per_query"]
    assert len(small["per_query"]["clean"]["text_to_image"]) == small["dataset"]["n_captions"]
    assert len(small["per_query"]["clean"]["image_to_text"]) == small["dataset"]["n_images"]
    for name in STREAM_ATTACKS.split(","):
        got, want = small["metrics"]["attacks"][name], large["metrics"]["attacks"][name]
        assert got["recall"] == want["recall"] and got["attack_success_rate"] == want["attack_success_rate"], name
        assert got["counts"] == want["counts"], name
        assert small["per_query"][name] != small["per_query"]["clean"], f"{name} changed no rank: the test would prove little"


def test_transfer_crafts_on_the_source_model(tin_captions):
    from mmrobust.eval.retrieval import run_retrieval_evaluation

    config = _config(tin_captions, None, attacks="pgd,sga", n_samples=3)
    report = run_retrieval_evaluation(config, model=build_tiny(seed=0), source_model=build_tiny(seed=1))
    assert report["transfer"] is True and report["source_model"] is not None
    assert report["metrics"]["attacks"]["sga"]["ball_check"]["n_outside_ball"] == 0


def test_bad_options_fail_with_one_clear_error(tin_captions):
    with pytest.raises(ConfigError, match="unknown retrieval attack"):
        run_evaluation(_config(tin_captions, None, attacks="pgd,square"))
    with pytest.raises(ConfigError, match="--text-goal applies to none"):
        run_evaluation(_config(tin_captions, None, attacks="embed-sub", text_goal="embedding-cos"))
    with pytest.raises(ConfigError, match="unknown --task"):
        run_evaluation(_config(tin_captions, None, task="captioning"))
    with pytest.raises(ConfigError, match="only supported with --task retrieval"):
        run_evaluation(_config(tin_captions, None, task="classification", source_model="tiny"))


@pytest.mark.parametrize(("name", "goal"), [("pgd", None), ("co-attack", None), ("co-attack", "pair-similarity"),
                                          ("sga", None)])
def test_image_part_moves_images_away_from_their_captions(name, goal, tin_captions, tiny_model):
    """On the crafting model, each attack's adversarial images are less similar to their own captions."""
    from mmrobust.attacks.retrieval.base import RetrievalBatch, RetrievalContext, encode_captions, encode_images, flatten
    from mmrobust.attacks.retrieval.registry import RETRIEVAL_ATTACKS
    from mmrobust.data.retrieval_registry import load_retrieval_dataset
    from mmrobust.eval.retrieval_metrics import caption_owner

    data = load_retrieval_dataset("flickr30k", tin_captions)
    data.image_size = tiny_model.image_size
    texts = encode_captions(tiny_model, flatten(data.captions))
    owner = caption_owner(data.captions)
    ctx = RetrievalContext(tiny_model, data.captions, texts, owner, torch.device("cpu"), seed=0)
    options = {"eps": 8 / 255, "norm": "Linf", "steps": 5, "text_candidates": 3, "co_attack_text_goal": goal}
    attack = RETRIEVAL_ATTACKS[name].make(options)
    attack.prepare(ctx)
    images = data.images(range(len(data)))
    outcome = attack.attack_batch(RetrievalBatch(images, torch.arange(len(data)), data.captions, 0))

    def own_similarity(pixels: torch.Tensor) -> torch.Tensor:
        return (encode_images(tiny_model, pixels)[owner] * texts).sum(dim=1)

    assert float(own_similarity(outcome.adv_images).mean()) < float(own_similarity(images).mean())
    assert float((outcome.adv_images - images).abs().max()) <= 8 / 255 + 1e-6


def test_co_attack_text_goal_option_reaches_the_attack_and_bad_values_are_one_line(tin_captions, tmp_path):
    from typer.testing import CliRunner

    from mmrobust.cli.main import app

    base = ["eval", "--task", "retrieval", "-m", "tiny", "-d", "flickr30k", "--data-root", str(tin_captions),
            "-n", "2", "-b", "2", "--eps", "8", "--steps", "1", "--text-candidates", "2", "-q"]
    out = tmp_path / "co.json"
    ok = CliRunner().invoke(app, [*base, "-a", "co-attack", "--co-attack-text-goal", "pair-similarity", "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(out.read_text())["attack_options"]["co-attack"]["co_attack_text_goal"] == "pair-similarity"
    for extra, message in ((["-a", "co-attack", "--co-attack-text-goal", "bogus"], "unknown --co-attack-text-goal"),
                           (["-a", "pgd", "--co-attack-text-goal", "pair-similarity"], "applies to none")):
        bad = CliRunner().invoke(app, [*base, *extra, "-o", str(tmp_path / "bad.json")])
        assert bad.exit_code == 2 and message in bad.output and len(bad.output.strip().splitlines()) == 1
    assert not (tmp_path / "bad.json").exists()
