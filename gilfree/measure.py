"""Plans, repeats, statistics and immutable results.

``run()`` measures one cell (a kernel on a backend with N workers);
``sweep()`` a grid of them. Every cell is compared against the serial run of
the same kernel doing the same total work in one thread (the classic
single-threaded script), measured in the same session.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import functools
import os
import platform
import statistics
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from gilfree.backends import (
    Backend,
    RunTimeout,
    RunTiming,
    UnsupportedError,
    WorkerError,
    get_backend,
)
from gilfree.kernels import MAX_N, Kernel, check_count, get_kernel
from gilfree.meter import GILReading

__all__ = [
    "Context",
    "Result",
    "calibrate",
    "chunks_for",
    "context",
    "run",
    "sweep",
    "time_call",
]

Scaling = Literal["strong", "weak"]
Status = Literal["ok", "unsupported", "failed", "timeout"]
#: What a sweep does when a cell fails: record it and go on, or raise.
OnError = Literal["record", "raise"]
SPREAD_WARNING = 0.10  # pyperf's rule: warn when stdev exceeds 10% of the mean
MAX_WORKERS = 1024


def time_call(kernel: str | Kernel, n: int) -> float:
    """Seconds one call ``kernel(n)`` takes (``time.perf_counter``)."""
    work = get_kernel(kernel).prepare(n)
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def calibrate(kernel: str | Kernel, seconds: float, start: int = 1000) -> int:
    """Return the ``n`` for which ``kernel(n)`` takes about ``seconds`` here.

    Grows ``n`` until one call takes at least a quarter of the target (so
    timer resolution, call overhead and clock ramp-up do not skew the
    estimate), then scales linearly: every kernel's time is linear in ``n``.
    """
    if not seconds > 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    k = get_kernel(kernel)
    n = max(1, start)
    k(n)  # warm up: lazy imports (NumPy) and first-call costs are not work
    floor = max(seconds / 4, 0.002)
    while True:
        elapsed = time_call(k, n)
        if elapsed >= floor or n >= MAX_N // 16:
            break
        n *= 16 if elapsed < floor / 16 else 2
    # The faster of two timings: the first long call can run while the CPU
    # is still raising its clock, which would make n too small.
    elapsed = min(elapsed, time_call(k, n))
    return max(1, min(MAX_N, round(n * seconds / max(elapsed, 1e-9))))


def chunks_for(n: int, workers: int, scaling: Scaling) -> list[int]:
    """Per-worker iteration counts: ``n`` split across workers (strong scaling)
    or ``n`` for each worker (weak scaling)."""
    if scaling == "weak":
        return [n] * workers
    if scaling != "strong":
        raise ValueError(f"unknown scaling {scaling!r}; valid: strong, weak")
    base, extra = divmod(n, workers)
    return [base + 1] * extra + [base] * (workers - extra)


@dataclass(frozen=True)
class Context:
    """Where and how a result was measured."""

    python: str
    implementation: str
    free_threaded_build: bool
    gil_enabled: bool
    switch_interval_s: float
    cpu_count: int | None
    cpu_affinity: tuple[int, ...] | None
    machine: str
    processor: str
    platform: str
    gilfree: str
    timestamp: str

    @property
    def cpus_available(self) -> int:
        """CPUs this process may run on (its affinity), else the CPU count."""
        return len(self.cpu_affinity) if self.cpu_affinity else (self.cpu_count or 1)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def context() -> Context:
    """The :class:`Context` of this process, now."""
    from gilfree import __version__

    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    affinity = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else None
    return Context(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        free_threaded_build=bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        gil_enabled=True if is_gil_enabled is None else bool(is_gil_enabled()),
        switch_interval_s=sys.getswitchinterval(),
        cpu_count=os.cpu_count(),
        cpu_affinity=affinity,
        machine=platform.machine(),
        processor=_cpu_model(),
        platform=platform.platform(),
        gilfree=__version__,
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )


def _rel_stdev(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = statistics.fmean(values)
    return statistics.stdev(values) / mean if mean > 0 else 0.0


@dataclass(frozen=True)
class Result:
    """One measured cell: raw timings, their context, and derived figures.

    ``runs`` are the timed repeats (warm-ups are kept apart in ``warmups``);
    ``baseline_s`` are the spans of the serial run of the same kernel doing the
    same total work in one thread. ``status`` is ``"ok"``, ``"unsupported"``
    (it cannot run here), ``"failed"`` (a worker raised or died) or
    ``"timeout"`` (it overran the sweep's ``timeout``); for all but ``"ok"``,
    ``reason`` says why and there are no runs. ``gil`` is the GIL
    contention read during one untimed run (the first warm-up, or an extra run
    when there are none) on backends whose workers share or own a GIL
    (threads, interpreters); None elsewhere.
    """

    kernel: str
    backend: str
    workers: int
    n: int
    scaling: Scaling
    start_method: str | None
    status: Status
    reason: str
    runs: tuple[RunTiming, ...]
    warmups: tuple[RunTiming, ...]
    baseline_s: tuple[float, ...]
    context: Context = field(repr=False)
    gil: GILReading | None = None
    #: Seconds to set up the cell's shared resources once, before its first run
    #: (a Dask cluster started for the cell); about 0 for other backends.
    cell_setup_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        """A worker raised or died, or the cell timed out (not merely unsupported)."""
        return self.status in ("failed", "timeout")

    @property
    def spans(self) -> list[float]:
        return [r.span_s for r in self.runs]

    @property
    def median_s(self) -> float:
        """Median work span (first start to last end), seconds."""
        return statistics.median(self.spans) if self.runs else float("nan")

    @property
    def spread(self) -> float:
        """Relative standard deviation of the spans."""
        return _rel_stdev(self.spans)

    @property
    def setup_median_s(self) -> float:
        """Median time to create the workers and get them to the start line."""
        return statistics.median(r.setup_s for r in self.runs) if self.runs else float("nan")

    @property
    def total_median_s(self) -> float:
        """Median of the classic article's figure: start-up plus work."""
        return statistics.median(r.total_s for r in self.runs) if self.runs else float("nan")

    @property
    def cpu_median_s(self) -> float:
        """Median CPU seconds of all workers together."""
        return statistics.median(r.cpu_s for r in self.runs) if self.runs else float("nan")

    @property
    def busy_cpus(self) -> float:
        """CPU time / span: how many CPUs were busy on average. N workers that
        run in parallel read N; threads taking turns on the GIL read 1."""
        if not self.runs or self.median_s <= 0:
            return float("nan")
        return self.cpu_median_s / self.median_s

    @property
    def contention(self) -> float | None:
        """GIL contention of the metered run (0-1); None where there is no GIL
        or the backend is not metered, NaN where the run was too short to
        take a sample."""
        return None if self.gil is None else self.gil.contention

    @property
    def baseline_median_s(self) -> float:
        return statistics.median(self.baseline_s) if self.baseline_s else float("nan")

    @property
    def speedup(self) -> float:
        """Serial time for the same work / this cell's span (medians)."""
        if not self.runs or not self.baseline_s or self.median_s <= 0:
            return float("nan")
        return self.baseline_median_s / self.median_s

    @property
    def efficiency(self) -> float:
        """Speedup / workers (1.0 is perfect scaling)."""
        return self.speedup / self.workers

    def speedup_ci(self, confidence: float = 0.95, resamples: int = 2000) -> tuple[float, float]:
        """Bootstrap confidence interval of :attr:`speedup` (ratio of medians)."""
        import numpy as np

        if not self.runs or not self.baseline_s:
            return (float("nan"), float("nan"))
        rng = np.random.default_rng(0)  # reproducible: same data, same interval
        base = np.asarray(self.baseline_s)
        cell = np.asarray(self.spans)
        b = np.median(rng.choice(base, (resamples, base.size)), axis=1)
        c = np.median(rng.choice(cell, (resamples, cell.size)), axis=1)
        ratios = b / c
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(ratios, [tail, 100 - tail])
        return (float(low), float(high))

    @property
    def warning(self) -> str | None:
        """A sentence when the repeats disagree too much to trust the median."""
        if not self.runs:
            return None
        base = _rel_stdev(self.baseline_s)
        which, worst = (
            ("repeats", self.spread) if self.spread >= base else ("serial baseline repeats", base)
        )
        if worst > SPREAD_WARNING:
            return (
                f"{self.kernel} on {self.backend}: {which} vary by {worst:.0%} (over "
                f"{SPREAD_WARNING:.0%}); the machine was busy or n is too small"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        """Everything: raw timings, metadata and derived figures (JSON-ready)."""
        data = asdict(self)
        low, high = self.speedup_ci()
        data["derived"] = {
            "median_s": self.median_s,
            "spread": self.spread,
            "setup_median_s": self.setup_median_s,
            "total_median_s": self.total_median_s,
            "cpu_median_s": self.cpu_median_s,
            "busy_cpus": self.busy_cpus,
            "baseline_median_s": self.baseline_median_s,
            "speedup": self.speedup,
            "speedup_ci95": [low, high],
            "efficiency": self.efficiency,
            "contention": self.contention,
            "warning": self.warning,
        }
        return data


def _check_plan(
    workers: Iterable[object], n: object, repeats: object, warmups: object, scaling: str
) -> tuple[list[int], int | None, int, int]:
    counts = [check_count(w, "workers", minimum=1, maximum=MAX_WORKERS) for w in workers]
    if not counts:
        raise ValueError("workers is empty; give at least one worker count, e.g. 2")
    size = None if n is None else check_count(n, "n")
    reps = check_count(repeats, "repeats", minimum=1, maximum=1000)
    warm = check_count(warmups, "warmups", minimum=0, maximum=1000)
    if scaling not in ("strong", "weak"):
        raise ValueError(f"unknown scaling {scaling!r}; valid: strong, weak")
    return counts, size, reps, warm


def _measure(
    backend: Backend,
    kernel: Kernel,
    chunks: list[int],
    repeats: int,
    warmups: int,
    options: dict[str, Any],
    meter: bool = False,
    timeout: float | None = None,
) -> tuple[tuple[RunTiming, ...], tuple[RunTiming, ...], GILReading | None, float]:
    """Warm-ups, then timed repeats, and the seconds the cell's setup took.
    With ``meter``, the first warm-up (or an extra untimed run) carries the
    contention meter: timed runs never do. Every run of the cell shares one
    deadline, ``timeout`` seconds from its start."""
    deadline = None if timeout is None else time.monotonic() + timeout
    t0 = time.perf_counter()
    with backend.cell(len(chunks), options) as opts:
        cell_setup = time.perf_counter() - t0
        warm = tuple(
            backend.metered_run(kernel, chunks, deadline=deadline, **opts)
            if meter and i == 0
            else backend.run(kernel, chunks, deadline=deadline, **opts)
            for i in range(warmups)
        )
        gil = warm[0].gil if warm else None
        if meter and gil is None:
            gil = backend.metered_run(kernel, chunks, deadline=deadline, **opts).gil
        runs = []
        for _ in range(repeats):
            timing = backend.run(kernel, chunks, deadline=deadline, **opts)
            if timing.iterations != sum(chunks):  # every kernel reports what it did
                raise RuntimeError(
                    f"{kernel.name} on {backend.name} performed {timing.iterations} "
                    f"iterations instead of {sum(chunks)}"
                )
            runs.append(timing)
    return warm, tuple(runs), gil, cell_setup


#: Called before each step with a label and the total number of steps.
ProgressHook = Callable[[str, int], None]
#: Called with each cell's :class:`Result` as soon as it is measured.
ResultHook = Callable[[Result], None]


def _failure(exc: BaseException, timeout: float | None) -> tuple[Status, str]:
    """A failed cell's status and reason."""
    if isinstance(exc, RunTimeout):
        return "timeout", f"over the {timeout:g} s timeout: {exc}; its workers were stopped"
    return "failed", str(exc)


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        kind = type(timeout).__name__
        raise TypeError(f"timeout must be a number of seconds or None, not {kind}")
    if not 0 < timeout < float("inf"):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def sweep(
    kernels: Iterable[str | Kernel] = ("python", "cython-nogil"),
    backends: Iterable[str | Backend | concurrent.futures.Executor] = ("threads", "processes"),
    workers: Iterable[int] = (2,),
    n: int | None = None,
    *,
    seconds: float = 0.25,
    scaling: Scaling = "strong",
    repeats: int = 5,
    warmups: int = 1,
    start_method: str | None = None,
    scheduler: Any = None,
    progress: ProgressHook | None = None,
    timeout: float | None = None,
    errors: OnError = "record",
    on_result: ResultHook | None = None,
) -> list[Result]:
    """Measure every kernel x backend x worker count.

    ``n`` is the total work (strong scaling) or the work per worker (weak);
    ``None`` sizes it per kernel so the serial run takes about ``seconds``.
    Cells that cannot run (a backend unavailable here, a kernel a backend
    cannot host) come back with ``status="unsupported"`` and the reason.
    ``progress``, if given, is called before each step with a label and the
    total number of steps: one serial baseline per kernel and total work, then
    one per cell.
    The ``start_method`` applies to the backends that take one (processes);
    ``scheduler`` (an address or a ``distributed.Client``) to dask.

    Failures: a cell whose worker raises or dies comes back with
    ``status="failed"``, and one that runs longer than ``timeout`` seconds (all
    its runs together) with ``status="timeout"``, its workers stopped; the
    sweep goes on with the next cell. With ``errors="raise"`` the first such
    failure raises instead (:class:`~gilfree.backends.WorkerError`,
    :class:`~gilfree.backends.RunTimeout`). A serial baseline that fails fails
    every cell that needs it. ``on_result``, if given, is called with each
    cell's :class:`Result` as soon as it is measured, so nothing measured is
    lost when a later cell, or Ctrl-C, stops the sweep.
    """
    counts, size, reps, warm = _check_plan(workers, n, repeats, warmups, scaling)
    limit = _check_timeout(timeout)
    if errors not in ("record", "raise"):
        raise ValueError(f"errors must be 'record' or 'raise', got {errors!r}")
    kernel_list = [get_kernel(k) for k in kernels]
    backend_list = [get_backend(b) for b in backends]
    if not kernel_list or not backend_list:
        raise ValueError("give at least one kernel and one backend")
    from gilfree.backends import BACKENDS, resolve_start_method

    method = resolve_start_method(start_method)  # validated once, default filled in
    ctx = context()
    serial = BACKENDS["serial"]
    # One serial baseline per distinct total: strong scaling has one total,
    # weak scaling one per worker count.
    baselines_per_kernel = 1 if scaling == "strong" else len(set(counts))
    steps = len(kernel_list) * (baselines_per_kernel + len(counts) * len(backend_list))
    results: list[Result] = []
    for kernel in kernel_list:
        kernel_n = size if size is not None else calibrate(kernel, seconds)
        baselines: dict[int, tuple[float, ...] | BaseException] = {}
        for count in counts:
            chunks = chunks_for(kernel_n, count, scaling)
            total = sum(chunks)
            if total > MAX_N:  # the serial baseline counts it all in one call
                raise OverflowError(
                    f"weak scaling: {count} workers x n={kernel_n} = {total} iterations, "
                    f"more than the largest n ({MAX_N}); use a smaller n"
                )
            if total not in baselines:
                if progress:
                    progress(f"{kernel.name}: serial baseline, n={total:,}", steps)
                try:
                    _, base_runs, _, _ = _measure(
                        serial, kernel, [total], reps, warm, {}, timeout=limit
                    )
                    baselines[total] = tuple(r.span_s for r in base_runs)
                except (WorkerError, RunTimeout) as exc:
                    if errors == "raise":
                        raise
                    baselines[total] = exc  # every cell that needs it fails with it
            baseline = baselines[total]
            for backend in backend_list:
                takes_method = "start_method" in backend.options
                options: dict[str, Any] = {"start_method": method} if takes_method else {}
                if scheduler is not None and "scheduler" in backend.options:
                    options["scheduler"] = scheduler

                cell = functools.partial(
                    Result,
                    kernel=kernel.name,
                    backend=backend.name,
                    workers=count,
                    n=kernel_n,
                    scaling=scaling,
                    start_method=method if takes_method else None,
                    baseline_s=baseline if isinstance(baseline, tuple) else (),
                    context=ctx,
                )
                if progress:
                    progress(f"{kernel.name} on {backend.name} x{count}", steps)
                result = _cell(
                    cell, backend, kernel, chunks, reps, warm, options, baseline, limit, errors
                )
                results.append(result)
                if on_result:
                    on_result(result)
    return results


def _cell(
    cell: Callable[..., Result],
    backend: Backend,
    kernel: Kernel,
    chunks: list[int],
    repeats: int,
    warmups: int,
    options: dict[str, Any],
    baseline: tuple[float, ...] | BaseException,
    timeout: float | None,
    errors: OnError,
) -> Result:
    """Measure one cell of a sweep; ``cell`` fills in what is known already."""
    reason = backend.availability() or backend.unsupported_reason(kernel)
    if reason:
        return cell(status="unsupported", reason=reason, runs=(), warmups=())
    if isinstance(baseline, BaseException):
        status, why = _failure(baseline, timeout)
        return cell(status=status, reason=f"its serial baseline: {why}", runs=(), warmups=())
    meter = backend.gil_meter is not None
    try:
        w, r, gil, cell_setup = _measure(
            backend, kernel, chunks, repeats, warmups, options, meter, timeout
        )
    except UnsupportedError as exc:
        return cell(status="unsupported", reason=str(exc), runs=(), warmups=())
    except (WorkerError, RunTimeout) as exc:
        if errors == "raise":
            raise
        status, why = _failure(exc, timeout)
        return cell(status=status, reason=why, runs=(), warmups=())
    return cell(status="ok", reason="", runs=r, warmups=w, gil=gil, cell_setup_s=cell_setup)


def run(
    kernel: str | Kernel = "cython-nogil",
    backend: str | Backend | concurrent.futures.Executor = "threads",
    workers: int = 2,
    n: int | None = None,
    *,
    seconds: float = 0.25,
    scaling: Scaling = "strong",
    repeats: int = 5,
    warmups: int = 1,
    start_method: str | None = None,
    scheduler: Any = None,
    timeout: float | None = None,
) -> Result:
    """Measure one kernel on one backend with ``workers`` workers.

    Returns a :class:`Result` whose ``speedup`` compares it with the serial run
    of the same kernel and total work, measured in the same call. A worker
    that raises or dies raises :class:`~gilfree.backends.WorkerError`; past
    ``timeout`` seconds (the cell's runs together, and the serial baseline's
    apart), the workers are stopped and
    :class:`~gilfree.backends.RunTimeout` is raised.

    >>> from gilfree import run
    >>> r = run("cython-nogil", "threads", workers=2, n=10**7, repeats=3)
    >>> r.ok, r.workers, r.runs[0].iterations
    (True, 2, 10000000)
    """
    b = get_backend(backend)
    if start_method is not None and "start_method" not in b.options:
        raise ValueError(f"backend {b.name!r} does not take a start method; only 'processes' does")
    if scheduler is not None and "scheduler" not in b.options:
        raise ValueError(f"backend {b.name!r} does not take a scheduler; only 'dask' does")
    (result,) = sweep(
        [kernel],
        [b],
        [workers],
        n,
        seconds=seconds,
        scaling=scaling,
        repeats=repeats,
        warmups=warmups,
        start_method=start_method,
        scheduler=scheduler,
        timeout=timeout,
        errors="raise",
    )
    return result
