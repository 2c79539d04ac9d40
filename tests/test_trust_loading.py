"""Loading never runs code and never coerces: crafted pickles, bad pixels/labels, bombs and odd-sized images
are one error naming the file (issue 9, item 1), and dropped data is announced (item 7)."""

from __future__ import annotations

import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmrobust.data.cifar import load_cifar10
from mmrobust.data.image_folder import load_image_folder
from mmrobust.data.safe_pickle import load_restricted
from mmrobust.data.tiny_imagenet import load_tiny_imagenet
from mmrobust.errors import DatasetError

NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


class WritesMarker:
    """What an attacker would ship: unpickling it calls ``Path.write_text`` (any callable would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def _cifar(root: Path, batch: object, meta: object | None = None) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "batches.meta").write_bytes(pickle.dumps(meta if meta is not None else {b"label_names": NAMES}))
    (folder / "test_batch").write_bytes(batch if isinstance(batch, bytes) else pickle.dumps(batch, protocol=2))
    return folder


def _batch(n: int = 4, data: object = None, labels: object = None) -> dict:
    return {b"data": np.zeros((n, 3072), np.uint8) if data is None else data,
            b"labels": list(range(n)) if labels is None else labels}


def _refused(root: Path, *fragments: str) -> str:
    with pytest.raises(DatasetError) as info:
        load_cifar10(root)
    message = str(info.value)
    assert "\n" not in message and ("test_batch" in message or "batches.meta" in message), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_pickle_with_reduce_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    _cifar(tmp_path, {b"data": WritesMarker(marker), b"labels": [0]})
    _refused(tmp_path, "could run code")
    assert not marker.exists()


def test_a_pickle_naming_an_unknown_module_imports_nothing(tmp_path):
    # protocol-0 GLOBAL of a module that does not exist: refused by name, never imported
    raw = b"cno_such_module_mmrobust\nthing\n(tR."
    _cifar(tmp_path, raw)
    _refused(tmp_path, "no_such_module_mmrobust.thing")


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_official_contents_load_under_every_protocol(tmp_path, protocol):
    data = np.arange(4 * 3072, dtype=np.int64).reshape(4, 3072) % 256
    folder = _cifar(tmp_path, b"")
    (folder / "test_batch").write_bytes(pickle.dumps(_batch(data=data.astype(np.uint8)), protocol=protocol))
    ds = load_cifar10(tmp_path)
    assert len(ds) == 4 and ds.labels.tolist() == [0, 1, 2, 3]


def test_restricted_unpickler_refuses_object_arrays_and_codecs():
    with pytest.raises(pickle.UnpicklingError):
        load_restricted(pickle.dumps(np.array([1, "x"], dtype=object), protocol=2))
    evil = b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00hiX\x04\x00\x00\x00zlib\x86R."
    with pytest.raises(pickle.UnpicklingError, match="latin1"):
        load_restricted(evil)


@pytest.mark.parametrize("data, fragment", [
    (np.full((4, 3072), 0.5, dtype=np.float32), "float32"),
    (np.full((4, 3072), 300, dtype=np.int64), "outside 0..255"),
    (np.full((4, 3072), -1, dtype=np.int16), "outside 0..255"),
])
def test_pixels_are_refused_not_wrapped(tmp_path, data, fragment):
    _cifar(tmp_path, _batch(data=data))
    _refused(tmp_path, fragment)


@pytest.mark.parametrize("labels, fragment", [
    ([0, 1, 3.7, 2], "3.7"), ([0, "cat", 1, 2], "'cat'"), ([0, None, 1, 2], "None"), ([0, True, 1, 2], "True"),
    ([0, 1, 2, 10], "outside 0..9"), ([0, 1, 2, -1], "outside 0..9"), ("0123", "expected a list"),
])
def test_labels_are_refused_not_coerced(tmp_path, labels, fragment):
    _cifar(tmp_path, _batch(labels=labels))
    _refused(tmp_path, fragment)


def test_bad_class_names_are_one_line(tmp_path):
    _cifar(tmp_path, _batch(), meta={b"label_names": [None] * 10})
    _refused(tmp_path, "label_names")


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature, IHDR (1-bit grey) and a token IDAT: enough for a decoder to learn the size."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _tiny_imagenet(root: Path, sizes: dict[str, tuple[int, int]], annotations: str | None = None) -> Path:
    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("n01\nn02\n")
    (folder / "words.txt").write_text("n01\tgoldfish\nn02\tcat\n")
    for name, size in sizes.items():
        Image.new("RGB", size, (10, 20, 30)).save(folder / "val" / "images" / name)
    if annotations is None:
        annotations = "".join(f"{name}\tn0{1 + i % 2}\t0\t0\t1\t1\n" for i, name in enumerate(sizes))
    (folder / "val" / "val_annotations.txt").write_text(annotations)
    return folder


def test_tiny_imagenet_image_of_another_size_names_the_file(tmp_path):
    _tiny_imagenet(tmp_path, {"val_0.JPEG": (64, 64), "val_1.JPEG": (50, 64)})
    ds = load_tiny_imagenet(tmp_path, "val")
    assert ds[0][0].shape == (3, 64, 64)
    with pytest.raises(DatasetError, match=r"val_1\.JPEG is 50x64, expected 64x64"):
        ds[1]


@pytest.mark.parametrize("side", [9000, 20000])  # under Pillow's own hard limit (our check) and over it
def test_decompression_bomb_is_one_line_naming_the_file(tmp_path, side):
    (tmp_path / "cls").mkdir()
    bomb = tmp_path / "cls" / "bomb.png"
    bomb.write_bytes(_png_header(side, side))  # 60 bytes declaring up to 400 megapixels
    ds = load_image_folder(tmp_path, image_size=32)
    with pytest.raises(DatasetError, match="bomb.png is too large to decode safely"):
        ds[0]


def test_dropped_annotation_lines_and_unannotated_images_are_announced(tmp_path, capsys):
    sizes = {"val_0.JPEG": (64, 64), "val_1.JPEG": (64, 64), "val_2.JPEG": (64, 64)}
    _tiny_imagenet(tmp_path, sizes, annotations="val_0.JPEG\tn01\t0\t0\t1\t1\nbroken line\n")
    assert len(load_tiny_imagenet(tmp_path, "val")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "skipped 1 malformed line" in err[0] and "line 2" in err[0]
    assert "2 image(s)" in err[1] and "val_1.JPEG" in err[1]


def test_empty_class_folder_is_announced(tmp_path, capsys):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "cat" / "a.png")
    ds = load_image_folder(tmp_path, image_size=8)
    assert ds.classes == ["cat", "dog"] and len(ds) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dog" in err[0] and "no images" in err[0]
