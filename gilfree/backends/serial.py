"""The ``serial`` backend: one worker after another in the calling thread (the baseline)."""

from __future__ import annotations

import time
from typing import Any

from gilfree._countdown import Cancelled
from gilfree._watch import Running, Watch
from gilfree._worker import timed
from gilfree.backends._base import Backend, RunTiming, _overran, _timing
from gilfree.kernels import Kernel

__all__ = ["SerialBackend"]


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
