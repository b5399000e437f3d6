"""The shared base of every backend: :class:`Backend`, :class:`RunTiming`, the errors.

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
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from gilfree._countdown import Cancelled
from gilfree._watch import STOP_GRACE_S
from gilfree._worker import KernelRef, WorkerStamp
from gilfree.kernels import KERNELS, Kernel
from gilfree.meter import GILMeter, GILReading

__all__ = [
    "READY_TIMEOUT_S",
    "Backend",
    "RunTimeout",
    "RunTiming",
    "UnsupportedError",
    "WorkerError",
    "resolve_start_method",
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

    def __init__(self, **options: Any) -> None:
        """A backend with its own options (``ProcessesBackend(start_method=
        "spawn")``, ``DaskBackend(scheduler="tcp://host:8786")``), as
        ``ProcessPoolExecutor(mp_context=...)`` takes its own. Options given
        to a single :meth:`run` override them."""
        unknown = self._unknown(options)
        if unknown:
            raise TypeError(f"{type(self).__name__} takes no option(s) {unknown}")
        #: The options this instance runs with unless a run says otherwise.
        self.defaults: dict[str, Any] = {k: v for k, v in options.items() if v is not None}

    def configured(self, **options: Any) -> Backend:
        """This backend with ``options`` set (None leaves one as it is): the
        same instance when nothing changes, else a new one."""
        given = {k: v for k, v in options.items() if v is not None and k in self.options}
        if all(self.defaults.get(k) == v for k, v in given.items()):
            return self
        return type(self)(**{**self.defaults, **given})

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
        merged = {**self.defaults, **options}
        self._check(kernel, chunks, merged)
        return self._run(kernel, list(chunks), deadline, **merged)

    def _unknown(self, options: Mapping[str, Any]) -> str | None:
        """``"a, b; it accepts: c"`` for options this backend does not take, else None."""
        unknown = set(options) - self.options
        if not unknown:
            return None
        accepted = ", ".join(sorted(self.options)) or "none"
        return f"{', '.join(sorted(unknown))}; it accepts: {accepted}"

    def _check(self, kernel: Kernel, chunks: Sequence[int], options: dict[str, Any]) -> None:
        unknown = self._unknown(options)
        if unknown:
            raise ValueError(f"backend {self.name!r} does not support option(s) {unknown}")
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
        yield {**self.defaults, **options}

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


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


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
