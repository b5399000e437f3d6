"""The ``processes`` backend: N worker processes, each with its own interpreter and GIL."""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import sys
import time
from typing import Any

from gilfree._watch import STOP_GRACE_S
from gilfree._worker import KernelRef, WorkerStamp, ready, timed
from gilfree.backends._base import (
    READY_TIMEOUT_S,
    Backend,
    RunTiming,
    UnsupportedError,
    WorkerError,
    _describe,
    _earliest,
    _overran,
    _pickled,
    _ref,
    _timing,
    _until,
    resolve_start_method,
)
from gilfree.kernels import Kernel

__all__ = ["ProcessesBackend"]


def _die_with_parent() -> None:
    """Linux: have the kernel kill this process if its parent dies (a parent
    killed with SIGKILL runs no clean-up of its own)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _die_with(owner: int) -> None:
    """Kill this worker as soon as ``owner``, the gilfree process that started
    it, is gone, however it went (SIGKILL runs no clean-up of its own).

    ``PR_SET_PDEATHSIG`` covers a worker whose parent is the owner (``fork``,
    ``spawn``). A ``forkserver`` worker's parent is the fork server, which
    outlives the owner by seconds, so a daemon thread waits on a pidfd of
    the owner (readable once it exits; blocked in the kernel, it costs no
    CPU), or, without pidfds, polls it every 0.2 s.
    """
    import signal
    import threading

    _die_with_parent()
    if os.getppid() == owner:
        return

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    try:
        pidfd: int | None = os.pidfd_open(owner)
    except ProcessLookupError:  # gone already
        die()
        return
    except (AttributeError, OSError):  # no pidfds: not Linux, or Linux before 5.3
        pidfd = None

    def watch() -> None:
        if pidfd is not None:
            import select

            select.select([pidfd], [], [])
        else:
            while True:
                time.sleep(0.2)
                try:
                    os.kill(owner, 0)
                except ProcessLookupError:
                    break
                except PermissionError:  # alive, as another user: a reused pid
                    break
        die()

    threading.Thread(target=watch, name="gilfree-owner-watch", daemon=True).start()


def _process_main(conn: Any, go: Any, kernel: KernelRef, n: int, owner: int) -> None:
    """Entry point of a worker process: report ready, wait for go, run, report."""
    try:
        parent = os.getppid()
        _die_with(owner)
        try:
            ready(kernel)
        except Exception as exc:  # the kernel cannot be loaded in this process
            conn.send(("unsupported", _describe(exc)))
            return
        conn.send(("ready", None))
        while not go.wait(0.5):
            if os.getppid() != parent:  # orphaned: nobody will ever say go
                return
        conn.send(("ok", tuple(timed(kernel, n))))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            conn.send(("error", _describe(exc)))
    finally:
        conn.close()


class ProcessesBackend(Backend):
    name = "processes"
    description = "N worker processes, each with its own interpreter and GIL"
    options = frozenset({"start_method"})

    def __init__(self, start_method: str | None = None) -> None:
        """``start_method``: ``fork``, ``forkserver`` or ``spawn`` (None: the
        platform's default), checked now."""
        if start_method is not None:
            start_method = resolve_start_method(start_method)
        super().__init__(start_method=start_method)

    def _run(
        self,
        kernel: Kernel,
        chunks: list[int],
        deadline: float | None,
        start_method: str | None = None,
        **_: Any,
    ) -> RunTiming:
        method = resolve_start_method(start_method)
        ctx: Any = multiprocessing.get_context(method)
        ref = _ref(kernel)
        if method != "fork" and not isinstance(ref, str):
            _pickled(kernel, f"a worker process started by {method!r}")
        go = ctx.Event()
        procs: list[Any] = []
        conns: list[Any] = []
        t0 = time.perf_counter_ns()
        try:
            for i, n in enumerate(chunks):
                recv, send = ctx.Pipe(duplex=False)
                p = ctx.Process(
                    target=_process_main,
                    args=(send, go, ref, n, os.getpid()),
                    name=f"gilfree-worker-{i}",
                    daemon=True,
                )
                p.start()
                send.close()  # the child holds its own copy
                procs.append(p)
                conns.append(recv)
            ready_by = time.monotonic() + READY_TIMEOUT_S
            _collect(procs, conns, "ready", _earliest(ready_by, deadline), deadline)
            go.set()
            t_ready = time.perf_counter_ns()
            results = _collect(procs, conns, "ok", deadline, deadline)
            t_done = time.perf_counter_ns()
        finally:
            _reap(procs)
            for c in conns:
                c.close()
        return _timing(t0, t_ready, t_done, [WorkerStamp(*r) for r in results])


def _reap(procs: list[Any]) -> None:
    """Terminate (then, if that is ignored, kill) and join every process."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(STOP_GRACE_S)
        if p.is_alive():
            p.kill()
            p.join()
        p.close()


def _died(proc: Any) -> str:
    """How a worker process ended: its exit code, or the signal that killed it."""
    code = proc.exitcode
    if code is not None and code < 0:
        import signal

        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _collect(
    procs: list[Any],
    conns: list[Any],
    expect: str,
    until: float | None,
    deadline: float | None,
) -> list[Any]:
    """One message of kind ``expect`` from every worker, noticing deaths at
    once; waits until ``until`` (monotonic), and past the run's ``deadline``
    raises :class:`RunTimeout`."""
    out: list[Any] = [None] * len(conns)
    waiting = dict(enumerate(conns))
    while waiting:
        left = None if until is None else _until(until)
        handles = list(waiting.values()) + [procs[i].sentinel for i in waiting]
        ready_handles = multiprocessing.connection.wait(handles, timeout=left)
        if not ready_handles:
            if deadline is not None and time.monotonic() >= deadline:
                raise _overran(deadline)
            late = sorted(waiting)
            raise WorkerError(f"workers {late} not ready after {READY_TIMEOUT_S:.0f} s", -1)
        for i, conn in list(waiting.items()):
            if conn in ready_handles or procs[i].sentinel in ready_handles:
                try:
                    kind, payload = conn.recv()
                except EOFError:
                    procs[i].join(1)
                    raise WorkerError(
                        f"worker process {i} died without a result ({_died(procs[i])})", i
                    ) from None
                if kind == "error":
                    raise WorkerError(f"worker process {i} raised {payload}", i)
                if kind == "unsupported":
                    raise UnsupportedError(f"a worker process could not load it: {payload}")
                out[i] = payload
                del waiting[i]
    return out
