"""Forked gloo process groups for the multi-process tests (sharded eval, benchmark cells, gathered losses).

Each target runs as ``target(rank, port, results, *args)`` and reports ``(rank, "ok", value)`` or
``(rank, "error", message)`` through :func:`report_to`, so a failing rank shows its error in the parent
instead of a bare non-zero exit code.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
from typing import Any, Callable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def join_rank(rank: int, world: int, port: int) -> None:
    """torchrun's environment for this rank (read by ``utils.distributed.setup_distributed``)."""
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(world),
                       "RANK": str(rank), "LOCAL_RANK": str(rank)})


def report_to(results: Any, rank: int, work: Callable[[], Any]) -> None:
    try:
        results.put((rank, "ok", work()))
    except BaseException as exc:  # report to the parent instead of dying silently
        results.put((rank, "error", f"{type(exc).__name__}: {exc}"))
        raise


def start(n: int, target: Callable[..., None], *args: Any) -> tuple[list, Any]:
    """``n`` forked processes of ``target(rank, port, results, *args)`` on one fresh port; (processes, queue)."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    port = free_port()
    procs = [context.Process(target=target, args=(r, port, results, *args)) for r in range(n)]
    for proc in procs:
        proc.start()
    return procs, results


def run(n: int, target: Callable[..., None], *args: Any, timeout: float = 120,
        check_exit: bool = True) -> dict[int, Any]:
    """Run ``n`` processes to the end; {rank: the value it reported}, asserting every rank succeeded."""
    procs, results = start(n, target, *args)
    try:
        got = {}
        for _ in procs:
            rank, status, value = results.get(timeout=timeout)
            assert status == "ok", f"process {rank}: {value}"
            got[rank] = value
        for proc in procs:
            proc.join(30)
            if check_exit:
                assert proc.exitcode == 0
        return got
    finally:
        stop(procs)


def stop(procs: list) -> None:
    """Kill what is still alive: a hung rank must fail its test, not keep the whole test run from ending
    (multiprocessing joins live children at exit)."""
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join(30)
