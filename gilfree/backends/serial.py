"""The ``serial`` backend: one worker after another in the calling thread (the baseline).

Given a deadline, the chunks run in one helper thread instead, and the caller
waits for it: code blocked in C (a user's function in ``time.sleep``) cannot
be interrupted in any thread, and the caller must be able to give up on it,
as on the threads backend, rather than wait with it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from gilfree._countdown import Cancelled, cancel_generation, cancel_running
from gilfree._watch import STOP_GRACE_S, Running, Watch, join_all
from gilfree._worker import WorkerStamp, timed
from gilfree.backends._base import (
    Backend,
    RunTiming,
    _overran,
    _timing,
    _unstoppable,
    _until,
)
from gilfree.kernels import Kernel
from gilfree.sampler import window_start, window_stop

__all__ = ["SerialBackend"]


class SerialBackend(Backend):
    name = "serial"
    description = "one worker after another in the calling thread (the baseline)"

    def _run(
        self, kernel: Kernel, chunks: list[int], deadline: float | None, **options: Any
    ) -> RunTiming:
        if deadline is not None:
            return self._run_in_thread(kernel, chunks, deadline)
        running = Running()  # compiled kernels stop through the cancel generation,
        # interpreted ones through an exception raised in this thread.
        # Signals need no watch here: the kernels run in this thread, where
        # Ctrl-C reaches them directly.
        with Watch(deadline, lambda _: running.stop(), signals=False) as watch:
            try:
                with running.kernel(interrupt=not kernel.cancellable):
                    reader = window_start()
                    t0 = time.perf_counter_ns()
                    stamps = [timed(kernel, n) for n in chunks]
                    t_done = time.perf_counter_ns()
                    window_stop(reader)
            except Cancelled as exc:
                if watch.expired:
                    raise _overran(deadline) from exc
                raise
        if watch.expired:  # it fired as the last call returned
            raise _overran(deadline)
        return _timing(t0, t0, t_done, stamps)

    def _run_in_thread(self, kernel: Kernel, chunks: list[int], deadline: float) -> RunTiming:
        """The chunks one after another in a helper thread, given up on (and
        left running, with an error that says so) if it does not stop within
        the grace after its deadline."""
        running = Running()
        since = cancel_generation()  # any cancel from here on stops it
        outcome: list[tuple[int, int, list[WorkerStamp]] | BaseException] = []

        def work() -> None:
            try:
                with running.kernel(interrupt=not kernel.cancellable):
                    t0 = time.perf_counter_ns()
                    stamps = [timed(kernel, n, since) for n in chunks]
                    outcome.append((t0, time.perf_counter_ns(), stamps))
                    window_stop(reader)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=work, name="gilfree-serial", daemon=True)
        # Ctrl-C or the deadline: the watch bumps the cancel generation
        # (compiled kernels); stop an interpreted loop too.
        with Watch(deadline, lambda _: running.stop()) as watch:
            reader = window_start()
            thread.start()
            try:
                thread.join(_until(deadline + STOP_GRACE_S))
            except BaseException as exc:  # Ctrl-C while waiting
                cancel_running()
                running.stop()
                if join_all([thread]):
                    raise _unstoppable([thread.name]) from exc
                raise
        if thread.is_alive():
            raise _unstoppable([thread.name])
        result = outcome[0]
        if isinstance(result, BaseException):
            if isinstance(result, Cancelled) and watch.expired:
                raise _overran(deadline) from result
            raise result  # the kernel's own exception, as if it had run here
        if watch.expired:
            raise _overran(deadline)
        t0, t_done, stamps = result
        return _timing(t0, t0, t_done, stamps)
