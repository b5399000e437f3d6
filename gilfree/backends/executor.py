"""The ``executor`` backend: any :class:`concurrent.futures.Executor` passed in."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from gilfree._countdown import cancel_generation, cancel_running
from gilfree._watch import STOP_GRACE_S, Watch
from gilfree._worker import ready, timed_at
from gilfree.backends._base import (
    Backend,
    RunTiming,
    WorkerError,
    _describe,
    _overran,
    _ref,
    _timing,
    _until,
)
from gilfree.kernels import Kernel

__all__ = ["ExecutorBackend"]


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
        super().__init__()
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
