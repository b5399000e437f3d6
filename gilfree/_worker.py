"""What every worker runs: one kernel call between two stamps.

Kept tiny and import-light: it is imported in worker processes (spawn) and in
subinterpreters, where NumPy cannot be loaded.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

from gilfree import _countdown
from gilfree.kernels import KERNELS, Kernel

#: What a worker is told to run: a registered kernel's name, or a
#: :class:`Kernel` object (user callables, sent pickled where needed).
KernelRef = str | Kernel


def resolve(kernel: KernelRef) -> Kernel:
    """The kernel a reference stands for (names are looked up, importing what
    the kernel needs)."""
    return KERNELS[kernel] if isinstance(kernel, str) else kernel


class WorkerStamp(NamedTuple):
    """One worker's part of a run.

    ``start_ns`` and ``end_ns`` come from ``time.perf_counter_ns()``, which is
    system-wide (CLOCK_MONOTONIC on Linux, QPC on Windows, mach_absolute_time
    on macOS), so stamps from threads, processes and subinterpreters on one
    host are comparable. ``cpu_s`` is the CPU time of the worker's thread
    during the call: a thread waiting for the GIL burns none.
    """

    start_ns: int
    end_ns: int
    cpu_s: float
    iterations: int


def timed(kernel: KernelRef, n: int, since: int | None = None) -> WorkerStamp:
    """Run ``kernel(n, since)`` and stamp it."""
    work = resolve(kernel).prepare(n, since)  # look-up and checks stay outside
    cpu0 = time.thread_time()
    start = time.perf_counter_ns()
    iterations = work()
    end = time.perf_counter_ns()
    return WorkerStamp(start, end, time.thread_time() - cpu0, iterations)


def timed_at(kernel: KernelRef, n: int, go_ns: int, since: int | None = None) -> WorkerStamp:
    """Wait until ``perf_counter_ns() >= go_ns``, then :func:`timed`.

    The start line for executors gilfree does not control: every task is told
    the same start time on the shared clock.
    """
    kernel = resolve(kernel)  # resolve (and import) before the start line
    if since is None:
        # Read where it runs (the generation is per process), before waiting:
        # a cancel that comes while it waits for the start still stops it.
        since = _countdown.cancel_generation()
    while True:
        left = go_ns - time.perf_counter_ns()
        if left <= 0:
            break
        # Sleep most of the way, spin the last half millisecond.
        time.sleep(max(0.0, (left - 500_000) / 1e9) if left > 1_000_000 else 0)
    return timed(kernel, n, since)


def ready(kernel: KernelRef) -> int:
    """Warm-up task: resolve the kernel (importing what it needs), return the pid."""
    resolve(kernel)
    return os.getpid()


async def cancel_soon() -> None:
    """:func:`gilfree.cancel_running` as a coroutine: how a Dask worker's event
    loop is told to stop the countdowns in its process (``client.run`` fires
    and forgets coroutines only). Defined here, in the module every worker
    imports first, so that unpickling it imports nothing else."""
    _countdown.cancel_running()
