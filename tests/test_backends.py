"""Every kernel runs on every backend and reports the right count; failures
reach the caller and leave nothing running. Parametrized over both registries."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import subprocess
import sys
import time

import pytest
from conftest import interpreter_count, live_children, our_threads, threads_settle_to

from gilfree import KERNELS, Kernel
from gilfree.backends import (
    BACKENDS,
    Backend,
    ExecutorBackend,
    UnsupportedError,
    WorkerError,
    get_backend,
)

HAS_INTERPRETERS = BACKENDS["interpreters"].availability() is None


@pytest.fixture(params=list(BACKENDS), ids=list(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    b = BACKENDS[request.param]
    reason = b.availability()
    if reason:
        pytest.skip(f"{b.name}: {reason}")
    return b


def small_n(kernel: Kernel) -> int:
    return 200_000 if kernel.name in ("python", "cython-object") else 10_000_000


def check_timing(timing, chunks: list[int]) -> None:  # type: ignore[no-untyped-def]
    assert timing.iterations == sum(chunks)
    assert [w.iterations for w in timing.workers] == chunks
    for w in timing.workers:
        assert w.end_ns >= w.start_ns
        assert w.cpu_s >= 0
    assert timing.setup_s >= 0
    assert timing.span_s >= 0
    assert timing.total_s >= timing.span_s
    assert timing.total_s >= timing.setup_s


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_every_kernel_on_every_backend(kernel: Kernel, backend: Backend, workers: int) -> None:
    chunks = [small_n(kernel) + i for i in range(workers)]
    reason = backend.unsupported_reason(kernel)
    if reason:
        with pytest.raises(UnsupportedError, match="cannot run"):
            backend.run(kernel, chunks)
        return
    check_timing(backend.run(kernel, chunks), chunks)


def test_zero_work_runs(backend: Backend) -> None:
    timing = backend.run(KERNELS["cython-nogil"], [0, 0])
    check_timing(timing, [0, 0])


def test_workers_overlap_in_time_on_parallel_backends(backend: Backend) -> None:
    # The start line: every worker starts before any has finished a long chunk.
    if backend.name == "serial":
        pytest.skip("serial runs one after another by design")
    timing = backend.run(KERNELS["cython-nogil"], [400_000_000] * 2)
    latest_start = max(w.start_ns for w in timing.workers)
    earliest_end = min(w.end_ns for w in timing.workers)
    assert latest_start < earliest_end


def test_worker_error_reaches_caller_and_nothing_is_left(backend: Backend) -> None:
    threads_before = len(our_threads())
    interps_before = interpreter_count()
    # A chunk of -1 makes that worker's kernel raise ValueError inside the worker.
    with pytest.raises((WorkerError, ValueError)) as info:
        backend.run(KERNELS["cython-nogil"], [10_000_000, -1])
    assert "must be >= 0" in str(info.value)
    if isinstance(info.value, WorkerError):
        assert info.value.worker == 1
        assert "Traceback" in str(info.value)  # the worker's own traceback
    # Nothing new is left running (one ending from an earlier test may be gone).
    assert len(threads_settle_to(threads_before)) <= threads_before
    assert live_children() == []
    assert interpreter_count() == interps_before


def test_a_failing_worker_stops_a_long_run_at_once(backend: Backend) -> None:
    # Worker 1 fails at once; worker 0 would count for minutes. The run must
    # stop the others and report the cause (not their Cancelled) right away.
    if backend.name == "serial":
        pytest.skip("serial runs chunks in order")
    started = time.perf_counter()
    with pytest.raises(WorkerError, match="must be >= 0") as info:
        backend.run(KERNELS["cython-nogil"], [10**12, -1])
    assert info.value.worker == 1
    assert time.perf_counter() - started < 10
    assert live_children() == []


def test_a_failing_task_stops_an_executor_run_at_once() -> None:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        started = time.perf_counter()
        with pytest.raises(WorkerError, match="must be >= 0") as info:
            get_backend(pool).run(KERNELS["cython-nogil"], [10**12, -1])
        assert info.value.worker == 1
        assert time.perf_counter() - started < 10


def test_unknown_backend_lists_names() -> None:
    with pytest.raises(KeyError) as info:
        get_backend("greenlets")
    for name in BACKENDS:
        assert name in str(info.value)


def test_backend_rejects_options_it_does_not_take() -> None:
    with pytest.raises(ValueError, match="does not support option"):
        BACKENDS["threads"].run(KERNELS["cython-nogil"], [10], start_method="fork")


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_processes_start_methods(method: str) -> None:
    timing = BACKENDS["processes"].run(KERNELS["python"], [1000, 2000], start_method=method)
    check_timing(timing, [1000, 2000])
    assert live_children() == []


def test_processes_unknown_start_method() -> None:
    with pytest.raises(ValueError, match="unknown start method 'teleport'"):
        BACKENDS["processes"].run(KERNELS["python"], [10], start_method="teleport")


@pytest.mark.parametrize(
    "make",
    [
        lambda: concurrent.futures.ThreadPoolExecutor(2),
        lambda: concurrent.futures.ProcessPoolExecutor(2),
    ],
    ids=["thread-pool", "process-pool"],
)
def test_any_executor_plugs_in(make) -> None:  # type: ignore[no-untyped-def]
    with make() as pool:
        b = get_backend(pool)
        assert isinstance(b, ExecutorBackend)
        timing = b.run(KERNELS["cython-nogil"], [1_000_000, 2_000_000])
        check_timing(timing, [1_000_000, 2_000_000])
        with pytest.raises(WorkerError, match="must be >= 0"):
            b.run(KERNELS["cython-nogil"], [10, -1])


def test_executor_backend_rejects_non_executors() -> None:
    with pytest.raises(TypeError, match="Executor"):
        ExecutorBackend("threads")  # type: ignore[arg-type]


@pytest.mark.skipif(HAS_INTERPRETERS, reason="subinterpreters are available here")
def test_interpreters_unavailable_says_why() -> None:
    reason = BACKENDS["interpreters"].availability()
    assert reason and "3.12" in reason
    with pytest.raises(UnsupportedError, match=r"3\.12"):
        BACKENDS["interpreters"].run(KERNELS["cython-nogil"], [10])


@pytest.mark.skipif(not HAS_INTERPRETERS, reason="needs CPython 3.12+ subinterpreters")
def test_interpreters_numpy_is_unsupported_with_reason() -> None:
    with pytest.raises(UnsupportedError, match="NumPy"):
        BACKENDS["interpreters"].run(KERNELS["numpy"], [10])


@pytest.mark.skipif(not HAS_INTERPRETERS, reason="needs CPython 3.12+ subinterpreters")
def test_compiled_module_imports_in_own_gil_subinterpreter() -> None:
    # The Cython directive subinterpreters_compatible=own_gil in action.
    timing = BACKENDS["interpreters"].run(KERNELS["cython-nogil"], [5_000_000])
    assert timing.iterations == 5_000_000


@pytest.mark.skipif(not HAS_INTERPRETERS, reason="needs CPython 3.12+ subinterpreters")
def test_second_interpreter_import_after_the_main_one_does_not_crash() -> None:
    # Regression: a cdef class in _countdown made this abort the process with
    # "free(): invalid pointer" (Cython module-state bug). Run in a child so a
    # crash fails this test with its output instead of killing the suite.
    code = (
        "import gilfree._countdown, gilfree.meter\n"
        "from gilfree.backends.interpreters import _Interpreters\n"
        "api = _Interpreters()\n"
        "for _ in range(3):\n"
        "    i = api.create()\n"
        "    err = api.run(i, 'import gilfree.meter; gilfree.meter.GILMeter().start().stop()')\n"
        "    api.destroy(i)\n"
        "    assert err is None, err\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_python_version_is_reported_in_reason_or_backend_runs() -> None:
    b = BACKENDS["interpreters"]
    if sys.version_info >= (3, 12):
        assert b.availability() is None
    else:
        assert b.availability() is not None
