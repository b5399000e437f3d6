"""The backend registry: ways to run N copies of a kernel at once.

Every backend runs a list of chunks (one per worker) and returns a
:class:`RunTiming`. The protocol is the same everywhere:

1. create the workers (threads, processes, interpreters) and let each import
   what it needs; each reports *ready* and waits at a start line;
2. once every worker is ready, one *go* releases them all; each stamps its
   own start and end on the shared clock (``time.perf_counter_ns``);
3. the work span is first start to last end. The time to create the workers
   is reported apart (``setup_s``), and the classic article's figure, which
   includes it, is ``total_s``.

A worker that raises or dies stops the run: the others are cancelled (see
:func:`gilfree.cancel_running`) or terminated, everything is joined or
destroyed, and :class:`WorkerError` reaches the caller with the worker's
traceback. A run given a ``deadline`` that it overruns is stopped the same way
and raises :class:`RunTimeout`; Ctrl-C stops it and raises KeyboardInterrupt.
Nothing is left running, with one exception no library can avoid: code
blocked in C that never returns to Python (a user's function sleeping in a
C call) cannot be stopped in a thread or a subinterpreter; the error then says
so (processes are terminated instead).

To add a backend: subclass :class:`Backend`, implement ``_run``, and add it
to ``_BACKENDS`` at the bottom of this module.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import json
import multiprocessing
import multiprocessing.connection
import os
import pickle
import sys
import tempfile
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from gilfree._countdown import Cancelled, cancel_generation, cancel_running
from gilfree._registry import Registry
from gilfree._watch import STOP_GRACE_S, Running, Watch, join_all
from gilfree._worker import KernelRef, WorkerStamp, ready, timed, timed_at
from gilfree.kernels import KERNELS, Kernel
from gilfree.meter import GILMeter, GILReading

__all__ = [
    "BACKENDS",
    "Backend",
    "ExecutorBackend",
    "RunTimeout",
    "RunTiming",
    "UnsupportedError",
    "WorkerError",
    "get_backend",
]

T = TypeVar("T")

#: Longest a worker may take to get ready (import, spawn) before the run fails.
READY_TIMEOUT_S = 120.0


class WorkerError(RuntimeError):
    """A worker raised or died. ``worker`` is its index; the message (and, for
    threads, ``__cause__``) carries the worker's own traceback."""

    def __init__(self, message: str, worker: int) -> None:
        super().__init__(message)
        self.worker = worker


class RunTimeout(RuntimeError):
    """A run overran its deadline (a sweep's ``timeout``); its workers were stopped."""


def _overran(deadline: float | None) -> RunTimeout:
    late = 0.0 if deadline is None else time.monotonic() - deadline
    return RunTimeout(f"overran its deadline (stopped {late:.2f} s after it)")


def _until(deadline: float) -> float:
    """Seconds from now to a :func:`time.monotonic` deadline (0 if past)."""
    return max(0.0, deadline - time.monotonic())


def _unstoppable(names: list[str]) -> WorkerError:
    return WorkerError(
        f"worker(s) {', '.join(names)} did not stop within {STOP_GRACE_S:g} s of being "
        "cancelled: they run code blocked in C that cannot be interrupted, and are left "
        "running (use the processes backend for such code: processes can be terminated)",
        -1,
    )


class UnsupportedError(RuntimeError):
    """A backend cannot run here or cannot run this kernel; the message says why."""


@dataclass(frozen=True)
class RunTiming:
    """One run of N workers. Times in seconds; stamps in ns on the shared clock."""

    setup_s: float
    span_s: float
    total_s: float
    workers: tuple[WorkerStamp, ...]
    #: GIL contention during the run, when it was metered (see :meth:`Backend.metered_run`).
    gil: GILReading | None = None
    #: How ``span_s`` was taken: first start to last end on one ``"shared clock"``,
    #: or the longest of the ``"per-worker durations"`` where the workers' clocks
    #: cannot be compared (other hosts).
    span_from: Literal["shared clock", "per-worker durations"] = "shared clock"

    @property
    def cpu_s(self) -> float:
        """CPU seconds used by all workers together during their calls."""
        return sum(w.cpu_s for w in self.workers)

    @property
    def iterations(self) -> int:
        return sum(w.iterations for w in self.workers)


def _timing(t0: int, t_ready: int, t_done: int, stamps: Sequence[WorkerStamp]) -> RunTiming:
    """Work span: first start to last end, every stamp on the one shared clock."""
    return RunTiming(
        setup_s=(t_ready - t0) / 1e9,
        span_s=(max(s.end_ns for s in stamps) - min(s.start_ns for s in stamps)) / 1e9,
        total_s=(t_done - t0) / 1e9,
        workers=tuple(stamps),
    )


class Backend(ABC):
    """Runs one chunk per worker, all at once, and times them."""

    name: str = ""
    description: str = ""
    #: Options this backend accepts in :meth:`run` besides the chunks.
    options: frozenset[str] = frozenset()
    #: How :meth:`metered_run` reads GIL contention: ``"shared"`` (the workers
    #: share this interpreter's GIL: one meter here), ``"per-worker"`` (each
    #: worker has its own GIL and its own meter), or None (not metered).
    gil_meter: Literal["shared", "per-worker"] | None = None

    def availability(self) -> str | None:
        """``None`` if the backend can run on this Python, else the reason."""
        return None

    def unsupported_reason(self, kernel: Kernel) -> str | None:
        """``None`` if ``kernel`` can run on this backend, else the reason."""
        return None

    def run(
        self,
        kernel: Kernel,
        chunks: Sequence[int],
        *,
        deadline: float | None = None,
        **options: Any,
    ) -> RunTiming:
        """Run ``kernel(chunks[i])`` in worker ``i``, all workers at once.

        ``deadline`` (a :func:`time.monotonic` time): past it, the workers are
        stopped and :class:`RunTimeout` is raised."""
        self._check(kernel, chunks, options)
        return self._run(kernel, list(chunks), deadline, **options)

    def _check(self, kernel: Kernel, chunks: Sequence[int], options: dict[str, Any]) -> None:
        unknown = set(options) - self.options
        if unknown:
            accepted = ", ".join(sorted(self.options)) or "none"
            raise ValueError(
                f"backend {self.name!r} does not support option(s) "
                f"{', '.join(sorted(unknown))}; it accepts: {accepted}"
            )
        reason = self.availability() or self.unsupported_reason(kernel)
        if reason:
            raise UnsupportedError(f"{self.name} cannot run {kernel.name}: {reason}")
        if not chunks:
            raise ValueError("at least one chunk (worker) is needed")

    @contextlib.contextmanager
    def cell(self, workers: int, options: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Wraps all the runs of one cell (warm-ups and repeats); yields the
        options to run them with. Most backends need nothing here; one that
        owns costly resources (a Dask cluster) sets them up once per cell."""
        yield dict(options)

    def metered_run(
        self,
        kernel: Kernel,
        chunks: Sequence[int],
        *,
        deadline: float | None = None,
        **options: Any,
    ) -> RunTiming:
        """:meth:`run` with the GIL contention meter on (``gil`` is filled in).

        Kept apart from the timed runs: the probe costs the workers a little."""
        if self.gil_meter is None:
            raise UnsupportedError(f"{self.name} does not meter GIL contention")
        with GILMeter() as meter:
            timing = self.run(kernel, chunks, deadline=deadline, **options)
        return replace(timing, gil=meter.reading())

    @abstractmethod
    def _run(
        self, kernel: Kernel, chunks: list[int], deadline: float | None, **options: Any
    ) -> RunTiming: ...

    def __repr__(self) -> str:
        return f"<backend {self.name}>"


class SerialBackend(Backend):
    name = "serial"
    description = "one worker after another in the calling thread (the baseline)"

    def _run(
        self, kernel: Kernel, chunks: list[int], deadline: float | None, **options: Any
    ) -> RunTiming:
        running = Running()  # compiled kernels stop through the cancel generation,
        # interpreted ones through an exception raised in this thread.
        # Signals need no watch here: the kernels run in this thread, where
        # Ctrl-C reaches them directly.
        with Watch(deadline, lambda _: running.stop(), signals=False) as watch:
            try:
                with running.kernel():
                    t0 = time.perf_counter_ns()
                    stamps = [timed(kernel, n) for n in chunks]
                    t_done = time.perf_counter_ns()
            except Cancelled as exc:
                if watch.expired:
                    raise _overran(deadline) from exc
                raise
        if watch.expired:  # it fired as the last call returned
            raise _overran(deadline)
        return _timing(t0, t0, t_done, stamps)


class ThreadsBackend(Backend):
    name = "threads"
    description = "N threads of this interpreter (they share its GIL)"
    gil_meter = "shared"

    def _run(
        self, kernel: Kernel, chunks: list[int], deadline: float | None, **options: Any
    ) -> RunTiming:
        count = len(chunks)
        start_line = threading.Barrier(count + 1)
        stamps: list[WorkerStamp | None] = [None] * count
        errors: list[tuple[int, BaseException]] = []
        since = cancel_generation()  # any cancel from here on stops every worker

        def work(i: int) -> None:
            try:
                try:
                    start_line.wait()
                except threading.BrokenBarrierError:
                    return  # the run was abandoned before the start
                try:
                    with running.kernel():
                        stamps[i] = timed(kernel, chunks[i], since)
                except BaseException as exc:
                    errors.append((i, exc))
                    cancel_running()  # stop the other workers at their next check
            except BaseException:  # a stop request that came as the kernel returned
                return

        threads = [
            threading.Thread(target=work, args=(i,), name=f"gilfree-worker-{i}", daemon=True)
            for i in range(count)
        ]
        running = Running()

        def stop(outcome: str) -> None:
            # Ctrl-C or the deadline: the watch has bumped the cancel
            # generation already (compiled kernels); stop interpreted loops too.
            start_line.abort()
            running.stop()

        with Watch(deadline, stop) as watch:
            t0 = time.perf_counter_ns()
            try:
                for t in threads:
                    t.start()
                start_line.wait()
                t_ready = time.perf_counter_ns()
                for t in threads:
                    # With a deadline, no later than it plus the grace to stop:
                    # a worker blocked in C must not hang the caller.
                    t.join(None if deadline is None else _until(deadline + STOP_GRACE_S))
                t_done = time.perf_counter_ns()
            except BaseException as exc:
                # Interrupted, past the deadline, or a thread failed to start.
                start_line.abort()
                cancel_running()
                running.stop()
                left = join_all([t for t in threads if t.ident is not None])
                if left:
                    raise _unstoppable(left) from exc
                if watch.expired and not isinstance(exc, KeyboardInterrupt):
                    raise _overran(deadline) from exc
                raise
            left = [t.name for t in threads if t.is_alive()]
            if left:
                raise _unstoppable(left)
        if watch.expired:
            raise _overran(deadline)
        _raise_first(errors)
        return _timing(t0, t_ready, t_done, [s for s in stamps if s is not None])


def _describe(exc: BaseException) -> str:
    """``Type: message`` and the full traceback, as sent back by any worker."""
    return f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_exception(exc))


def _cause(errors: list[tuple[int, T]], cancelled: Callable[[T], bool]) -> tuple[int, T]:
    """The first worker's error that is not the Cancelled of a worker stopped
    because of another one's failure (that Cancelled is our doing, not the cause)."""
    return min([e for e in errors if not cancelled(e[1])] or errors, key=lambda e: e[0])


def _raise_first(errors: list[tuple[int, BaseException]]) -> None:
    if not errors:
        return
    i, exc = _cause(errors, lambda e: isinstance(e, Cancelled))
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    raise WorkerError(f"worker {i} raised {_describe(exc)}", i) from exc


# --------------------------------------------------------------------------- processes


def _ref(kernel: Kernel) -> KernelRef:
    """How to name ``kernel`` to a worker: registered kernels by name (their
    compiled functions are looked up there, not pickled), others as themselves."""
    return kernel.name if KERNELS.get(kernel.name) is kernel else kernel


def _pickled(kernel: Kernel, where: str) -> bytes:
    """``kernel`` pickled, or UnsupportedError saying why it cannot be sent."""
    try:
        return pickle.dumps(kernel)
    except Exception as exc:
        raise UnsupportedError(
            f"{kernel.name} cannot be pickled, so it cannot be sent to {where} "
            f"({type(exc).__name__}: {exc}); define it at module level"
        ) from None


def _die_with_parent() -> None:
    """Linux: have the kernel kill this process if its parent dies (a parent
    killed with SIGKILL runs no clean-up of its own)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _process_main(conn: Any, go: Any, kernel: KernelRef, n: int) -> None:
    """Entry point of a worker process: report ready, wait for go, run, report."""
    try:
        parent = os.getppid()
        _die_with_parent()
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
                    args=(send, go, ref, n),
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


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


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


def resolve_start_method(start_method: str | None) -> str:
    """Validate a multiprocessing start method (``None``: the platform default)."""
    methods = multiprocessing.get_all_start_methods()
    if start_method is None:
        return multiprocessing.get_start_method(allow_none=True) or methods[0]
    if start_method not in methods:
        raise ValueError(
            f"unknown start method {start_method!r}; on this platform use one of: "
            f"{', '.join(methods)}"
        )
    return start_method


# ----------------------------------------------------------------------- interpreters


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


_INTERP_CODE = """
import json as _json, os as _os, traceback as _tb
_msg = {{}}
try:
    {setup}
    from gilfree._worker import timed as _timed, ready as _ready
    _kernel = {kernel}
    _ready(_kernel)
except BaseException as _exc:  # this interpreter cannot load the kernel
    _msg = {{"unsupported": type(_exc).__name__ + ": " + str(_exc) + "\\n" + _tb.format_exc()}}
else:
    _os.write({out}, b"ready\\n")
    _meter = _stopper = None
    try:
        if _os.read({go}, 1) == b"g":
            if {meter}:
                from gilfree.meter import GILMeter as _GILMeter
                _meter = _GILMeter().start()
            if {stoppable}:
                # An interpreted loop, stopped by an exception when told. It
                # runs in a thread of this interpreter's own: on CPython 3.12
                # the thread that entered the interpreter cannot be targeted.
                import threading as _threading
                from gilfree._watch import Running as _Running
                _running = _Running()
                _out = []
                def _work():
                    try:
                        with _running.kernel():
                            _out.append(_timed(_kernel, {n}, {since}))
                    except BaseException as _exc:
                        _out.append(_exc)
                def _stop():
                    if _os.read({stop}, 1) == b"s":
                        _running.stop()
                _stopper = _threading.Thread(target=_stop)
                _stopper.start()
                _worker = _threading.Thread(target=_work)
                _worker.start()
                _worker.join()
                if isinstance(_out[0], BaseException):
                    raise _out[0]
                _msg = {{"ok": list(_out[0])}}
            else:
                _msg = {{"ok": list(_timed(_kernel, {n}, {since}))}}
        else:
            _msg = {{"abandoned": True}}
    except BaseException as _exc:
        # An ImportError here means a module cannot be loaded in a subinterpreter
        # (NumPy refuses own-GIL ones): the kernel cannot run here, it did not fail.
        _kind = "unsupported" if isinstance(_exc, ImportError) else "error"
        _msg = {{_kind: type(_exc).__name__ + ": " + str(_exc) + "\\n" + _tb.format_exc()}}
        try:  # stop the other workers: the cancel generation is process-wide
            from gilfree._countdown import cancel_running as _cancel
            _cancel()
        except BaseException:
            pass
    finally:
        if _meter is not None:  # its probe thread must end before the interpreter
            _msg["gil"] = _meter.stop().__dict__
_os.write({out}, (_json.dumps(_msg) + "\\n").encode())
if _stopper is not None:  # it ends when the run does (the main interpreter says)
    _stopper.join()
"""


@contextlib.contextmanager
def _interp_source(kernel: Kernel) -> Iterator[tuple[str, str]]:
    """(setup statement, expression for the kernel) in a subinterpreter's code.

    A registered kernel is named. Any other is pickled to a temporary file
    (removed afterwards) and loaded from it there, after this process's
    ``sys.path`` is handed over so that its module can be imported. A file, not
    a literal in the source: a user's 128 MiB argument would otherwise become
    half a gigabyte of code to compile in every interpreter."""
    ref = _ref(kernel)
    if isinstance(ref, str):
        yield "pass", repr(ref)
        return
    payload = _pickled(kernel, "a subinterpreter")
    fd, path = tempfile.mkstemp(prefix="gilfree-kernel-", suffix=".pickle")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        del payload
        setup = f"import sys as _sys; _sys.path[:] = {sys.path!r}"
        load = f"__import__('pickle').loads(__import__('pathlib').Path({path!r}).read_bytes())"
        yield setup, load
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
        with _interp_source(kernel) as (setup, kernel_expr):  # before anything is created
            return self._run_source(
                setup, kernel_expr, chunks, meter, deadline, stoppable=not kernel.cancellable
            )

    def _run_source(
        self,
        setup: str,
        kernel_expr: str,
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
            code = _INTERP_CODE.format(
                setup=setup,
                kernel=kernel_expr,
                n=chunks[i],
                since=since,
                out=outs[i][1],
                go=go_r,
                stop=stop_r,
                stoppable=stoppable,
                meter=meter,
            )
            try:
                error = api.run(interp, code)
                if error:
                    os.write(outs[i][1], (json.dumps({"error": error}) + "\n").encode())
            finally:
                # Destroy from the thread that ran it: on CPython 3.12,
                # destroying from another thread an interpreter that imported
                # threading hangs.
                with contextlib.suppress(Exception):
                    api.destroy(interp)

        released = False
        left: list[str] = []
        t0 = time.perf_counter_ns()
        try:
            for i in range(count):
                interps.append(api.create())
                t = threading.Thread(
                    target=drive, args=(i, interps[i]), name=f"gilfree-interp-{i}", daemon=True
                )
                t.start()
                threads.append(t)
            ready_by = _earliest(time.monotonic() + READY_TIMEOUT_S, deadline)
            for i in range(count):
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
        unsupported = [r["unsupported"] for r in replies if "unsupported" in r]
        if unsupported:
            raise UnsupportedError(
                f"it cannot run in a subinterpreter: {_headline(unsupported[0])}"
            )
        failed = [(i, str(r.get("error", r))) for i, r in enumerate(replies) if "ok" not in r]
        if failed:
            i, error = _cause(failed, lambda text: text.startswith("Cancelled"))
            raise WorkerError(f"interpreter {i} raised {error}", i)
        timing = _timing(t0, t_ready, t_done, [WorkerStamp(*r["ok"]) for r in replies])
        if meter:
            gil = GILReading.pooled(GILReading(**r["gil"]) for r in replies)
            timing = replace(timing, gil=gil)
        return timing


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


# ----------------------------------------------------------------------- executors


class ExecutorBackend(Backend):
    """Any :class:`concurrent.futures.Executor` (loky, an existing pool, a
    cluster's executor). gilfree does not own its workers, so the start line is
    a time: every task waits until the same instant on the shared clock.
    ``setup_s`` is the warm-up round (one trivial task per worker)."""

    name = "executor"
    description = "a concurrent.futures.Executor passed in by the caller"

    def __init__(self, executor: concurrent.futures.Executor) -> None:
        if not isinstance(executor, concurrent.futures.Executor):
            raise TypeError(
                f"backend must be a name or a concurrent.futures.Executor, "
                f"not {type(executor).__name__}"
            )
        self.executor = executor
        self.name = f"executor:{type(executor).__name__}"
        # A thread pool of this process shares its GIL (and cancel generation).
        if isinstance(executor, concurrent.futures.ThreadPoolExecutor):
            self.gil_meter = "shared"

    def _run(
        self, kernel: Kernel, chunks: list[int], deadline: float | None, **options: Any
    ) -> RunTiming:
        # Tasks in this process (a thread pool) stop through the cancel
        # generation, which the watch bumps without the GIL on Ctrl-C or the
        # deadline; gilfree does not own the pool's threads, so interpreted
        # tasks there run to their end.
        here = self.gil_meter == "shared"
        with Watch(deadline, signals=here):
            t0 = time.perf_counter_ns()
            ref = _ref(kernel)
            warm = [self.executor.submit(ready, ref) for _ in chunks]
            _results(warm, deadline)
            t_ready = time.perf_counter_ns()
            # Margin: twice the warm-up round, at least 20 ms, for the tasks to
            # be picked up before the start time.
            go_ns = time.perf_counter_ns() + max(20_000_000, 2 * (t_ready - t0))
            # The cancel generation is per process: hand it over only where the
            # tasks run in this one.
            since = cancel_generation() if here else None
            futures = [self.executor.submit(timed_at, ref, n, go_ns, since) for n in chunks]
            stamps = _results(futures, deadline)
            t_done = time.perf_counter_ns()
        return _timing(t0, t_ready, t_done, stamps)


def _results(futures: list[concurrent.futures.Future[Any]], deadline: float | None) -> list[Any]:
    """All results in order; the first task that fails stops the others."""
    try:
        timeout = None if deadline is None else _until(deadline)
        done, _ = concurrent.futures.wait(
            futures, timeout, return_when=concurrent.futures.FIRST_EXCEPTION
        )
        if len(done) < len(futures) and not any(f.exception() for f in done):
            raise _overran(deadline)
        for i, f in enumerate(futures):
            if f.done() and not f.cancelled() and f.exception() is not None:
                exc = f.exception()
                assert exc is not None
                if isinstance(exc, KeyboardInterrupt):
                    raise exc
                raise WorkerError(f"task {i} raised {_describe(exc)}", i) from exc
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        # Tasks running in this process stop at their next check; tasks in the
        # caller's other processes run to their end: the executor is theirs.
        cancel_running()
        concurrent.futures.wait(futures, STOP_GRACE_S)
        raise


_BACKENDS: list[Backend] = [
    SerialBackend(),
    ThreadsBackend(),
    ProcessesBackend(),
    InterpretersBackend(),
]

# The Dask backend lives in its own module (it builds on the names above).
from gilfree._dask import DaskBackend  # noqa: E402

_BACKENDS.append(DaskBackend())

#: name -> :class:`Backend`. Any :class:`concurrent.futures.Executor` is accepted too.
BACKENDS: Registry[Backend] = Registry("backend", {b.name: b for b in _BACKENDS})

#: Backends the demo and a sweep run when none are named: not serial (it is the
#: baseline) and not dask (a cluster per cell takes seconds; name it to run it).
DEFAULT_BACKENDS = tuple(b for b in BACKENDS if b not in ("serial", "dask"))


def get_backend(backend: str | Backend | concurrent.futures.Executor) -> Backend:
    """Return the :class:`Backend` for a name, a backend or an executor."""
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, concurrent.futures.Executor):
        return ExecutorBackend(backend)
    return BACKENDS[backend]


def iter_available() -> Iterator[tuple[str, str | None]]:
    """(name, reason it is unavailable or None) for every registered backend."""
    for name, b in BACKENDS.items():
        yield name, b.availability()
