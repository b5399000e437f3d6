"""The issue's scaling figures and the harness's own overhead.

Full run (about 2 minutes on 2 cores):
    python -m pytest bench/test_bench_backends.py --benchmark-columns=median,iqr,rounds
Each speedup benchmark stores the serial/parallel medians of one side-by-side
``gilfree.run`` in ``extra_info`` (see ``--benchmark-json``); the assertions
encode the figures the README quotes, with the serial work sized to ~1 s.
"""

from __future__ import annotations

import pytest

from gilfree import KERNELS
from gilfree.backends import BACKENDS
from gilfree.measure import calibrate, run
from gilfree.meter import gil_enabled

#: On a free-threaded build with the GIL off, GIL-holding kernels scale on threads too.
SCALES = (1.7, None) if not gil_enabled() else (None, 1.15)
# (kernel, backend, lowest acceptable speedup, highest) on 2 workers, 2+ cores.
FIGURES = [
    ("cython-nogil", "threads", 1.9, None),
    ("python", "threads", *SCALES),
    ("cython-gil", "threads", *SCALES),
    ("python", "processes", 1.8, None),
    ("python", "interpreters", 1.8, None),
]


@pytest.mark.parametrize(("kernel", "backend", "low", "high"), FIGURES)
def test_two_worker_speedup(benchmark, quick: bool, kernel, backend, low, high) -> None:  # type: ignore[no-untyped-def]
    reason = BACKENDS[backend].availability()
    if reason:
        pytest.skip(reason)
    n = 10_000 if quick else calibrate(kernel, 1.0)
    repeats = 1 if quick else 5
    result = benchmark.pedantic(
        run, args=(kernel, backend, 2, n), kwargs={"repeats": repeats}, rounds=1, iterations=1
    )
    assert result.ok
    if quick:
        return
    benchmark.extra_info.update(
        n=n,
        speedup=result.speedup,
        ci95=list(result.speedup_ci()),
        serial_median_s=result.baseline_median_s,
        parallel_median_s=result.median_s,
        setup_median_s=result.setup_median_s,
    )
    if low is not None:
        assert result.speedup >= low, result.speedup
    if high is not None:
        assert result.speedup <= high, result.speedup


@pytest.mark.parametrize("backend", ["threads", "processes", "interpreters"])
def test_harness_overhead_n0(benchmark, backend: str) -> None:  # type: ignore[no-untyped-def]
    # Everything the harness does for one 2-worker run with nothing to count:
    # create the workers, the start line, the stamps, the joins.
    b = BACKENDS[backend]
    if b.availability():
        pytest.skip(b.availability())
    kernel = KERNELS["cython-nogil"]
    timing = benchmark(b.run, kernel, [0, 0])
    assert timing.iterations == 0
