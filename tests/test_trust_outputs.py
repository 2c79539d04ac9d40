"""Outputs never destroy anything (issue 9, item 2): non-regular paths refused, symlink targets replaced
atomically, the umask honoured, one live writer per output, and a full disk is one line that leaves the
previous checkpoint intact."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrobust.cli.main import app
from mmrobust.errors import ReportError
from mmrobust.utils.files import output_lock, write_json_atomic

EVAL = ["eval", "--model", "tiny", "--dataset", "digits", "--n-samples", "4", "--quiet"]


def _eval(*args: str):
    return CliRunner().invoke(app, [*EVAL, *args])


def _one_line_exit_2(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _socket(path: Path) -> Path:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    return path


def _char_device(path: Path) -> Path:
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # same numbers as /dev/null
    except PermissionError:
        pytest.skip("creating a device node needs CAP_MKNOD")
    return path


@pytest.mark.parametrize("make, kind", [(_fifo, "a FIFO"), (_socket, "a socket"), (_char_device, "a character device"),
                                         (lambda p: (p.mkdir(), p)[1], "a directory")])
def test_an_existing_non_regular_output_is_refused_and_kept(tmp_path, make, kind):
    target = make(tmp_path / "out")
    before = os.lstat(target)
    _one_line_exit_2(_eval("--output", str(target)), str(target), kind)
    after = os.lstat(target)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no lock or temp file left beside it


def test_a_symlink_to_a_device_is_refused(tmp_path):
    device = _fifo(tmp_path / "fifo")
    (tmp_path / "link.json").symlink_to(device)
    _one_line_exit_2(_eval("--output", str(tmp_path / "link.json")), "a FIFO")
    assert (tmp_path / "link.json").is_symlink() and stat.S_ISFIFO(os.stat(device).st_mode)


def test_a_symlinked_output_updates_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "report.json"
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    result = _eval("--output", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["n_samples"] == 4
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["report.json"]  # temp and lock gone


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "r.json"
    link.symlink_to(tmp_path / "real.json")
    write_json_atomic(link, {"a": 1})
    assert link.is_symlink() and json.loads((tmp_path / "real.json").read_text()) == {"a": 1}


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_honour_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode


def test_a_second_live_run_on_the_same_output_is_refused(tmp_path):
    out = tmp_path / "r.json"
    with output_lock(out, "report"):
        line = _one_line_exit_2(_eval("--output", str(out)), "another mmrobust run", str(out))
        assert not out.exists()
        with output_lock(tmp_path / "other.json"):  # another path is independent
            pass
    assert "wait for it" in line
    assert _eval("--output", str(out)).exit_code == 0  # released: the next run proceeds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_folder_locks_refuse_a_second_training_or_study(tmp_path):
    with output_lock(tmp_path / "run", "training folder", folder=True):
        with pytest.raises(ReportError, match="another mmrobust run is writing training folder"):
            with output_lock(tmp_path / "run", "training folder", folder=True):
                pass
        study = CliRunner().invoke(app, ["study", "eps", "-o", str(tmp_path / "run"), "-m", "tiny", "-q", "-n", "4"])
        _one_line_exit_2(study, "another mmrobust run is writing study folder")
        train = CliRunner().invoke(app, ["train", "-m", "tiny", "--method", "clean", "-d", "digits", "-q",
                                         "-o", str(tmp_path / "run"), "--epochs", "1", "--n-train", "8"])
        _one_line_exit_2(train, "another mmrobust run is writing training folder")
    with output_lock(tmp_path / "bench", "benchmark folder", folder=True):
        bench = CliRunner().invoke(app, ["benchmark", "-m", "tiny", "--datasets", "digits", "-n", "4", "-q",
                                         "-o", str(tmp_path / "bench")])
        _one_line_exit_2(bench, "another mmrobust run is writing benchmark folder")


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_writing_the_report_is_one_line_and_no_file(tmp_path, monkeypatch):
    out = tmp_path / "r.json"
    out.write_text("previous report")
    monkeypatch.setattr(Path, "write_text", _no_space)
    _one_line_exit_2(_eval("--output", str(out)), "no space left on device", str(out))
    assert out.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_a_full_disk_during_the_final_checkpoint_keeps_the_last_one(tmp_path, monkeypatch):
    """The reported failure: safetensors raises its own error type (not OSError) after a partial write."""
    import safetensors.torch
    from safetensors import SafetensorError

    from mmrobust.models.checkpoint import load_checkpoint
    from mmrobust.training.checkpointing import LATEST_NAME

    real_save = safetensors.torch.save_model
    calls = []

    def flaky_save(model, filename, *args, **kwargs):
        calls.append(filename)
        if len(calls) >= 2:  # the epoch checkpoint succeeds, the final one meets a full disk
            Path(filename).write_bytes(b"partial")
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                  "message: \"No space left on device\" })")
        return real_save(model, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_model", flaky_save)
    args = ["train", "-m", "tiny", "--method", "clean", "-d", "digits", "-q", "-o", str(tmp_path / "run"),
            "--epochs", "1", "--n-train", "8", "--n-eval", "8", "-b", "8"]
    line = _one_line_exit_2(CliRunner().invoke(app, args), "no space left on device", "intact", "--resume")
    assert "final" in line
    latest = json.loads((tmp_path / "run" / "checkpoints" / LATEST_NAME).read_text())
    load_checkpoint(tmp_path / "run" / "checkpoints" / latest["folder"])  # verified sha256: intact
    assert not list((tmp_path / "run").rglob("*.tmp"))

    monkeypatch.setattr(safetensors.torch, "save_model", real_save)  # space freed: --resume finishes the run
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    load_checkpoint(tmp_path / "run" / "final")
