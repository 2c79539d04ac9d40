"""Atomic, non-destructive file writes: a report or checkpoint is either complete on disk or absent.

Writing to a temp file in the same directory and renaming it makes the final write atomic on POSIX, so an
interrupted run never leaves a half-written JSON that a later sweep would mistake for a result. Outputs never
destroy anything: an existing device node, FIFO, socket or directory at the path is refused (as root,
``-o /dev/null`` would otherwise replace the system's /dev/null), a symlink has its *target* replaced
atomically, and written files get the usual ``0666 & ~umask`` mode instead of mkstemp's private 0600.
:func:`output_lock` keeps two live runs from writing the same output at once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import ReportError


def _json_default(obj: Any) -> Any:
    """Serialise numpy/torch scalars and paths that json cannot handle by itself."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite_or_none(obj: Any) -> Any:
    """Replace NaN/inf floats with None so the JSON stays standard (json.dumps would emit NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def _kind(mode: int) -> str:
    """What is at a path, in words for an error message."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "neither a file nor a folder"


def resolve_output(path: str | os.PathLike) -> Path:
    """The file actually written for ``path``: a symlink's final target (so the link survives), else ``path``;
    anything but a regular file or nothing at that place is refused.

    A name holding a line break or another control character is refused too: every log line, table row and
    "wrote PATH" message naming it would be split in two (a forged line in a log read by a script), and shells
    need quoting tricks to reach it."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in os.fspath(path)):
        raise ReportError(f"output path {os.fspath(path)!r} contains a line break or another control character; "
                          f"choose a name without one")
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise ReportError(f"cannot use output path {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        shown = f"{path} (-> {target})" if target != path else str(path)
        raise ReportError(f"output path {shown} is {_kind(mode)}; refusing to replace it, expected a file name")
    return target


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early (before hours of work) if ``path`` cannot be created: missing parent, no permission, or an
    existing non-regular file at the path. Returns the file that will actually be written."""
    path = resolve_output(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReportError(f"cannot create output directory {parent}: {exc.strerror or exc}") from None
    if not parent.is_dir():
        raise ReportError(f"output path {path} is not writable: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise ReportError(f"output path {path} is not writable (no write permission on {parent})")
    return path


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _is_write_failure(exc: BaseException) -> bool:
    """I/O failures as the writers report them: OSError, torch.save's RuntimeError, safetensors' error."""
    return isinstance(exc, (OSError, RuntimeError)) or type(exc).__name__ == "SafetensorError"


def write_failure_message(path: Path, exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"cannot write {path}: no space left on device"
    text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc).strip() or type(exc).__name__
    if "No space left" in text or "StorageFull" in text:
        return f"cannot write {path}: no space left on device"
    return f"cannot write {path}: {text.splitlines()[0][:300]}"


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename tmp_path onto ``path`` (a symlink's target); remove the temp file
    on failure, so whatever was at ``path`` before stays intact."""
    path = check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ReportError(write_failure_message(path, exc)) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if _is_write_failure(exc):
            raise ReportError(write_failure_message(path, exc)) from None
        raise
    return path


@contextlib.contextmanager
def output_lock(path: str | os.PathLike | None, what: str = "output", folder: bool = False) -> Iterator[None]:
    """Hold an exclusive lock for ``path`` (a report file, or with ``folder=True`` a run folder) while a run
    writes it.

    A second run on the same path while the first is alive is refused at once with one line, instead of the
    two racing (last writer wins). The lock is ``flock`` on a hidden lock file (``.<name>.lock`` beside a file,
    ``.mmrobust.lock`` inside a folder); the kernel releases it when the process exits or crashes, so a stale
    lock file never blocks a later run, and a clean exit removes it. ``None`` (no output) and platforms
    without ``fcntl`` make it a no-op.
    """
    if path is None:
        yield
        return
    target = Path(os.path.realpath(path))
    if folder and target.exists() and not target.is_dir():
        raise ReportError(f"{what} {path} is {_kind(os.stat(target).st_mode)}, expected a folder")
    lock_path = target / ".mmrobust.lock" if folder else target.with_name(f".{target.name}.lock")
    with lock_file(lock_path, f"another mmrobust run is writing {what} {path} right now; wait for it to finish "
                              f"or choose another path (lock {lock_path})"):
        yield


@contextlib.contextmanager
def lock_file(lock_path: Path, busy_message: str, wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold ``flock`` on ``lock_path``: when another process holds it, raise ReportError(busy_message), or with
    ``wait`` call ``wait(busy_message)`` and block until it is free. The file is removed on release (while
    still locked; a waiter then finds its inode gone and retries), so no lock files pile up."""
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock; writes are still atomic per file
        yield
        return
    handle = _acquire(lock_path, fcntl, busy_message, wait)
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        handle.close()


def _acquire(lock_path: Path, fcntl: Any, busy_message: str, wait: Callable[[str], None] | None) -> Any:
    """Open and ``flock`` ``lock_path``; retry if the file was removed (by its previous holder) meanwhile."""
    while True:
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "a+")
        except OSError as exc:
            raise ReportError(f"cannot create lock file {lock_path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if wait is None:
                handle.close()
                raise ReportError(busy_message) from None
            wait(busy_message)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if os.fstat(handle.fileno()).st_ino == os.stat(lock_path).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(_finite_or_none(data), indent=2, default=_json_default, sort_keys=False)

    def _write(tmp: Path) -> None:
        tmp.write_text(text + "\n", encoding="utf-8")

    return atomic_write(path, _write)
