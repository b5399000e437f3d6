"""Per-iteration cost of every kernel, and what the honesty measures cost.

Run: ``python -m pytest bench/test_bench_kernels.py --benchmark-columns=median,iqr``.
``bench/kernel_table.py`` prints the README's table from the same kernels.
"""

from __future__ import annotations

import pytest

from gilfree import KERNELS, _countdown, countdown

# Work per call: about 0.2-0.4 s on a 4 GHz core, far above timer noise.
FULL_N = {
    "python": 10**7,
    "cython-object": 10**7,
    "cython-gil": 10**9,
    "cython-nogil": 10**9,
    "numpy": 2 * 10**9,
}


@pytest.mark.parametrize("name", list(KERNELS))
def test_kernel_ns_per_iteration(benchmark, quick: bool, name: str) -> None:  # type: ignore[no-untyped-def]
    n = FULL_N.get(name, 10**7) // (10**4 if quick else 1)
    result = benchmark.pedantic(countdown, args=(n, name), rounds=5, warmup_rounds=1)
    assert result == n
    if not quick:
        benchmark.extra_info["n"] = n
        benchmark.extra_info["ns_per_iteration"] = benchmark.stats.stats.median / n * 1e9


@pytest.mark.parametrize("variant", ["checked", "unchecked"])
def test_signal_check_cost(benchmark, quick: bool, variant: str) -> None:  # type: ignore[no-untyped-def]
    # cython-nogil (leaves its nogil block every CHUNK iterations to check for
    # signals and cancellation) against the same loop in one nogil block.
    n = 10**9 // (10**4 if quick else 1)
    fn = _countdown.countdown_nogil if variant == "checked" else _countdown.spin_unchecked
    assert benchmark.pedantic(fn, args=(n,), rounds=5, warmup_rounds=1) == n


@pytest.mark.parametrize("factor", [1, 4])
def test_cython_nogil_time_is_linear(benchmark, quick: bool, factor: int) -> None:  # type: ignore[no-untyped-def]
    # Compare the medians of factor=1 and factor=4: a deleted loop would be flat.
    n = factor * 10**9 // (10**4 if quick else 1)
    assert benchmark.pedantic(countdown, args=(n,), rounds=3, warmup_rounds=1) == n
