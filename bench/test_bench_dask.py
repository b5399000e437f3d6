"""The dask backend against the processes backend, and what a Dask cell costs.

Full run (about 1 minute on 2 cores):
    python -m pytest bench/test_bench_dask.py --benchmark-columns=median,rounds
``test_python_on_dask_vs_processes`` measures both backends in one call,
side by side (the same calibrated n, each against its own serial baseline
from the same session). ``extra_info`` holds both speedups, their intervals
and start-up times. The overhead benchmarks time one run with nothing to count:
on a cluster that is already up (per run), and with the local cluster started
and stopped around it (per cell, which is what a sweep pays).
"""

from __future__ import annotations

import pytest

from gilfree import KERNELS
from gilfree.backends import BACKENDS
from gilfree.dask_backend import local_cluster
from gilfree.measure import calibrate, run

distributed = pytest.importorskip("distributed")
DASK = BACKENDS["dask"]


def test_python_on_dask_vs_processes(benchmark, quick: bool) -> None:  # type: ignore[no-untyped-def]
    n = 10_000 if quick else calibrate("python", 1.0)
    repeats = 1 if quick else 5

    def both() -> tuple[object, object]:
        return run("python", "dask", 2, n, repeats=repeats), run(
            "python", "processes", 2, n, repeats=repeats
        )

    dask, procs = benchmark.pedantic(both, rounds=1, iterations=1)
    assert dask.ok and procs.ok  # type: ignore[attr-defined]
    if quick:
        return
    benchmark.extra_info.update(
        n=n,
        dask_speedup=dask.speedup,  # type: ignore[attr-defined]
        dask_ci95=list(dask.speedup_ci()),  # type: ignore[attr-defined]
        dask_setup_median_s=dask.setup_median_s,  # type: ignore[attr-defined]
        processes_speedup=procs.speedup,  # type: ignore[attr-defined]
        processes_ci95=list(procs.speedup_ci()),  # type: ignore[attr-defined]
        processes_setup_median_s=procs.setup_median_s,  # type: ignore[attr-defined]
    )


def test_dask_overhead_per_run_on_a_running_cluster(benchmark) -> None:  # type: ignore[no-untyped-def]
    with (
        local_cluster(2) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        timing = benchmark(DASK.run, KERNELS["cython-nogil"], [0, 0], scheduler=client)
    assert timing.iterations == 0


def test_dask_overhead_per_cell_with_a_local_cluster(benchmark, quick: bool) -> None:  # type: ignore[no-untyped-def]
    rounds = 1 if quick else 3
    timing = benchmark.pedantic(
        DASK.run, args=(KERNELS["cython-nogil"], [0, 0]), rounds=rounds, iterations=1
    )
    assert timing.iterations == 0
