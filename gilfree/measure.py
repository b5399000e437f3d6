"""Timing helpers: sizing the work so that it takes a given time."""

from __future__ import annotations

import time

from gilfree.kernels import MAX_N, Kernel, get_kernel


def time_call(kernel: str | Kernel, n: int) -> float:
    """Seconds one call ``kernel(n)`` takes (``time.perf_counter``)."""
    k = get_kernel(kernel)
    start = time.perf_counter()
    k(n)
    return time.perf_counter() - start


def calibrate(kernel: str | Kernel, seconds: float, start: int = 1000) -> int:
    """Return the ``n`` for which ``kernel(n)`` takes about ``seconds`` here.

    Grows ``n`` until one call takes at least a tenth of the target (so timer
    resolution and call overhead do not skew the estimate), then scales
    linearly: every kernel's time is linear in ``n``.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    k = get_kernel(kernel)
    n = max(1, start)
    k(n)  # warm up: lazy imports (NumPy) and first-call costs are not work
    floor = max(seconds / 10, 0.002)
    while True:
        elapsed = time_call(k, n)
        if elapsed >= floor or n >= MAX_N // 16:
            break
        n *= 16 if elapsed < floor / 16 else 2
    return max(1, min(MAX_N, round(n * seconds / max(elapsed, 1e-9))))
