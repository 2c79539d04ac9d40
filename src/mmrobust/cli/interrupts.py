"""SIGINT and SIGTERM while a command runs: one line on stderr, exit 130 / 143, and a rerun that resumes.

Why one place: every long command (eval, train, benchmark, study, proxy build) already writes its results and
resume state atomically (:func:`mmrobust.utils.files.atomic_write` removes its temp file on any exception), so
an interruption only has to unwind the stack like an error does. Ctrl-C arrives as ``KeyboardInterrupt``;
SIGTERM (``kill``, a scheduler's preemption) would end the process without unwinding, so while a command runs
it is turned into :class:`Terminated`, and the previous handler is put back afterwards (no global state left).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

#: the one line an interrupted command prints (train adds ``with --resume`` when it needs it: see train_cmd)
INTERRUPTED = "interrupted; rerun the same command to resume"
#: the shell's convention: 128 + the signal number
EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Terminated(BaseException):
    """SIGTERM as an exception: not an ``Exception``, so no ``except Exception`` swallows it (as Ctrl-C)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated`; on leaving it the previous handler is restored.

    Signal handlers belong to the main thread: elsewhere (a command called from a worker thread) a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def exit_status(exc: BaseException) -> int:
    """130 for Ctrl-C (``KeyboardInterrupt``), 143 for SIGTERM (:class:`Terminated`)."""
    return EXIT_STATUS[signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT]
