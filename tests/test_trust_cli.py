"""Every bad value of every option, and every bad input file, is one line and exit 2 (issue 9, items 1, 3, 4).

Black-box through the real CLI (in-process ``CliRunner``): each row must exit 2 with at most two lines on stderr,
no traceback, and no partial output. The probe table (issue 22, deliverable 4: crafted webdataset folders,
Karpathy JSON, templates, cache folder and HOME, output paths) also pins each error line's exact text; two live
benchmark processes on one folder check the folder lock and the cell claims.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrobust.cli.main import app

EVAL = "eval -m tiny -d digits -n 4 -q --no-sanity -o {out}"
TRAIN = "train -m tiny --method tecoa -d digits -q -o {run} --epochs 1 --n-train 8 --n-eval 4 --steps 1"
STUDY = "study {name} -o {run} -m tiny -q -n 4"
DEMO = "demo -o {run} -q"


# ------------------------------------------------------------------------------------------- bad input files
def _cifar(tmp: Path, batch: object) -> None:
    folder = tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"c{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    (folder / "test_batch").write_bytes(batch if isinstance(batch, bytes) else pickle.dumps(batch, protocol=2))


class _Marker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "code ran"))


def _pixels(n: int = 4) -> np.ndarray:
    return np.zeros((n, 3072), np.uint8)


def _tiny_imagenet(tmp: Path, odd: bool = False) -> None:
    from PIL import Image

    folder = tmp / "data" / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("n01\nn02\n")
    (folder / "words.txt").write_text("n01\tgoldfish\nn02\tcat\n")
    lines = []
    for i in range(4):
        size = (48, 64) if odd and i == 2 else (64, 64)
        Image.new("RGB", size).save(folder / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\tn0{1 + i % 2}\t0\t0\t1\t1\n")
    (folder / "val" / "val_annotations.txt").write_text("".join(lines))


def _bomb(tmp: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    (tmp / "data" / "cls").mkdir(parents=True)
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    (tmp / "data" / "cls" / "bomb.png").write_bytes(png)


def _resume_state(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    """Interrupt a real robust eval after its first batch, then hand-edit its state file."""
    def setup(tmp: Path) -> None:
        from mmrobust.eval.resume import state_path_for
        from mmrobust.eval.run import EvalConfig, run_evaluation

        class Stop(Exception):
            pass

        def stop(done: int) -> None:
            raise Stop

        config = EvalConfig(model="tiny", dataset="digits", n_samples=8, batch_size=4, attacks="fgsm", eps=4 / 255,
                            progress=False, output=str(tmp / "out.json"), sanity=False)
        with pytest.raises(Stop):
            run_evaluation(config, after_batch=stop)
        path = state_path_for(tmp / "out.json")
        state = json.loads(path.read_text())
        path.write_text(json.dumps(edit(state)))
    return setup


RESUMED = "eval -m tiny -d digits -n 8 -b 4 -a fgsm --eps 4 -q --no-sanity -o {out}"


def _set(**changes):
    return lambda state: {**state, **changes}


# ------------------------------------------------------------------------------------------------ the table
#: (id, command line, setup(tmp) or None, marks)
CASES: list[tuple[str, str, Callable[[Path], None] | None, tuple]] = [
    # eval: sizes, seeds, devices, data, templates
    ("eval-batch-size-0", EVAL + " -b 0", None, ()),
    ("eval-batch-size-neg", EVAL + " -b -3", None, ()),
    ("eval-batch-size-text", EVAL + " -b abc", None, ()),
    ("eval-n-0", EVAL + " -n 0", None, ()),
    ("eval-n-neg", EVAL + " -n -5", None, ()),
    ("eval-n-classes-1", EVAL + " --n-classes 1", None, ()),
    ("eval-n-classes-huge", EVAL + " --n-classes 1000", None, ()),
    ("eval-seed-neg", EVAL + " --seed -1", None, ()),
    ("eval-ensemble-bad", EVAL + " -a pgd --ensemble all", None, ()),
    ("eval-precision-bad", EVAL + " -a pgd --precision fp8", None, ()),
    ("eval-precision-text-only", EVAL + " -a embed-sub --precision bf16", None, ()),
    ("eval-seed-huge", EVAL + " --seed 99999999999999999999", None, ()),
    ("eval-device", EVAL + " --device nope", None, ()),
    ("eval-device-absent", EVAL + " --device cuda:7", None, ()),
    ("eval-split", EVAL + " --split nope", None, ()),
    ("eval-dataset", EVAL + " -d nope", None, ()),
    ("eval-model", EVAL + " -m nope:x", None, ()),
    ("eval-templates-missing", EVAL + " --templates {tmp}/missing.txt", None, ()),
    ("eval-templates-latin1", EVAL + " --templates {tmp}/t.txt",
     lambda t: (t / "t.txt").write_bytes(b"a photo of a {}\n\xe9t\xe9 {}\n"), ()),
    ("eval-logit-scale-neg", EVAL + " --logit-scale -100", None, ()),
    ("eval-logit-scale-nan", EVAL + " --logit-scale nan", None, ()),
    ("eval-data-root-missing", EVAL + " -d cifar10 --data-root {tmp}/nope", None, ()),
    # eval: attacks and their options
    ("eval-attack-unknown", EVAL + " -a nope", None, ()),
    ("eval-attack-empty-list", EVAL + " -a ,", None, ()),
    ("eval-eps-without-attack", EVAL + " --eps 4", None, ()),
    ("eval-eps-neg", EVAL + " -a pgd --eps -1", None, ()),
    ("eval-eps-nan", EVAL + " -a pgd --eps nan", None, ()),
    ("eval-eps-huge", EVAL + " -a pgd --eps 1e9", None, ()),
    ("eval-norm", EVAL + " -a pgd --eps 4 --norm l7", None, ()),
    ("eval-steps-0", EVAL + " -a pgd --eps 4 --steps 0", None, ()),
    ("eval-alpha-neg", EVAL + " -a pgd --eps 4 --alpha -1", None, ()),
    ("eval-restarts-0", EVAL + " -a apgd --eps 4 --restarts 0", None, ()),
    ("eval-square-queries-0", EVAL + " -a square --eps 4 --square-queries 0", None, ()),
    ("eval-square-queries-neg", EVAL + " -a square --eps 4 --square-queries -1", None, ()),
    ("eval-text-words-0", EVAL + " -a typo --text-words 0", None, ()),
    ("eval-text-candidates-0", EVAL + " -a typo --text-candidates 0", None, ()),
    ("eval-mlm-missing", EVAL + " -a bert-attack --mlm {tmp}/none", None, ()),
    ("eval-text-attack", EVAL + " -a co-attack --eps 4 --text-attack nope", None, ()),
    ("eval-text-goal", EVAL + " -a typo --text-goal nope", None, ()),
    ("eval-text-goal-images-0", EVAL + " -a typo --text-goal zero-shot-margin --text-goal-images 0", None,
     ()),
    # eval: outputs
    ("eval-output-directory", "eval -m tiny -d digits -n 4 -q -o {tmp}", None, ()),
    ("eval-output-device", "eval -m tiny -d digits -n 4 -q -o {tmp}/fifo", lambda t: os.mkfifo(t / "fifo"), ()),
    # eval: data files (item 1)
    ("cifar-reduce-runs-code", EVAL + " -d cifar10 --data-root {tmp}/data",
     lambda t: _cifar(t, {b"data": _Marker(t / "pwned"), b"labels": [0]}), ()),
    ("cifar-unknown-module", EVAL + " -d cifar10 --data-root {tmp}/data",
     lambda t: _cifar(t, b"cno_such_module_mmrobust\nthing\n(tR."), ()),
    ("cifar-float-pixels", EVAL + " -d cifar10 --data-root {tmp}/data",
     lambda t: _cifar(t, {b"data": _pixels().astype(np.float64), b"labels": [0, 1, 2, 3]}), ()),
    ("cifar-label-3.7", EVAL + " -d cifar10 --data-root {tmp}/data",
     lambda t: _cifar(t, {b"data": _pixels(), b"labels": [0, 1, 3.7, 2]}), ()),
    ("cifar-label-string", EVAL + " -d cifar10 --data-root {tmp}/data",
     lambda t: _cifar(t, {b"data": _pixels(), b"labels": [0, 1, "cat", 2]}), ()),
    ("cifar-label-none", EVAL + " -d cifar10 --data-root {tmp}/data",
     lambda t: _cifar(t, {b"data": _pixels(), b"labels": [0, 1, None, 2]}), ()),
    ("cifar-label-range", EVAL + " -d cifar10 --data-root {tmp}/data",
     lambda t: _cifar(t, {b"data": _pixels(), b"labels": [0, 1, 10, 2]}), ()),
    ("tinyimagenet-odd-size", EVAL + " -d tinyimagenet --data-root {tmp}/data", lambda t: _tiny_imagenet(t, True), ()),
    ("imagefolder-bomb", EVAL + " -d imagefolder --data-root {tmp}/data", _bomb, ()),
    # eval: resume state (item 4)
    ("resume-next-position-huge", RESUMED, _resume_state(_set(next_position=10**6)), ()),
    ("resume-next-position-mid-batch", RESUMED, _resume_state(_set(next_position=2)), ()),
    ("resume-labels-edited", RESUMED, _resume_state(lambda s: {**s, "labels": [(v + 1) % 10 for v in s["labels"]]}),
     ()),
    ("resume-correct-as-ints", RESUMED, _resume_state(lambda s: {**s, "clean_correct": [1] * len(s["labels"])}), ()),
    ("resume-not-an-object", RESUMED, _resume_state(lambda s: [s]), ()),
    ("resume-unknown-field", RESUMED, _resume_state(_set(surprise=1)), ()),
    ("resume-future-version", RESUMED, _resume_state(_set(state_version=99)), ()),
    # train
    ("train-epochs-0", TRAIN + " --epochs 0", None, ()),
    ("train-precision-bad", TRAIN + " --precision half", None, ()),
    ("train-batch-size-0", TRAIN + " -b 0", None, ()),
    ("train-lr-nan", TRAIN + " --lr nan", None, ()),
    ("train-weight-decay-neg", TRAIN + " --weight-decay -1", None, ()),
    ("train-mode", TRAIN + " --train nope", None, ()),
    ("train-last-k-0", TRAIN + " --train last-k --last-k 0", None, ()),
    ("train-prompt-size-0", TRAIN + " --train prompt --prompt-size 0", None, ()),
    ("train-eps-0", TRAIN + " --eps 0", None, ()),
    ("train-eps-text", TRAIN + " --eps abc", None, ()),
    ("train-steps-0", TRAIN + " --steps 0", None, ()),
    ("train-text-attack", TRAIN + " --text-attack nope", None, ()),
    ("train-lambda-txt-nan", TRAIN + " --lambda-txt nan", None, ()),
    ("train-targets", TRAIN + " --targets nope", None, ()),
    ("train-n-eval-0", TRAIN + " --n-eval 0", None, ()),
    ("train-eval-attack", TRAIN + " --eval-attack nope", None, ()),
    ("train-checkpoint-every-neg", TRAIN + " --checkpoint-every -1", None, ()),
    ("train-seed-neg", TRAIN + " --seed -1", None, ()),
    ("train-device", TRAIN + " --device nope", None, ()),
    ("train-resume-nothing", TRAIN + " --resume", None, ()),
    ("train-split", TRAIN + " --train-split nope", None, ()),
    ("train-output-device", "train -m tiny --method clean -d digits -q -o {tmp}/fifo",
     lambda t: os.mkfifo(t / "fifo"), ()),
    # study
    ("study-eps-text", STUDY.format(name="eps", run="{run}") + " --eps abc", None, ()),
    ("study-eps-neg", STUDY.format(name="eps", run="{run}") + " --eps -1", None, ()),
    ("study-n-eval-0", STUDY.format(name="eps", run="{run}") + " -n 0", None, ()),
    ("study-batch-size-0", STUDY.format(name="eps", run="{run}") + " -b 0", None, ()),
    ("study-seed-neg", STUDY.format(name="eps", run="{run}") + " --seed -1", None, ()),
    ("study-image-attack", STUDY.format(name="eps", run="{run}") + " --image-attack nope", None, ()),
    ("study-text-goal", STUDY.format(name="eps", run="{run}") + " --text-goal nope", None, ()),
    ("study-dataset", STUDY.format(name="eps", run="{run}") + " -d nope", None, ()),
    ("study-classes-0", STUDY.format(name="classes", run="{run}") + " --classes 0", None, ()),
    ("study-shots-0", STUDY.format(name="train-size", run="{run}") + " --shots 0", None, ()),
    ("study-lambdas", STUDY.format(name="loss-ablation", run="{run}") + " --lambdas nope", None, ()),
    ("study-modes", STUDY.format(name="params", run="{run}") + " --modes nope", None, ()),
    ("study-output-device", "study eps -o {tmp}/fifo -m tiny -q", lambda t: os.mkfifo(t / "fifo"), ()),
    # proxy
    ("proxy-unknown", "proxy build nope --cache-dir {tmp}/cache", None, ()),
    ("proxy-seed-neg", "proxy build digits --seed -1 --cache-dir {tmp}/cache", None, ()),
    ("proxy-needs-data", "proxy build tinyimagenet --cache-dir {tmp}/cache", None, ()),
    ("proxy-data-root-missing", "proxy build tinyimagenet --data-root {tmp}/nope --cache-dir {tmp}/cache", None, ()),
    ("proxy-device", "proxy build digits --device nope --cache-dir {tmp}/cache", None, ()),
    # demo
    ("demo-methods", DEMO + " --methods nope", None, ()),
    ("demo-eps-neg", DEMO + " --eps -1", None, ()),
    ("demo-train-eps-0", DEMO + " --train-eps 0", None, ()),
    ("demo-n-eval-0", DEMO + " --n-eval 0", None, ()),  # validated after base_model/ is written
    ("demo-text-goal", DEMO + " --text-goal nope", None, ()),
    ("demo-model", DEMO + " -m nope:x", None, ()),
    ("demo-seed-neg", DEMO + " --seed -1", None, ()),
    ("demo-device", DEMO + " --device nope", None, ()),
    ("demo-epochs-0", DEMO + " --epochs 0", None, ()),
    ("demo-n-train-0", DEMO + " --n-train 0", None, ()),
    ("demo-lr-neg", DEMO + " --lr -1", None, ()),
    ("demo-output-device", "demo -o {tmp}/fifo -q", lambda t: os.mkfifo(t / "fifo"), ()),
]


def assert_one_line_error(result) -> None:
    """exit 2, at most two lines on stderr, no traceback (an exception other than SystemExit escaped)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {type(result.exception).__name__}: {result.exception}")
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output[-500:]}"
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    assert "Traceback" not in result.output


def produced_files(tmp: Path, before: set[Path]) -> list[Path]:
    """Files a failed run left behind (its report, checkpoint, table, temp or lock files)."""
    return sorted(p for p in tmp.rglob("*") if p.is_file() and p not in before)


@pytest.mark.parametrize("line, setup", [pytest.param(line, setup, id=case_id, marks=marks)
                                         for case_id, line, setup, marks in CASES])
def test_bad_value_is_one_line_and_exit_2(tmp_path, line, setup):
    if setup is not None:
        setup(tmp_path)
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    argv = line.format(out=tmp_path / "out.json", run=tmp_path / "run", tmp=tmp_path).split()
    result = CliRunner().invoke(app, argv)
    assert_one_line_error(result)
    assert produced_files(tmp_path, before) == []
    assert not (tmp_path / "pwned").exists()  # no code ran from a data file


# ============================================================================ probes (issue 22, deliverable 4)
# Each row: (id, command line, setup(tmp) or None, expected, env, marks). ``expected`` is the whole error line after
# ``error: `` ({tmp} = the test folder), or a callable ``check(tmp, result)`` for inputs that are accepted (then
# the run must succeed and produce a correct result). Every row also asserts: exactly one ``error:`` line (at most
# one informational line besides), no traceback, and nothing destroyed (every file that existed before is
# byte-identical afterwards; an error leaves no new file).

WDS = "eval -m tiny -d wds:{tmp}/wds -q --no-sanity -o {out}"
RETRIEVAL = "eval --task retrieval -m tiny -d flickr30k --data-root {tmp}/data -q --no-sanity -o {out}"
SHARD = "shard {tmp}/wds/test/0.tar: "


def _png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _member(name: str, data: bytes | None = None, kind: bytes = tarfile.REGTYPE, link: str = "",
            size: int | None = None) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if data is not None and size is None else (size or 0)
    return info, data


def _good_members(n: int = 4) -> list:
    return [m for i in range(n) for m in (_member(f"s{i}.png", _png_bytes()), _member(f"s{i}.cls", str(i % 2).encode()))]


def _tar_bytes(members: list) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None and info.isfile() else None)
    return buffer.getvalue()


def _wds(members: list | bytes | None = None, classes: bytes = b"zero\none\n", nshards: bytes = b"1\n") -> Callable:
    """A CLIP_benchmark folder ``tmp/wds`` (classnames, templates, test/nshards.txt, test/0.tar)."""
    def setup(tmp: Path) -> None:
        (tmp / "wds" / "test").mkdir(parents=True)
        (tmp / "wds" / "classnames.txt").write_bytes(classes)
        (tmp / "wds" / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
        (tmp / "wds" / "test" / "nshards.txt").write_bytes(nshards)
        shard = members if isinstance(members, bytes) else _tar_bytes(_good_members() if members is None else members)
        (tmp / "wds" / "test" / "0.tar").write_bytes(shard)
    return setup


RWDS = "eval --task retrieval -m tiny -d wds:{tmp}/rwds -q --no-sanity -o {out}"
RSHARD = "shard {tmp}/rwds/test/0.tar: "


def _caption_members(n: int = 2) -> list:
    return [m for i in range(n) for m in (_member(f"s{i}.png", _png_bytes()), _member(f"s{i}.txt", b"a small square"))]


def _rwds(members: list | bytes | None = None, nshards: bytes = b"1\n") -> Callable:
    """A CLIP_benchmark retrieval folder ``tmp/rwds`` (dataset_type.txt, test/nshards.txt, test/0.tar)."""
    def setup(tmp: Path) -> None:
        (tmp / "rwds" / "test").mkdir(parents=True)
        (tmp / "rwds" / "dataset_type.txt").write_text("retrieval\n")
        (tmp / "rwds" / "test" / "nshards.txt").write_bytes(nshards)
        shard = members if isinstance(members, bytes) else _tar_bytes(_caption_members() if members is None else members)
        (tmp / "rwds" / "test" / "0.tar").write_bytes(shard)
    return setup


def _huge_header(name: str) -> bytes:
    """A shard whose last member's header claims 10**12 bytes (the file holds a few hundred)."""
    good = _tar_bytes(_good_members(2))
    body = good[: 4 * 1024]  # s0.png, s0.cls, s1.png, s1.cls: four 512-byte headers + four 512-byte blocks
    header = _member(name, size=10**12)[0].tobuf(tarfile.GNU_FORMAT)
    return body + header + b"1" + b"\0" * 1535


def _truncated(cut: int) -> bytes:
    return _tar_bytes(_good_members(2))[:cut]


def _karpathy(images: object, files: tuple[str, ...] = ("a.jpg", "b.jpg")) -> Callable:
    """``tmp/data/dataset_flickr30k.json`` + ``tmp/data/flickr30k-images/``; ``tmp/secret.jpg`` lies outside."""
    def setup(tmp: Path) -> None:
        from PIL import Image

        (tmp / "data" / "flickr30k-images").mkdir(parents=True)
        for number, name in enumerate(files):
            Image.new("RGB", (8, 8), (40 * number, 5, 5)).save(tmp / "data" / "flickr30k-images" / name)
        Image.new("RGB", (8, 8)).save(tmp / "secret.jpg")
        text = json.dumps({"images": images(tmp) if callable(images) else images})
        (tmp / "data" / "dataset_flickr30k.json").write_text(text)
    return setup


def _image(filename: object, captions: tuple[str, ...] = ("a dog runs", "a cat sits"), **extra) -> dict:
    return {"filename": filename, "split": "test", "sentences": [{"raw": c} for c in captions], **extra}


def _text_file(name: str, text: str | bytes) -> Callable:
    def setup(tmp: Path) -> None:
        (tmp / name).write_bytes(text.encode() if isinstance(text, str) else text)
    return setup


def _both(*setups: Callable) -> Callable:
    def setup(tmp: Path) -> None:
        for one in setups:
            one(tmp)
    return setup


def _report(tmp: Path) -> dict:
    return json.loads((tmp / "out.json").read_text(encoding="utf-8"))


def _retrieval_counts(images: int, captions: int, skipped: int) -> Callable:
    def check(tmp: Path, result) -> None:
        data = _report(tmp)["dataset"]
        assert (data["n_images"], data["n_captions"], data["n_skipped_no_captions"]) == (images, captions, skipped)
    return check


def _classes_kept(names: list[str]) -> Callable:
    def check(tmp: Path, result) -> None:
        assert _report(tmp)["dataset"]["classes"] == names
    return check


def _tie_warned(warning: str, later: int) -> Callable:
    """The run succeeds, warns once (the exact line), and the later of the two equal names is never predicted."""
    def check(tmp: Path, result) -> None:
        lines = result.stderr.strip().splitlines()
        assert lines == ["warning: " + warning.replace("{tmp}", str(tmp))], result.stderr
        per_class = _report(tmp)["metrics"]["clean"]["per_class_accuracy"]
        assert per_class[later] in (0.0, None), per_class
    return check


def _proxy_lock(folder: str) -> str:
    from mmrobust.proxy import RECIPES
    from mmrobust.proxy.cache import CacheEntry

    return str(CacheEntry.of(RECIPES["digits"], 0, folder).lock_path)


def _file(tmp: Path) -> None:
    (tmp / "file").write_text("a regular file, kept as it is\n")


def _read_only_dir(tmp: Path) -> None:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)


def _root_writes_anyway() -> bool:
    """chmod 0555 does not stop root (CAP_DAC_OVERRIDE): such rows are skipped there, with this reason."""
    return hasattr(os, "geteuid") and os.geteuid() == 0


AS_ROOT = pytest.mark.skipif(_root_writes_anyway(), reason="running as root: a chmod 0555 folder stays writable, "
                                                           "so the read-only case cannot be built (the under-a-file "
                                                           "rows cover a folder that cannot exist)")
ZW, RTL = "\u200b", "\u202e"
NUL_HINT = "contains a NUL byte (a binary file, or a name truncated by C tools); save it as plain UTF-8 text"
ONE_FIELD = "must contain exactly one '{}' (or '{c}') placeholder for the class name and no other '{...}' field"
TIE = "zero-shot heads of equal names tie, so the later label is never predicted"
OUTSIDE = "(absolute and '..' paths are refused)"
KARPATHY_JSON = "{tmp}/data/dataset_flickr30k.json"

PROBES: list[tuple[str, str, Callable | None, object, dict | None, tuple]] = [
    # --- webdataset members. Nothing is ever extracted (samples are read by offset), but a shard with escaping
    # names, links or devices is not CLIP_benchmark's and is dangerous to unpack, so it is refused (PEP 706's
    # ``data`` filter refuses the same), naming the member; before: ``../`` and absolute names were accepted, and
    # links/devices were skipped, then reported as "sample 's0' has no an image".
    ("wds-member-dotdot", WDS, _wds([_member("../../evil.png", _png_bytes()), *_good_members()]),
     SHARD + "member '../../evil.png' has an absolute or '..' name (it would escape the folder it is unpacked into)",
     None, ()),
    ("wds-member-absolute", WDS, _wds([_member("/etc/evil.cls", b"0"), *_good_members()]),
     SHARD + "member '/etc/evil.cls' has an absolute or '..' name (it would escape the folder it is unpacked into)",
     None, ()),
    ("wds-member-symlink", WDS, _wds([_member("s9.png", kind=tarfile.SYMTYPE, link="/etc/passwd"),
                                      *_good_members()]),
     SHARD + "member 's9.png' is a symbolic link; a shard holds regular files only", None, ()),
    ("wds-member-hardlink", WDS, _wds([*_good_members(), _member("s9.png", kind=tarfile.LNKTYPE, link="s0.png")]),
     SHARD + "member 's9.png' is a hard link; a shard holds regular files only", None, ()),
    ("wds-member-chardev", WDS, _wds([_member("s9.png", kind=tarfile.CHRTYPE), *_good_members()]),
     SHARD + "member 's9.png' is a character device; a shard holds regular files only", None, ()),
    ("wds-member-fifo", WDS, _wds([_member("s9.cls", kind=tarfile.FIFOTYPE), *_good_members()]),
     SHARD + "member 's9.cls' is a FIFO; a shard holds regular files only", None, ()),
    # a header claiming 10**12 bytes: a label is refused before reading (before: MemoryError, exit 1); an image
    # member runs past the end of the file, which tarfile reports
    ("wds-cls-claims-1e12-bytes", WDS, _wds(_huge_header("s9.cls")),
     SHARD + "label member 's9.cls' claims 1,000,000,000,000 bytes; a .cls label is one integer (at most 64 bytes)",
     None, ()),
    ("wds-image-claims-1e12-bytes", WDS, _wds(_huge_header("s9.png")),  # before: "unexpected end of data"
     "corrupt shard {tmp}/wds/test/0.tar after sample 's1': member 's9.png' claims 1,000,000,000,000 bytes, past "
     "the end of the shard (6,144 bytes; truncated, "
     "or a forged header)", None, ()),
    # the retrieval webdataset reader (data/retrieval_wds.py) loads members into memory: the same header was a
    # MemoryError there, nshards.txt of 10**9 built a billion paths, and links were skipped silently
    ("rwds-caption-claims-1e12-bytes", RWDS, _rwds(_huge_header("s9.txt")),
     "corrupt shard {tmp}/rwds/test/0.tar: member 's9.txt' claims 1,000,000,000,000 bytes, past the end of the "
     "shard (6,144 bytes; truncated, "
     "or a forged header)", None, ()),
    ("rwds-nshards-1e9", RWDS, _rwds(nshards=b"1000000000\n"),
     "{tmp}/rwds/test/nshards.txt says 1000000000 shards; the count must be between 1 and 100,000", None, ()),
    ("rwds-member-symlink", RWDS, _rwds([*_caption_members(), _member("s9.txt", kind=tarfile.SYMTYPE,
                                                                      link="/etc/passwd")]),
     RSHARD + "member 's9.txt' is a symbolic link; a shard holds regular files only", None, ()),
    ("rwds-good", RWDS, _rwds(), lambda tmp, result: _retrieval_counts(2, 2, 0)(tmp, result), None, ()),
    # truncated shards: inside a header, inside a member, exactly at a member boundary (before: "0 trailing
    # bytes are not zero blocks"), and inside the end-of-archive padding (nothing lost: accepted)
    ("wds-truncated-in-header", WDS, _wds(_truncated(100)), "corrupt shard {tmp}/wds/test/0.tar: truncated header",
     None, ()),
    ("wds-truncated-in-member", WDS, _wds(_truncated(700)),
     "corrupt shard {tmp}/wds/test/0.tar after sample 's0': unexpected end of data", None, ()),
    ("wds-truncated-at-boundary", WDS, _wds(_truncated(2048)),
     "corrupt shard {tmp}/wds/test/0.tar after sample 's0': the file ends at byte 2048 without an end-of-archive "
     "marker (truncated)", None, ()),
    ("wds-truncated-in-padding", WDS, _wds(_truncated(5120)),
     lambda tmp, result: _report(tmp)["dataset"]["n_total"] == 2 or pytest.fail("not 2 samples"), None, ()),
    # nshards.txt: bounded 1..100000 (before: -1 read "says -1 shards but none are missing", 10**9 built a
    # billion paths, ~20 GB, before failing; a non-UTF-8 byte was a UnicodeDecodeError traceback)
    ("wds-nshards-neg", WDS, _wds(nshards=b"-1\n"),
     "{tmp}/wds/test/nshards.txt says -1 shards; the count must be between 1 and 100,000", None, ()),
    ("wds-nshards-1e9", WDS, _wds(nshards=b"1000000000\n"),
     "{tmp}/wds/test/nshards.txt says 1000000000 shards; the count must be between 1 and 100,000", None, ()),
    ("wds-nshards-text", WDS, _wds(nshards=b"two\n"),
     "{tmp}/wds/test/nshards.txt must hold one integer (the shard count), got 'two'", None, ()),
    ("wds-nshards-binary", WDS, _wds(nshards=b"\xff\xfe1\n"),
     "{tmp}/wds/test/nshards.txt must hold one integer (the shard count), got '\ufffd\ufffd1'", None, ()),
    ("wds-nshards-3-of-1", WDS, _wds(nshards=b"3\n"),
     "{tmp}/wds/test: nshards.txt says 3 shards but 2 of them are missing (1.tar, 2.tar)", None, ()),
    # classnames.txt
    ("wds-classnames-empty", WDS, _wds(classes=b"\n \n"), "{tmp}/wds/classnames.txt is empty", None, ()),
    ("wds-classnames-nul", WDS, _wds(classes=b"zero\none\0two\n"),
     "{tmp}/wds/classnames.txt: line 2 " + NUL_HINT, None, ()),
    # duplicate names: accepted with one warning line (the two zero-shot heads tie, so the later label is never
    # predicted; not refused because CLIP_benchmark's own ImageNet list names 'missile' and 'sunglasses' twice,
    # see text_lists.warn_duplicates; before: accepted silently)
    ("wds-classnames-duplicate", WDS, _wds(classes=b"cat\ncat\n"),
     _tie_warned("{tmp}/wds/classnames.txt: class name 'cat' is listed twice (labels 0 and 1); " + TIE, 1), None, ()),
    # zero-width and right-to-left characters: accepted, kept verbatim (ZWNJ/ZWJ and RTL text are real in
    # Persian, Hindi, Arabic, Hebrew names; the report's JSON escapes them, so they cannot spoof it)
    ("wds-classnames-zero-width-rtl", WDS, _wds(classes=f"ze{ZW}ro\n{RTL}eno\n".encode()),
     _classes_kept([f"ze{ZW}ro", f"{RTL}eno"]), None, ()),
    # .cls labels
    ("wds-cls-neg", WDS, _wds([_member("s0.png", _png_bytes()), _member("s0.cls", b"-1"), *_good_members()[2:]]),
     SHARD + "sample 's0' has label -1, outside 0..1 (classnames.txt has 2 names)", None, ()),
    ("wds-cls-1e9", WDS, _wds([_member("s0.png", _png_bytes()), _member("s0.cls", b"1000000000"),
                               *_good_members()[2:]]),
     SHARD + "sample 's0' has label 1000000000, outside 0..1 (classnames.txt has 2 names)", None, ()),
    ("wds-cls-1e9-float", WDS, _wds([_member("s0.png", _png_bytes()), _member("s0.cls", b"1e9"),
                                     *_good_members()[2:]]),
     SHARD + "sample 's0' has a non-integer label '1e9'", None, ()),
    ("wds-cls-text", WDS, _wds([_member("s0.png", _png_bytes()), _member("s0.cls", b"cat"), *_good_members()[2:]]),
     SHARD + "sample 's0' has a non-integer label 'cat'", None, ()),
    ("wds-cls-missing", WDS, _wds([_member("s0.png", _png_bytes()), *_good_members()[2:]]),
     SHARD + "sample 's0' has no .cls label", None, ()),  # before: "has no a .cls label"
    # --- Karpathy caption JSON. Paths must stay under the data root (a hostile JSON must not make a run read
    # and record images from elsewhere; before: accepted and read {tmp}/secret.jpg); an image listed twice is
    # refused (its captions would count as misses for its twin; before: accepted).
    ("karpathy-dotdot", RETRIEVAL, _karpathy([_image("a.jpg"), _image("../../secret.jpg")]),
     KARPATHY_JSON + ": image entry 1 names '../../secret.jpg', outside the data root {tmp}/data " + OUTSIDE,
     None, ()),
    ("karpathy-absolute", RETRIEVAL, _karpathy(lambda tmp: [_image("a.jpg"), _image(str(tmp / "secret.jpg"))]),
     KARPATHY_JSON + ": image entry 1 names '{tmp}/secret.jpg', outside the data root {tmp}/data " + OUTSIDE,
     None, ()),
    ("karpathy-filepath-dotdot", RETRIEVAL, _karpathy([_image("a.jpg"), _image("secret.jpg", filepath="..")]),
     KARPATHY_JSON + ": image entry 1 names '..', outside the data root {tmp}/data " + OUTSIDE, None, ()),
    ("karpathy-no-filename", RETRIEVAL, _karpathy([_image("a.jpg"), {"split": "test", "sentences": [{"raw": "x"}]}]),
     KARPATHY_JSON + ": image entry 1 has no filename", None, ()),
    ("karpathy-no-images-key", RETRIEVAL, _both(_karpathy([]), _text_file("data/dataset_flickr30k.json", '{"photos": []}')),
     KARPATHY_JSON + " is not a Karpathy split file (no 'images' list)", None, ()),
    # an image without captions (zero, or no "sentences" key) is skipped and counted, as documented
    ("karpathy-zero-captions-one", RETRIEVAL, _karpathy([_image("a.jpg"), _image("b.jpg", ())]),
     _retrieval_counts(1, 2, 1), None, ()),
    ("karpathy-no-sentences-key", RETRIEVAL, _karpathy([_image("a.jpg"), {"filename": "b.jpg", "split": "test"}]),
     _retrieval_counts(1, 2, 1), None, ()),
    ("karpathy-zero-captions-all", RETRIEVAL, _karpathy([_image("a.jpg", ()), _image("b.jpg", ())]),
     "flickr30k: split 'test' has no image with a caption (2 image(s) without captions)", None, ()),
    ("karpathy-duplicate-file", RETRIEVAL, _karpathy([_image("a.jpg"), _image("a.jpg", ("a bird", "a car"))]),
     KARPATHY_JSON + ": split 'test' lists file 'a.jpg' twice (image entries 0 and 1); each image must appear once",
     None, ()),
    ("karpathy-duplicate-imgid", RETRIEVAL, _karpathy([_image("a.jpg", imgid=7), _image("b.jpg", imgid=7)]),
     KARPATHY_JSON + ": split 'test' lists imgid 7 twice (image entries 0 and 1); each image must appear once",
     None, ()),
    # --- templates: str.format fields other than one bare {} are refused (before: "{}.{__class__}" KeyError,
    # "{} {[0]}" IndexError, "{} }{" ValueError tracebacks; "{{}}" passed and gave prompts without the class)
    ("template-attribute", EVAL + " --templates {tmp}/t.txt", _text_file("t.txt", "a photo of {c.__class__}\n"),
     "template 'a photo of {c.__class__}' " + ONE_FIELD, None, ()),
    ("template-positional", EVAL + " --templates {tmp}/t.txt", _text_file("t.txt", "{0}{1}\n"),
     "template '{0}{1}' " + ONE_FIELD, None, ()),
    ("template-extra-named-field", EVAL + " --templates {tmp}/t.txt", _text_file("t.txt", "a {}.{__class__}\n"),
     "template 'a {}.{__class__}' " + ONE_FIELD, None, ()),
    ("template-extra-index-field", EVAL + " --templates {tmp}/t.txt", _text_file("t.txt", "a {} {[0]}\n"),
     "template 'a {} {[0]}' " + ONE_FIELD, None, ()),
    ("template-format-spec", EVAL + " --templates {tmp}/t.txt", _text_file("t.txt", "a {:>99999999} photo\n"),
     "template 'a {:>99999999} photo' " + ONE_FIELD, None, ()),
    ("template-escaped-only", EVAL + " --templates {tmp}/t.txt", _text_file("t.txt", "a {{}} photo\n"),
     "template 'a {{}} photo' " + ONE_FIELD, None, ()),
    ("template-stray-brace", EVAL + " --templates {tmp}/t.txt", _text_file("t.txt", "a {} }{\n"),
     "template 'a {} }{' is not a valid format string (Single '}' encountered in format string); write a literal "
     "brace as '{{' or '}}'", None, ()),
    ("template-1mb-line", EVAL + " --templates {tmp}/t.txt", _text_file("t.txt", "a {} " + "x" * 1_000_000 + "\n"),
     "template 'a {} " + "x" * 52 + "...' is 1,000,005 characters long; a prompt template is at most 1,000 "
     "(CLIP's text tower reads 77 tokens)", None, ()),  # before: accepted, 11 s of tokenizing
    ("template-nul", EVAL + " --templates {tmp}/t.txt", _text_file("t.txt", "a photo of a {}\0\n"),
     "--templates {tmp}/t.txt: line 1 " + NUL_HINT, None, ()),
    # --- --classnames (digits has 10 classes)
    ("classnames-duplicate", EVAL + " --classnames {tmp}/names.txt",
     _text_file("names.txt", "".join(f"n{i}\n" for i in range(9)) + "n3\n"),
     _tie_warned("--classnames {tmp}/names.txt: class name 'n3' is listed twice (labels 3 and 9); " + TIE, 9),
     None, ()),  # accepted with one warning, as for classnames.txt above
    ("classnames-zero-width-rtl", EVAL + " --classnames {tmp}/names.txt",
     _text_file("names.txt", "".join(f"n{ZW}{i}\n" for i in range(9)) + f"{RTL}nine\n"),
     _classes_kept([f"n{ZW}{i}" for i in range(9)] + [f"{RTL}nine"]), None, ()),
    # --- the cache folder and HOME
    ("cache-dir-is-a-file", "proxy build digits -q", _file,
     "cannot create lock file {lock}: Not a directory", {"MMROBUST_CACHE_DIR": "{tmp}/file"}, ()),
    ("cache-dir-under-a-file", "proxy build digits -q", _file,
     "cannot create lock file {lock}: Not a directory", {"MMROBUST_CACHE_DIR": "{tmp}/file/cache"}, ()),
    ("cache-dir-read-only", "proxy build digits -q", _read_only_dir,
     "cannot create lock file {lock}: Permission denied", {"MMROBUST_CACHE_DIR": "{tmp}/ro"}, (AS_ROOT,)),
    ("cache-dir-is-a-file-list", "proxy list", _file,  # listing reads only: nothing cached there, exit 0
     lambda tmp, result: "cached builds: none" in result.stdout or pytest.fail(result.stdout),
     {"MMROBUST_CACHE_DIR": "{tmp}/file"}, ()),
    ("home-unset-eval", EVAL, None, lambda tmp, result: _report(tmp)["metrics"]["clean"]["n"] == 4 or pytest.fail(),
     {"HOME": None}, ()),
    ("home-unset-proxy-list", "proxy list", None,  # platformdirs falls back to the password database's home
     lambda tmp, result: "recipes (cache: /" in result.stdout or pytest.fail(result.stdout),
     {"HOME": None, "MMROBUST_CACHE_DIR": None, "XDG_CACHE_HOME": None}, ()),
    # --- output paths
    ("output-newline", "eval -m tiny -d digits -n 4 -q --no-sanity -o {tmp}/a\nb.json", None,
     "output path '{tmp}/a\\nb.json' contains a line break or another control character; choose a name without "
     "one", None, ()),  # before: accepted, wrote a file named "a<newline>b.json"
    ("output-under-a-file", "eval -m tiny -d digits -n 4 -q --no-sanity -o {tmp}/file/out.json", _file,
     "cannot use output path {tmp}/file/out.json: Not a directory", None, ()),
    ("output-read-only-folder", "eval -m tiny -d digits -n 4 -q --no-sanity -o {tmp}/ro/out.json", _read_only_dir,
     "output path {tmp}/ro/out.json is not writable (no write permission on {tmp}/ro)", None, (AS_ROOT,)),
]


def _snapshot(tmp: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in tmp.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("line, setup, expected, env", [pytest.param(line, setup, expected, env, id=case_id, marks=marks)
                                                        for case_id, line, setup, expected, env, marks in PROBES])
def test_hostile_input_probe(tmp_path, line, setup, expected, env):
    """One row of :data:`PROBES`: the exact error line and exit 2 (or a correct result), nothing destroyed."""
    if setup is not None:
        setup(tmp_path)
    before = _snapshot(tmp_path)
    env = {k: (v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v) for k, v in (env or {}).items()}
    argv = [a for a in line.format(out=tmp_path / "out.json", tmp=tmp_path).split(" ") if a]  # keeps a newline
    result = CliRunner().invoke(app, argv, env=env)
    after = _snapshot(tmp_path)
    assert {p: after.get(p) for p in before} == before, "a file that existed before was changed or removed"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {type(result.exception).__name__}: {result.exception}")
    if callable(expected):
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.output[-800:]}"
        assert "error:" not in result.output
        expected(tmp_path, result)
        assert set(after) - set(before) <= {tmp_path / "out.json"}
        return
    lines = result.stderr.strip().splitlines()
    errors = [text for text in lines if text.startswith("error: ")]
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output[-800:]}"
    assert len(errors) == 1 and len(lines) <= 2 and lines[-1] == errors[0], result.stderr
    message = expected.replace("{tmp}", str(tmp_path))
    if "{lock}" in message:
        message = message.replace("{lock}", _proxy_lock(env["MMROBUST_CACHE_DIR"]))
    assert errors[0] == f"error: {message}"
    assert sorted(set(after) - set(before)) == [], "a failed run left files behind"


# ------------------------------------------------------------------- two live benchmarks on one output folder
# Real processes. The first is *provably* running when the second starts: its lock (or cell claim) is seen held
# by flock, then it is frozen with SIGSTOP, so it cannot finish or release anything while the second runs; the
# second ends while the first is still alive. Without --share-output the folder lock (utils.files.output_lock)
# must refuse the second at once, writing nothing; with --share-output the second must skip the claimed cell,
# run the others, wait for the claimed one and reuse its report: no cell runs twice (benchmark.distribute).

BENCH_MODELS = ("tiny:0", "tiny:1")


def _bench_command(out: Path, *extra: str) -> list[str]:
    models = [a for spec in BENCH_MODELS for a in ("-m", spec)]
    return [sys.executable, "-m", "mmrobust.cli.main", "benchmark", *models, "-d", "digits", "-o", str(out), "-n", "8",
            "-b", "8", "-a", "pgd", "--eps", "4", "--steps", "1", "--no-sanity", "-q", *extra]


def _bench_env() -> dict[str, str]:
    import mmrobust

    source = str(Path(mmrobust.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def _held(lock: Path, pid: int) -> bool:
    """Whether process ``pid`` holds ``flock`` on ``lock``, read from ``/proc/locks`` (never by trying the lock
    here: a probe that took it for a moment could make the run under test find its own lock busy)."""
    try:
        inode = os.stat(lock).st_ino
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    for row in table.splitlines():
        fields = row.split()
        if "FLOCK" in fields and "->" not in fields:  # "->" rows are waiters, not holders
            at = fields.index("FLOCK")
            if fields[at + 3] == str(pid) and fields[at + 4].rsplit(":", 1)[-1] == str(inode):
                return True
    return False


def _freeze_while_holding(process: subprocess.Popen, locks: Callable[[], list[Path]], timeout: float = 120) -> Path:
    """SIGSTOP ``process`` at a moment it holds one of ``locks()``; that lock (it stays held while frozen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the first run ended early (exit {process.returncode})"
        if any(_held(p, process.pid) for p in locks() if p.exists()):
            os.kill(process.pid, signal.SIGSTOP)
            held = [p for p in locks() if p.exists() and _held(p, process.pid)]
            if held and process.poll() is None:
                return held[0]
            os.kill(process.pid, signal.SIGCONT)  # released just before the stop: try again
        time.sleep(0.02)
    pytest.fail("the first run never held its lock")


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait(timeout=30)


pytestmark_posix = pytest.mark.skipif(not hasattr(signal, "SIGSTOP") or not Path("/proc/locks").exists(),
                                      reason="needs SIGSTOP/SIGCONT and Linux's /proc/locks (to see who holds a lock)")


@pytestmark_posix
def test_second_live_benchmark_on_one_folder_is_refused(tmp_path):
    out = tmp_path / "bench"
    first = None
    try:
        first = subprocess.Popen(_bench_command(out), env=_bench_env(), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        lock = _freeze_while_holding(first, lambda: [out / ".mmrobust.lock"])
        before = _snapshot(out)
        second = subprocess.run(_bench_command(out), env=_bench_env(), capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run must still be alive when the second ends"
        assert second.returncode == 2, second.stderr[-800:]
        errors = [line for line in second.stderr.splitlines() if line.startswith("error: ")]
        assert errors == [f"error: another mmrobust run is writing benchmark folder {out} right now; wait for it to "
                          f"finish or choose another path (lock {lock})"], second.stderr
        assert second.stderr.strip().splitlines()[-1] == errors[0] and "Traceback" not in second.stderr
        assert "done:" not in second.stderr and "cell(s) run" not in second.stdout  # it ran no cell
        assert _snapshot(out) == before  # and wrote, changed or removed nothing
    finally:
        _stop(first)


@pytestmark_posix
def test_live_benchmarks_sharing_a_folder_run_each_cell_once(tmp_path):
    out = tmp_path / "bench"
    first = second = None
    try:
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        with open(first_log, "w") as log:
            first = subprocess.Popen(_bench_command(out, "--share-output"), env=_bench_env(),
                                     stdout=subprocess.DEVNULL, stderr=log)
        claimed = _freeze_while_holding(first, lambda: sorted((out / "cells").glob(".*.claim")))
        with open(second_log, "w") as log:
            second = subprocess.Popen(_bench_command(out, "--share-output"), env=_bench_env(),
                                      stdout=subprocess.PIPE, stderr=log, text=True)
        deadline = time.monotonic() + 120
        while "waiting: cell" not in second_log.read_text() and time.monotonic() < deadline:
            assert second.poll() is None, second_log.read_text()[-800:]
            time.sleep(0.05)
        assert first.poll() is None and "waiting: cell" in second_log.read_text(), second_log.read_text()[-800:]
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=120) == 0, first_log.read_text()[-800:]
        assert second.wait(timeout=120) == 0, second_log.read_text()[-800:]
        logs = first_log.read_text() + second_log.read_text()
        assert "Traceback" not in logs and "error:" not in logs
        held_cell = claimed.name[1:-len(".claim")]  # .tiny-0__digits.json.claim -> tiny-0__digits.json
        for model in BENCH_MODELS:
            done = [line for line in logs.splitlines() if line.startswith(f"[{model} | digits] done:")]
            assert len(done) == 1, logs  # no cell ran twice
        assert f"waiting: cell {held_cell} is being worked on by another job" in second_log.read_text()
        for model in BENCH_MODELS:  # the frozen job ran the cell it held; the other job ran the rest meanwhile
            mine = held_cell == f"{model.replace(':', '-')}__digits.json"
            log = first_log if mine else second_log
            assert f"[{model} | digits] done:" in log.read_text(), (model, logs)
        assert sorted(p.name for p in (out / "cells").iterdir()) == sorted(
            f"{m.replace(':', '-')}__digits.json" for m in BENCH_MODELS)  # no claim or state file left
    finally:
        _stop(first)
        _stop(second)
