"""Checkpoints, Hugging Face folders and cached proxies are checked before anything is allocated (issue 22).

A tampered config (tower widths of 10^9 or 10^5) must be refused in one line while the loading process
stays under 1 GB of peak RSS (measured in a child process); unknown, missing, reshaped or non-float
tensors, a truncated file and an absurd header length are refused with their own one-line message.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import torchvision_shim  # noqa: F401  (before anything imports torchvision)
from mmrobust.errors import ModelLoadError
from mmrobust.models import load_model, save_checkpoint
from mmrobust.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, file_sha256
from mmrobust.models.tiny import build_tiny
from mmrobust.models.weights_check import MAX_HEADER_BYTES, TensorSpec, check_tensors, read_header

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
#: peak resident memory a refused load may reach (the child imports torch, and transformers for hf:)
RSS_CEILING_KB = 1024 * 1024
ABSURD = 1 << 60

#: the child: the real ``mmrobust`` command (after the torchvision shim), printing its own peak RSS (KB) at exit
CHILD = """
import atexit, resource, sys
sys.path[:0] = [{src!r}, {tests!r}]
import torchvision_shim
atexit.register(lambda: print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
from mmrobust.cli.main import app
sys.argv = ["mmrobust", *sys.argv[1:]]
app()
"""


def _eval_in_child(spec: str, out: Path) -> tuple[int, str, int]:
    """(exit status, stderr, peak RSS in KB) of ``mmrobust eval --model spec`` in a fresh interpreter."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = ["eval", "--model", spec, "--dataset", "digits", "-n", "4", "--quiet", "--output", str(out)]
    done = subprocess.run([sys.executable, "-c", CHILD.format(src=str(SRC), tests=str(TESTS)), *args],
                          capture_output=True, text=True, timeout=300, env=env)
    return done.returncode, done.stderr.strip(), int(done.stdout.strip().splitlines()[-1])


def _refused(spec: str) -> str:
    with pytest.raises(ModelLoadError) as caught:
        load_model(spec)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------- tampering helpers
def _edit_json(path: Path, keys: list[str], value: Any) -> None:
    data = json.loads(path.read_text())
    node = data
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    path.write_text(json.dumps(data))


def _rewrite_weights(weights: Path, tensors: dict[str, torch.Tensor], config: Path | None = None) -> None:
    """Write other tensors into the file; with ``config``, record their sha256 (a consistent tamper)."""
    save_file(tensors, str(weights))
    if config is not None:
        _edit_json(config, ["weights_sha256"], file_sha256(weights))


def _truncate(weights: Path, n: int = 100) -> tuple[int, int]:
    """Cut ``n`` bytes off the end; (bytes the tensors need, bytes left) as the refusal will state them."""
    data = weights.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    weights.write_bytes(data[:-n])
    return len(data) - header, len(data) - header - n


def _absurd_header(weights: Path) -> None:
    data = bytearray(weights.read_bytes())
    data[:8] = ABSURD.to_bytes(8, "little")
    weights.write_bytes(bytes(data))


def _absurd_message(weights: Path) -> str:
    return (f"weights {weights} declare an absurd header length of {ABSURD} bytes (the ceiling is "
            f"{MAX_HEADER_BYTES}); the file is corrupt or not safetensors")


# ---------------------------------------------------------------------- ckpt: folders
@pytest.fixture(scope="module")
def saved_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(build_tiny(seed=0), tmp_path_factory.mktemp("saved") / "ckpt")


@pytest.fixture
def ckpt(saved_ckpt: Path, tmp_path: Path) -> Path:
    """A fresh copy of the saved tiny checkpoint, to tamper with."""
    return Path(shutil.copytree(saved_ckpt, tmp_path / "ckpt"))


def _ckpt_width_refusal(folder: Path, width: int) -> str:
    if width > 65536:
        return (f"checkpoint {folder} declares an implausible width: architecture.image_tower.width = {width} "
                "(the ceiling is 65536); refusing to build it")
    return f"checkpoint {folder}: tensor 'image_tower.cls_token' has shape [64] but the declared architecture needs [{width}]"


@pytest.mark.parametrize("width", [10**9, 10**5, 65536])
def test_huge_declared_width_is_refused_in_one_line_under_1gb(ckpt: Path, width: int) -> None:
    """10^9 and 10^5 are above the ceiling; 65536 is not, so the meta-device build is what keeps RSS low
    (two such blocks built for real would need hundreds of GB)."""
    _edit_json(ckpt / CONFIG_NAME, ["architecture", "image_tower", "width"], width)
    _edit_json(ckpt / CONFIG_NAME, ["architecture", "text_tower", "width"], width)
    code, stderr, rss_kb = _eval_in_child(f"ckpt:{ckpt}", ckpt.parent / "report.json")
    print(f"ckpt width {width}: peak RSS {rss_kb / 1024:.0f} MB")
    assert (code, stderr) == (2, f"error: model 'ckpt:{ckpt}': {_ckpt_width_refusal(ckpt, width)}")
    assert rss_kb < RSS_CEILING_KB and not (ckpt.parent / "report.json").exists()


def test_plausible_width_that_the_weights_lack_is_refused_before_building(ckpt: Path) -> None:
    _edit_json(ckpt / CONFIG_NAME, ["architecture", "image_tower", "width"], 4096)
    assert _refused(f"ckpt:{ckpt}") == (
        f"model 'ckpt:{ckpt}': checkpoint {ckpt}: tensor 'image_tower.cls_token' has shape [64] "
        "but the declared architecture needs [4096]")


def test_too_many_layers_and_a_non_number_are_refused(ckpt: Path) -> None:
    _edit_json(ckpt / CONFIG_NAME, ["architecture", "text_tower", "layers"], 10**9)
    assert _refused(f"ckpt:{ckpt}") == (
        f"model 'ckpt:{ckpt}': checkpoint {ckpt} declares an implausible layer count: "
        f"architecture.text_tower.layers = {10**9} (the ceiling is 1024); refusing to build it")
    _edit_json(ckpt / CONFIG_NAME, ["architecture", "text_tower", "layers"], "2")
    assert _refused(f"ckpt:{ckpt}") == (
        f"model 'ckpt:{ckpt}': checkpoint {ckpt} declares architecture.text_tower.layers = '2', "
        "which is not a layer count")


def _ckpt_rows() -> list[tuple[str, Any, str]]:
    """(row id, how to change the tensors, expected message after ``checkpoint {folder}``)."""
    return [
        ("unknown key", lambda t: {**t, "extra.weight": torch.zeros(2)},
         " has 1 unknown tensor that the declared architecture does not have: 'extra.weight'"),
        ("missing tensors", lambda t: {k: v for k, v in t.items() if k not in ("log_logit_scale", "text_projection.weight")},
         " lacks 2 tensors that the declared architecture needs: 'log_logit_scale', 'text_projection.weight'"),
        ("shape mismatch", lambda t: {**t, "text_projection.weight": torch.zeros(64, 32)},
         ": tensor 'text_projection.weight' has shape [64, 32] but the declared architecture needs [64, 64]"),
        ("dtype not float", lambda t: {**t, "log_logit_scale": torch.tensor(3, dtype=torch.int64)},
         ": tensor 'log_logit_scale' is stored as I64, not a float dtype (F16, BF16, F32, F64)"),
    ]


@pytest.mark.parametrize("change, expected", [row[1:] for row in _ckpt_rows()], ids=[row[0] for row in _ckpt_rows()])
def test_weights_that_do_not_fit_the_declared_architecture_are_refused(ckpt: Path, change: Any, expected: str) -> None:
    weights = ckpt / WEIGHTS_NAME
    _rewrite_weights(weights, change(load_file(str(weights))), ckpt / CONFIG_NAME)
    assert _refused(f"ckpt:{ckpt}") == f"model 'ckpt:{ckpt}': checkpoint {ckpt}{expected}"


def test_truncated_and_absurd_header_files_are_refused(ckpt: Path) -> None:
    weights = ckpt / WEIGHTS_NAME
    saved = weights.read_bytes()
    need, left = _truncate(weights)
    assert _refused(f"ckpt:{ckpt}") == (f"model 'ckpt:{ckpt}': weights {weights} are truncated: the tensors need "
                                        f"{need} bytes of data but the file holds {left}")
    weights.write_bytes(saved[:5])
    assert _refused(f"ckpt:{ckpt}") == (f"model 'ckpt:{ckpt}': weights {weights} are truncated: 5 bytes, fewer than "
                                        "the 8-byte header length")
    weights.write_bytes(saved)
    _absurd_header(weights)
    assert _refused(f"ckpt:{ckpt}") == f"model 'ckpt:{ckpt}': {_absurd_message(weights)}"


def test_untampered_checkpoint_still_loads_bit_identically(ckpt: Path) -> None:
    original, reloaded = build_tiny(seed=0), load_model(f"ckpt:{ckpt}")
    for (name, a), (_, b) in zip(original.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_header_reader_rejects_overlaps_and_tolerates_unsaved_buffers(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(2), "b": torch.zeros(3)}, str(path))
    assert read_header(path) == {"a": TensorSpec((2,), "F32"), "b": TensorSpec((3,), "F32")}
    header = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(12))
    with pytest.raises(ModelLoadError, match=r"^weights .* have a corrupt header: tensor 'b' starts at byte 4, expected 8$"):
        read_header(path)
    found = {"w": TensorSpec((2,), "F32"), "position_ids": TensorSpec((1, 4), "I64")}
    check_tensors(found, {"w": TensorSpec((2,), "F32")}, "folder", ignorable=frozenset({"position_ids"}))


# ---------------------------------------------------------------------- hf: folders
@pytest.fixture(scope="module")
def transformers():
    try:
        import transformers as tf

        tf.CLIPModel  # noqa: B018  (the lazy attribute is the import that needs torchvision)
    except Exception as exc:
        pytest.skip(f"transformers' CLIP unusable here: {type(exc).__name__}: {exc}")
    return tf


@pytest.fixture(scope="module")
def saved_hf(transformers, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_pretrained folder of a tiny CLIPModel (no tokenizer: every refusal comes before it is read)."""
    config = transformers.CLIPConfig(
        text_config=dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2),
        projection_dim=16,
    )
    folder = tmp_path_factory.mktemp("hf") / "clip"
    transformers.CLIPModel(config).save_pretrained(folder)
    return folder


@pytest.fixture
def hf(saved_hf: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved_hf, tmp_path / "clip"))


def test_untampered_hf_folder_passes_the_check(transformers, hf: Path) -> None:
    from mmrobust.models.hf_adapter import check_folder

    check_folder(hf, transformers)


def _hf_width_refusal(folder: Path, width: int) -> str:
    if width > 65536:
        return (f"{folder}/config.json declares an implausible width: vision_config.hidden_size = {width} "
                "(the ceiling is 65536); refusing to build it")
    return (f"Hugging Face model folder {folder}: tensor 'vision_model.embeddings.class_embedding' has shape [32] "
            f"but the declared architecture needs [{width}]")


@pytest.mark.parametrize("width", [10**9, 10**5, 65536])
def test_hf_folder_with_huge_width_is_refused_in_one_line_under_1gb(hf: Path, width: int) -> None:
    _edit_json(hf / "config.json", ["vision_config", "hidden_size"], width)
    code, stderr, rss_kb = _eval_in_child(f"hf:{hf}", hf.parent / "report.json")
    print(f"hf width {width}: peak RSS {rss_kb / 1024:.0f} MB")
    assert (code, stderr) == (2, f"error: model 'hf:{hf}': {_hf_width_refusal(hf, width)}")
    assert rss_kb < RSS_CEILING_KB and not (hf.parent / "report.json").exists()


def _hf_rows() -> list[tuple[str, Any, str]]:
    return [
        ("unknown key", lambda t: {**t, "vision_model.extra": torch.zeros(2)},
         " has 1 unknown tensor that the declared architecture does not have: 'vision_model.extra'"),
        ("missing tensor", lambda t: {k: v for k, v in t.items() if k != "logit_scale"},
         " lacks 1 tensor that the declared architecture needs: 'logit_scale'"),
        ("shape mismatch", lambda t: {**t, "visual_projection.weight": torch.zeros(16, 8)},
         ": tensor 'visual_projection.weight' has shape [16, 8] but the declared architecture needs [16, 32]"),
    ]


@pytest.mark.parametrize("change, expected", [row[1:] for row in _hf_rows()], ids=[row[0] for row in _hf_rows()])
def test_hf_weights_that_do_not_fit_config_json_are_refused(transformers, hf: Path, change: Any, expected: str) -> None:
    weights = hf / "model.safetensors"
    _rewrite_weights(weights, change(load_file(str(weights))))
    assert _refused(f"hf:{hf}") == f"model 'hf:{hf}': Hugging Face model folder {hf}{expected}"


def test_hf_truncated_and_absurd_header_files_are_refused(transformers, hf: Path) -> None:
    weights = hf / "model.safetensors"
    saved = weights.read_bytes()
    need, left = _truncate(weights)
    assert _refused(f"hf:{hf}") == (f"model 'hf:{hf}': weights {weights} are truncated: the tensors need "
                                    f"{need} bytes of data but the file holds {left}")
    weights.write_bytes(saved)
    _absurd_header(weights)
    assert _refused(f"hf:{hf}") == f"model 'hf:{hf}': {_absurd_message(weights)}"


def test_hf_checkpoint_of_tampered_config_is_refused(transformers, saved_hf: Path, tmp_path: Path) -> None:
    """``ckpt:`` of a transformers model: the CLIP config inside mmrobust.json is checked the same way."""
    from mmrobust.models.hf_adapter import HFCLIP

    model = HFCLIP(transformers.CLIPModel.from_pretrained(saved_hf), _tiny_tokenizer(transformers), "hf", {})
    folder = save_checkpoint(model, tmp_path / "ckpt")
    _edit_json(folder / CONFIG_NAME, ["hf", "clip_config", "text_config", "num_hidden_layers"], 10**9)
    assert _refused(f"ckpt:{folder}") == (
        f"model 'ckpt:{folder}': checkpoint {folder} declares an implausible layer count: "
        f"hf.clip_config.text_config.num_hidden_layers = {10**9} (the ceiling is 1024); refusing to build it")


def _tiny_tokenizer(transformers) -> Any:
    """A CLIP tokenizer over single bytes only (enough to save and reload a checkpoint)."""
    from test_hf_adapter import _tiny_tokenizer as tiny

    return tiny(transformers)


# ---------------------------------------------------------------------- the proxy cache
def _fake_cache_entry(cache: Path, name: str, overrides: dict | None = None) -> Path:
    """A complete-looking cache entry holding the tiny model (so no proxy has to be built here)."""
    from mmrobust.proxy import CacheEntry, get_recipe
    from mmrobust.proxy.fingerprint import probe_fingerprint

    recipe = get_recipe(name, overrides)
    entry = CacheEntry.of(recipe, 0, cache)
    model = build_tiny(seed=0)
    save_checkpoint(model, entry.model_dir)
    manifest = {"complete": True, "recipe_hash": recipe.config_hash(), "probe": probe_fingerprint(model, [["a"], ["b"]]),
                "weights_sha256": json.loads((entry.model_dir / CONFIG_NAME).read_text())["weights_sha256"]}
    entry.manifest_path.write_text(json.dumps(manifest))
    return entry.model_dir


def _consistent_extra_tensor(model_dir: Path) -> None:
    """Add a tensor and record the new sha256 in the config and the manifest: only the header check sees it."""
    weights = model_dir / WEIGHTS_NAME
    _rewrite_weights(weights, {**load_file(str(weights)), "extra.weight": torch.zeros(2)}, model_dir / CONFIG_NAME)
    _edit_json(model_dir.parent / "manifest.json", ["weights_sha256"], file_sha256(weights))


def test_damaged_data_proxy_is_refused_in_one_line_naming_the_rebuild(tmp_path: Path) -> None:
    """tinyimagenet cannot rebuild itself (it needs the data): a damaged entry is refused, never used."""
    from mmrobust.proxy import CacheEntry, get_recipe, load_proxy

    model_dir = _fake_cache_entry(tmp_path, "tinyimagenet")
    assert load_proxy("tinyimagenet", cache_dir=tmp_path).image_size == 32  # the fake entry itself is usable
    build = f"mmrobust proxy build tinyimagenet --data-root DIR --cache-dir {tmp_path}"
    weights = model_dir / WEIGHTS_NAME
    need, left = _truncate(weights)
    with pytest.raises(ModelLoadError) as caught:
        load_proxy("tinyimagenet", cache_dir=tmp_path)
    assert str(caught.value) == (f"proxy:tinyimagenet (seed 0) in {tmp_path} is corrupt (weights {weights} are "
                                 f"truncated: the tensors need {need} bytes of data but the file holds {left}); "
                                 f"build it with `{build}`")
    assert CacheEntry.of(get_recipe("tinyimagenet"), 0, tmp_path).check()[0] == "corrupt"  # `proxy build` redoes it

    _fake_cache_entry(tmp_path, "tinyimagenet")
    _edit_json(model_dir / CONFIG_NAME, ["architecture", "image_tower", "width"], 10**9)
    with pytest.raises(ModelLoadError) as caught:
        load_proxy("tinyimagenet", cache_dir=tmp_path)
    assert str(caught.value) == (f"proxy:tinyimagenet (seed 0) in {tmp_path} is corrupt (checkpoint {model_dir} "
                                 f"declares an implausible width: architecture.image_tower.width = {10**9} (the "
                                 f"ceiling is 65536); refusing to build it); build it with `{build}`")

    _fake_cache_entry(tmp_path, "tinyimagenet")
    _consistent_extra_tensor(model_dir)
    with pytest.raises(ModelLoadError) as caught:
        load_proxy("tinyimagenet", cache_dir=tmp_path)
    assert str(caught.value) == (f"checkpoint {model_dir} has 1 unknown tensor that the declared architecture "
                                 f"does not have: 'extra.weight'; rebuild it with `{build} --force`")


def _truncated_reason(model_dir: Path) -> str:
    need, left = _truncate(model_dir / WEIGHTS_NAME)
    return f"weights {model_dir / WEIGHTS_NAME} are truncated: the tensors need {need} bytes of data but the file holds {left}"


def _extra_tensor_reason(model_dir: Path) -> str:
    _consistent_extra_tensor(model_dir)
    return f"checkpoint {model_dir} has 1 unknown tensor that the declared architecture does not have: 'extra.weight'"


@pytest.mark.parametrize("damage", [_truncated_reason, _extra_tensor_reason], ids=["truncated", "unknown tensor"])
def test_damaged_embedded_proxy_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str], damage: Any) -> None:
    """digits builds itself: a damaged cached weight file is rebuilt (the reason is printed), then loads."""
    from mmrobust.proxy import RECIPES, CacheEntry, get_recipe, load_proxy
    from test_proxy import SHRUNK

    reason = damage(_fake_cache_entry(tmp_path, "digits", SHRUNK))
    monkeypatch.setitem(RECIPES, "digits", get_recipe("digits", SHRUNK))
    model = load_proxy("digits", cache_dir=tmp_path)
    err = capsys.readouterr().err
    assert f"mmrobust: proxy:digits cache entry is unusable ({reason}); rebuilding it now into {tmp_path}" in err
    assert model.image_size == SHRUNK["image_size"]
    assert CacheEntry.of(get_recipe("digits", SHRUNK), 0, tmp_path).check()[0] == "ready"
