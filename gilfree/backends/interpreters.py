"""The ``interpreters`` backend: N subinterpreters, each with its own GIL (CPython 3.12+).

Each subinterpreter runs :func:`gilfree._interp_worker.main`, a real module
that it imports (the worker's code is checked, typed and covered like any
other); it talks to this interpreter through OS pipes, which every
interpreter of the process shares.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import multiprocessing.connection
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from gilfree._countdown import cancel_generation, cancel_running
from gilfree._watch import join_all
from gilfree._worker import WorkerStamp
from gilfree.backends._base import (
    READY_TIMEOUT_S,
    Backend,
    RunTiming,
    UnsupportedError,
    WorkerError,
    _cause,
    _earliest,
    _overran,
    _pickled,
    _ref,
    _timing,
    _unstoppable,
    _until,
)
from gilfree.kernels import Kernel
from gilfree.meter import GILReading

__all__ = ["InterpretersBackend"]


#: Threads running a subinterpreter that did not stop when cancelled (code
#: blocked in C). CPython cannot finish while one runs: its shutdown waits
#: for the interpreter's own threads, for ever.
_abandoned: list[threading.Thread] = []


def stuck() -> int:
    """How many abandoned subinterpreter workers are still running."""
    return sum(t.is_alive() for t in _abandoned)


def exit_if_stuck(status: int) -> None:
    """End the process now with ``status`` if an abandoned subinterpreter
    worker still runs, since a normal exit would wait for it for ever; the
    caller has written and closed its files. Standard streams are flushed
    first. Does nothing otherwise."""
    count = stuck()
    if not count:
        return
    print(
        f"gilfree: ending the process at once: {count} subinterpreter worker(s) are blocked "
        "in C and cannot be stopped, and CPython cannot exit normally while they run",
        file=sys.stderr,
    )
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)


def _abandon(threads: list[threading.Thread]) -> None:
    """Remember ``threads``, left running, and make sure the process can still
    end: before CPython's shutdown waits for threads, :func:`exit_if_stuck`
    ends it with status 1 (the CLI calls it first, with its own status)."""
    if not _abandoned:
        register = getattr(threading, "_register_atexit", None)  # runs before the wait
        if register is not None:
            with contextlib.suppress(RuntimeError):  # already shutting down
                register(exit_if_stuck, 1)
    _abandoned.extend(t for t in threads if t.is_alive())


class _Interpreters:
    """The subinterpreter API of the running Python, behind one small interface."""

    def __init__(self) -> None:
        self.module_name, self._mod = self._load()

    @staticmethod
    def _load() -> tuple[str, Any]:
        for name in ("concurrent.interpreters", "_interpreters", "_xxsubinterpreters"):
            try:
                return name, importlib.import_module(name)
            except ImportError:
                continue
        raise ImportError("no subinterpreter module")

    def create(self) -> Any:
        return self._mod.create()  # own GIL by default on 3.12+

    def run(self, interp: Any, code: str) -> str | None:
        """Run ``code``; return an error description, or None on success."""
        try:
            if self.module_name == "concurrent.interpreters":
                interp.exec(code)
                return None
            result = self._mod.run_string(interp, code)
        except Exception as exc:  # 3.12 raises RunFailedError, 3.14 ExecutionFailed
            return f"{type(exc).__name__}: {exc}"
        return None if result is None else str(getattr(result, "formatted", result))

    def destroy(self, interp: Any) -> None:
        if self.module_name == "concurrent.interpreters":
            interp.close()
        else:
            self._mod.destroy(interp)


@contextlib.contextmanager
def _bootstrap(kernel: Kernel) -> Iterator[tuple[str, dict[str, Any]]]:
    """(code that starts the worker, the worker's kernel arguments).

    A registered kernel is named. Any other is pickled to a temporary file
    (removed afterwards) and loaded from it there, after this process's
    ``sys.path`` is handed over so that its module can be imported. A file, not
    a literal in the source: a user's 128 MiB argument would otherwise become
    half a gigabyte of code to compile in every interpreter."""
    start = "from gilfree._interp_worker import main\n"
    ref = _ref(kernel)
    if isinstance(ref, str):
        yield start, {"kernel": ref, "pickle_path": None}
        return
    payload = _pickled(kernel, "a subinterpreter")
    fd, path = tempfile.mkstemp(prefix="gilfree-kernel-", suffix=".pickle")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        del payload
        yield (
            f"import sys\nsys.path[:] = {sys.path!r}\n{start}",
            {
                "kernel": None,
                "pickle_path": path,
            },
        )
    finally:
        os.unlink(path)


class InterpretersBackend(Backend):
    name = "interpreters"
    description = "N subinterpreters, each with its own GIL, each driven by its own thread"
    gil_meter = "per-worker"

    def availability(self) -> str | None:
        if sys.version_info < (3, 12):
            return (
                f"subinterpreters with their own GIL need CPython 3.12+, "
                f"this is {sys.version.split()[0]}"
            )
        if sys.implementation.name != "cpython":
            return f"subinterpreters are a CPython feature, this is {sys.implementation.name}"
        try:
            _Interpreters()
        except ImportError:
            return "this CPython build has no subinterpreter module"
        return None

    def unsupported_reason(self, kernel: Kernel) -> str | None:
        return None if kernel.subinterpreters else kernel.unsupported_reason

    def metered_run(
        self,
        kernel: Kernel,
        chunks: Sequence[int],
        *,
        deadline: float | None = None,
        **options: Any,
    ) -> RunTiming:
        """:meth:`run` with a contention meter inside every subinterpreter (each
        has its own GIL); the reading pools them, time-weighted."""
        self._check(kernel, chunks, options)
        return self._run(kernel, list(chunks), deadline, meter=True, **options)

    def _run(
        self,
        kernel: Kernel,
        chunks: list[int],
        deadline: float | None,
        meter: bool = False,
        **options: Any,
    ) -> RunTiming:
        with _bootstrap(kernel) as (start, which):  # before anything is created
            return self._run_workers(
                start, which, chunks, meter, deadline, stoppable=not kernel.cancellable
            )

    def _run_workers(
        self,
        start: str,
        which: dict[str, Any],
        chunks: list[int],
        meter: bool,
        deadline: float | None,
        stoppable: bool,
    ) -> RunTiming:
        api = _Interpreters()
        count = len(chunks)
        go_r, go_w = os.pipe()
        stop_r, stop_w = os.pipe()  # one byte per interpreter: the run is over
        outs = [os.pipe() for _ in range(count)]
        interps: list[Any] = []
        threads: list[threading.Thread] = []
        readers = [os.fdopen(r, "rb", buffering=0) for r, _ in outs]
        since = cancel_generation()  # the generation is shared by all interpreters

        def drive(i: int, interp: Any) -> None:
            args = {
                **which,
                **{"n": chunks[i], "since": since, "out": outs[i][1], "go": go_r},
                **{"stop": stop_r, "stoppable": stoppable, "meter": meter},
            }
            _drive(api, interp, f"{start}main(**{args!r})\n", outs[i][1])

        released = False
        left: list[str] = []
        t0 = time.perf_counter_ns()
        try:
            ready_by = _earliest(time.monotonic() + READY_TIMEOUT_S, deadline)
            # One at a time: each interpreter imports gilfree's compiled modules
            # before the next starts. Cython's table of per-interpreter module
            # states is process-wide, and an import racing another's could
            # find the other's module ("already been imported into this
            # interpreter"). Only the start is serial: the timed part begins
            # at the "go" below, for all of them at once.
            for i in range(count):
                interps.append(api.create())
                t = threading.Thread(
                    target=drive, args=(i, interps[i]), name=f"gilfree-interp-{i}", daemon=True
                )
                t.start()
                threads.append(t)
                msg = _read_line(readers[i], ready_by, deadline)
                if msg.strip() != b"ready":
                    _not_ready(i, msg)
            os.write(go_w, b"g" * count)
            released = True
            t_ready = time.perf_counter_ns()
            replies = [json.loads(_read_line(r, deadline, deadline) or b"{}") for r in readers]
            os.write(stop_w, b"s" * count)  # done: the stop threads may end
            for t in threads:
                t.join()
            t_done = time.perf_counter_ns()
        except BaseException as exc:
            if not released:
                os.write(go_w, b"x" * count)  # abandon: nobody starts counting
            cancel_running()  # compiled kernels, in every interpreter
            os.write(stop_w, b"s" * count)  # interpreted loops, through their stop thread
            left = join_all(threads)
            if left:  # they still use the pipes: leave those open
                _abandon(threads)
                raise _unstoppable(left) from exc
            raise
        finally:
            if not left:
                for t in threads:
                    t.join()
                for interp in interps[len(threads) :]:  # created, but no thread to run it
                    with contextlib.suppress(Exception):
                        api.destroy(interp)
                for f in readers:
                    f.close()
                for fd in (go_r, go_w, stop_r, stop_w, *(w for _, w in outs)):
                    os.close(fd)
        return _decoded(replies, (t0, t_ready, t_done), meter)


def _read_line(reader: Any, until: float | None, deadline: float | None) -> bytes:
    """One line from a subinterpreter's pipe, waiting no later than ``until``."""
    if until is not None and not multiprocessing.connection.wait([reader], _until(until)):
        if deadline is not None and time.monotonic() >= deadline:
            raise _overran(deadline)
        raise WorkerError(f"a subinterpreter was not ready after {READY_TIMEOUT_S:.0f} s", -1)
    return reader.readline()  # type: ignore[no-any-return]


def _headline(error: str) -> str:
    """``Type: message`` of an error text that may go on with a traceback:
    one line, for a table's note on an unsupported cell."""
    return error.split("\n", 1)[0]


def _drive(api: Any, interp: Any, code: str, out: int) -> None:
    """Run ``code`` in ``interp`` (a worker's thread); an error it could not
    report itself goes to its pipe ``out``. The interpreter is destroyed from
    this thread: on CPython 3.12, destroying from another thread an
    interpreter that imported threading hangs."""
    try:
        error = api.run(interp, code)
        if error:
            os.write(out, (json.dumps({"error": error}) + "\n").encode())
    finally:
        with contextlib.suppress(Exception):
            api.destroy(interp)


def _decoded(replies: list[dict[str, Any]], times: tuple[int, int, int], meter: bool) -> RunTiming:
    """The run's timing from the interpreters' replies (``times``: its start,
    its start line and its end, in ns); raises for one that could not run
    the kernel (UnsupportedError) or failed (WorkerError, the first cause)."""
    unsupported = [r["unsupported"] for r in replies if "unsupported" in r]
    if unsupported:
        raise UnsupportedError(f"it cannot run in a subinterpreter: {_headline(unsupported[0])}")
    failed = [(i, str(r.get("error", r))) for i, r in enumerate(replies) if "ok" not in r]
    if failed:
        i, error = _cause(failed, lambda text: text.startswith("Cancelled"))
        raise WorkerError(f"interpreter {i} raised {error}", i)
    timing = _timing(*times, [WorkerStamp(*r["ok"]) for r in replies])
    if meter:
        gil = GILReading.pooled(GILReading(**r["gil"]) for r in replies)
        timing = replace(timing, gil=gil)
    return timing


def _not_ready(i: int, msg: bytes) -> None:
    """Raise for a subinterpreter that did not reach the start line: it could
    not load the kernel (UnsupportedError) or it failed outright."""
    try:
        reply = json.loads(msg)
    except ValueError:
        reply = {"error": repr(msg) if msg else "it exited without a word"}
    if "unsupported" in reply:
        raise UnsupportedError(
            f"it cannot be loaded in a subinterpreter: {_headline(reply['unsupported'])}"
        )
    raise WorkerError(f"interpreter {i} failed to start: {reply.get('error', reply)}", i)
