"""What the GIL contention meter costs the work it measures.

Full run (about 3 minutes on 2 cores):
    python -m pytest bench/test_bench_meter.py --benchmark-columns=median,rounds
Each benchmark times the same workload without and with a running
``GILMeter`` at its default interval, in adjacent pairs whose order
alternates. The overhead is the median of the per-pair ratios, minus one: a
pair shares the machine's state of the moment, so slow drift cancels, which
two separate medians would not do on a 2-CPU machine whose rounds vary by
about 4%. ``extra_info`` holds the overhead, its bootstrap 95% interval and
the medians. The issue's target: under 2% of the measured work.

On a shared 2-CPU machine that interval is several percent wide, too wide to
settle a 1-2% question alone. ``test_probe_wake_cost`` therefore also
measures the cost of one probe wake-up where it is largest (two nogil threads,
every CPU busy, so each wake-up takes a CPU from a worker): with the probe
made 10-40x more frequent, the slowdown rises far above the noise; divided by
the meter's own sample count it gives the cost per wake-up, which at the
default interval is the overhead.
"""

from __future__ import annotations

import statistics
import threading
import time

import numpy as np
import pytest

from gilfree import GILMeter, countdown
from gilfree.measure import calibrate
from gilfree.meter import DEFAULT_INTERVAL

# (kernel, threads): one busy Python thread, two contending ones, and two that
# release the GIL (on 2 cores both are busy, so each probe wake-up takes a CPU
# from one of them: the worst case).
WORKLOADS = [("python", 1), ("python", 2), ("cython-nogil", 2)]
TARGET = 0.02


def _timed(kernel: str, threads: int, n: int, interval: float | None) -> tuple[float, int]:
    """Seconds for ``threads`` threads to count ``n`` each, and the probe's
    sample count (0 without a meter, ``interval`` None)."""
    workers = [threading.Thread(target=countdown, args=(n, kernel)) for _ in range(threads)]
    meter = GILMeter(interval).start() if interval is not None else None
    start = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - start
    return elapsed, meter.stop().samples if meter is not None else 0


def _once(kernel: str, threads: int, n: int, metered: bool) -> float:
    return _timed(kernel, threads, n, DEFAULT_INTERVAL if metered else None)[0]


def overhead(kernel: str, threads: int, n: int, pairs: int) -> dict[str, object]:
    """Median of metered/plain over adjacent pairs, with a bootstrap 95% CI."""
    plain: list[float] = []
    metered: list[float] = []
    for i in range(pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        for m in order:
            (metered if m else plain).append(_once(kernel, threads, n, m))
    ratios = np.array(metered) / np.array(plain)
    rng = np.random.default_rng(0)
    boot = np.median(rng.choice(ratios, (2000, ratios.size)), axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return {
        "overhead": float(np.median(ratios)) - 1,
        "overhead_ci95": [float(low) - 1, float(high) - 1],
        "plain_median_s": statistics.median(plain),
        "metered_median_s": statistics.median(metered),
    }


@pytest.mark.parametrize(("kernel", "threads"), WORKLOADS, ids=[f"{k}-x{t}" for k, t in WORKLOADS])
def test_meter_overhead(benchmark, quick: bool, kernel: str, threads: int) -> None:  # type: ignore[no-untyped-def]
    # Each thread counts n; n sized so that one thread alone takes ~0.25 s.
    n = 10_000 if quick else calibrate(kernel, 0.25)
    pairs = 1 if quick else 60
    figures = benchmark.pedantic(overhead, args=(kernel, threads, n, pairs), rounds=1, iterations=1)
    if quick:
        return
    benchmark.extra_info.update(n=n, pairs=pairs, **figures)
    assert figures["overhead"] < TARGET, figures  # type: ignore[operator]


def wake_cost(n: int, interval: float, pairs: int) -> dict[str, float]:
    """Seconds of work lost per probe wake-up: median over adjacent pairs of
    (metered - plain) / samples, two cython-nogil threads."""
    costs = []
    for _ in range(pairs):
        plain, _ = _timed("cython-nogil", 2, n, None)
        metered, samples = _timed("cython-nogil", 2, n, interval)
        costs.append((metered - plain) / max(samples, 1))
    cost = statistics.median(costs)
    return {"cost_per_wake_s": cost, "projected_overhead": cost / DEFAULT_INTERVAL}


@pytest.mark.parametrize("interval", [5e-5, 2e-4], ids=["50us", "200us"])
def test_probe_wake_cost(benchmark, quick: bool, interval: float) -> None:  # type: ignore[no-untyped-def]
    n = 10_000 if quick else calibrate("cython-nogil", 0.25)
    pairs = 1 if quick else 15
    figures = benchmark.pedantic(wake_cost, args=(n, interval, pairs), rounds=1, iterations=1)
    if quick:
        return
    benchmark.extra_info.update(n=n, pairs=pairs, interval_s=interval, **figures)
    assert figures["projected_overhead"] < TARGET, figures
