"""Shared fixtures: tiny models built in code and the real data in ``../shared/data`` (skipped if absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

#: where the real CIFAR-10 / Tiny-ImageNet files live; override with MMROBUST_SHARED_DATA
SHARED_DATA = Path(os.environ.get("MMROBUST_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    """One thread: the test models are tiny, where thread start-up costs more than it saves (measured:
    a tiny encode took ~400 ms on 2 threads of a loaded 2-core machine vs ~1.4 ms on one)."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _thread_count_restored():
    """A test that leaves torch on two threads changes every later result that is compared bit for bit, and a
    process forked after a two-thread OpenMP region can hang (libgomp is not fork-safe): fail it here."""
    yield
    leaked = torch.get_num_threads()
    torch.set_num_threads(1)
    assert leaked == 1, f"this test left torch at {leaked} threads"


@pytest.fixture
def tiny_model():
    """A fresh random tiny CLIP (fp32, eval mode, CPU) — chance accuracy, for code paths only."""
    from mmrobust.models.tiny import build_tiny

    return build_tiny(seed=0)


@pytest.fixture(scope="session")
def tiny_mlm_folder(tmp_path_factory) -> Path:
    """A saved random masked LM over a small word vocabulary (``mlm_test_models``), for BERT-Attack paths."""
    from mlm_test_models import save_tiny_mlm

    return save_tiny_mlm(tmp_path_factory.mktemp("tiny-mlm"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MMROBUST_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cifar10_root(shared_data: Path) -> Path:
    if not (shared_data / "cifar-10-batches-py").is_dir():
        pytest.skip(f"CIFAR-10 not found under {shared_data}")
    return shared_data


@pytest.fixture(scope="session")
def tinyimagenet_root(shared_data: Path) -> Path:
    if not (shared_data / "tiny-imagenet-200").is_dir():
        pytest.skip(f"Tiny-ImageNet-200 not found under {shared_data}")
    return shared_data


@pytest.fixture(scope="session")
def tin_captions(tmp_path_factory, shared_data) -> Path:
    """"Tiny-ImageNet WordNet captions": 6 real Tiny-ImageNet val photos, 3 captions each from WordNet names."""
    from mmrobust.data.retrieval_fixture import build_retrieval_fixture

    if not (shared_data / "tiny-imagenet-200").is_dir():
        pytest.skip(f"Tiny-ImageNet-200 not found under {shared_data}")
    folder = tmp_path_factory.mktemp("tin_captions")
    build_retrieval_fixture(shared_data, folder, n_images=6, captions_per_image=3, seed=1)
    return folder


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``slow`` studies and builds run for as long as they need: the suite's hang timeout is for the rest."""
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.timeout(0))
