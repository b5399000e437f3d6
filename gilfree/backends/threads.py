"""The ``threads`` backend: N threads of this interpreter, sharing its GIL."""

from __future__ import annotations

import threading
import time
from typing import Any

from gilfree._countdown import cancel_generation, cancel_running
from gilfree._watch import STOP_GRACE_S, Running, Watch, join_all
from gilfree._worker import WorkerStamp, timed
from gilfree.backends._base import (
    Backend,
    RunTiming,
    _overran,
    _raise_first,
    _timing,
    _unstoppable,
    _until,
)
from gilfree.kernels import Kernel
from gilfree.sampler import window_start, window_stop

__all__ = ["ThreadsBackend"]


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
                    with running.kernel(interrupt=not kernel.cancellable):
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
                reader = window_start()
                start_line.wait()
                t_ready = time.perf_counter_ns()
                for t in threads:
                    # With a deadline, no later than it plus the grace to stop:
                    # a worker blocked in C must not hang the caller.
                    t.join(None if deadline is None else _until(deadline + STOP_GRACE_S))
                t_done = time.perf_counter_ns()
                window_stop(reader)
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
