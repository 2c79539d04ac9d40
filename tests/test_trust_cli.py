"""Every bad value of every option, and every bad input file, is one line and exit 2 (issue 9, items 1, 3, 4).

Black-box through the real CLI (in-process ``CliRunner``): each row must exit 2 with at most two lines on stderr,
no traceback, and no partial output.
"""

from __future__ import annotations

import json
import os
import pickle
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
