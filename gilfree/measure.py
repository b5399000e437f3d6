"""The measurement engine: a :class:`~gilfree.plan.Plan` in, :class:`Result` cells out.

Every cell (a kernel on a backend with N workers) is compared with the serial
run of the same kernel doing the same total work in one thread: the classic
single-threaded script. The host's speed drifts over seconds, so the two
sides of every ratio are measured back to back, in *rounds*:

- one round holds, for each kernel, its serial run and its run on every
  backend, plus a *capacity* pair (the ``cython-nogil`` kernel in one thread
  and split over N processes: what this host delivers to N independent
  workers right now). Blocks and the runs within them rotate from round to
  round, and the serial run goes first in one round and last in the next;
- a cell's speedup is the median of its per-round ratios, with a bootstrap
  95% interval over rounds; its *share* of the capacity likewise, from the
  per-round ratio of ratios;
- a round whose speedup is larger than its busy CPUs allow did not measure
  parallelism (the host changed speed between the two runs): it is kept in
  the raw data and left out of the figures;
- rounds are added until every cell's interval is within ``precision`` of its
  speedup, or the plan's time budget or round limit is reached.

``run()`` measures one cell, ``sweep()`` a grid; both build a plan and call
:func:`measure`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime
import functools
import math
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
    BACKENDS,
    Backend,
    RunTimeout,
    RunTiming,
    UnsupportedError,
    WorkerError,
    get_backend,
)
from gilfree.kernels import KERNELS, MAX_N, Kernel, get_kernel
from gilfree.meter import GILReading
from gilfree.plan import (
    DEFAULT_MAX_TIME,
    DEFAULT_PRECISION,
    DEFAULT_ROUNDS,
    MAX_WORKERS,
    Plan,
    Scaling,
)

__all__ = [
    "MAX_WORKERS",
    "CapacityRound",
    "Context",
    "HostLoad",
    "Plan",
    "Result",
    "calibrate",
    "chunks_for",
    "context",
    "measure",
    "run",
    "sweep",
    "time_call",
]

Status = Literal["ok", "unsupported", "failed", "timeout"]
#: What a sweep does when a cell fails: record it and go on, or raise.
OnError = Literal["record", "raise"]
SPREAD_WARNING = 0.10  # pyperf's rule: warn when stdev exceeds 10% of the mean
#: A round may read a speedup up to this much above what its busy CPUs allow
#: (unequal CPUs: a serial run on the slower of two reads up to ~1.2x over).
CONSISTENCY_SLACK = 0.15
#: The consistency check needs a serial run that keeps a CPU busy; below
#: this many busy CPUs (sleeping, waiting on I/O) there is nothing to check.
CPU_BOUND_ABOVE = 0.5
#: The fewest rounds kept before an interval may count as precise.
MIN_ROUNDS_FOR_CI = 3
#: A cell with more than this share of its rounds left out is flagged: the
#: host changed speed in most rounds, and the rounds kept are a biased few.
FLAG_EXCLUDED = 1 / 2
#: Other processes using this many CPUs on average during a cell: a busy host.
BUSY_HOST_CPUS = 0.3
#: The kernel and backend that measure the host's parallel capacity: no GIL,
#: no shared state, nothing but N independent CPUs can make them faster.
CAPACITY_KERNEL = "cython-nogil"
CAPACITY_BACKEND = "processes"


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


def median_ci(
    values: Sequence[float], confidence: float = 0.95, resamples: int = 2000
) -> tuple[float, float]:
    """Bootstrap percentile interval of the median of ``values``.

    Reproducible (a fixed seed: the same data gives the same interval); NaN
    for no values, the value itself for one.
    """
    import numpy as np

    if not values:
        return (float("nan"), float("nan"))
    if len(values) == 1:
        return (float(values[0]), float(values[0]))
    rng = np.random.default_rng(0)
    data = np.asarray(values, dtype=float)
    medians = np.median(rng.choice(data, (resamples, data.size)), axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return (float(low), float(high))


def _busy(cpu_s: float, span_s: float) -> float:
    return cpu_s / span_s if span_s > 0 else float("nan")


def consistent(
    ratio: float, serial_s: float, serial_cpu_s: float, parallel_s: float, parallel_cpu_s: float
) -> bool:
    """Whether one round's speedup ``ratio`` is possible given its busy CPUs.

    The serial run keeps ``serial_cpu_s / serial_s`` CPUs busy (about 1), the
    parallel run ``parallel_cpu_s / parallel_s``; doing the same work at the
    same speed per CPU, the parallel run cannot be faster by more than the
    ratio of the two (plus :data:`CONSISTENCY_SLACK` for unequal CPUs). A
    larger ratio means the host ran at different speeds during the two runs.
    Work that keeps no CPU busy (sleeping, I/O) cannot be checked this way
    and passes.
    """
    busy_serial = _busy(serial_cpu_s, serial_s)
    busy_parallel = _busy(parallel_cpu_s, parallel_s)
    if not busy_serial >= CPU_BOUND_ABOVE or math.isnan(busy_parallel) or math.isnan(ratio):
        return True
    return ratio <= busy_parallel / busy_serial * (1 + CONSISTENCY_SLACK)


@dataclass(frozen=True)
class CapacityRound:
    """The host's parallel capacity in one round: the ``cython-nogil`` kernel
    doing the same work in one thread (``serial_*``) and split over
    ``workers`` processes (``parallel_*``), back to back."""

    workers: int
    serial_s: float
    serial_cpu_s: float
    parallel_s: float
    parallel_cpu_s: float

    @property
    def speedup(self) -> float:
        return self.serial_s / self.parallel_s if self.parallel_s > 0 else float("nan")

    @property
    def consistent(self) -> bool:
        return consistent(
            self.speedup, self.serial_s, self.serial_cpu_s, self.parallel_s, self.parallel_cpu_s
        )


@dataclass(frozen=True)
class HostLoad:
    """How busy the host was around a cell.

    ``load_before`` / ``load_after``: the 1-minute load average just before
    the cell's first run and just after its last (it counts gilfree's own
    workers too). ``others_cpus``: CPUs used on average by every process but
    this one and its finished children while the cell was measured;
    ``steal_cpus``: CPU time the hypervisor gave to other guests (Linux, from
    ``/proc/stat``; None elsewhere).
    """

    load_before: float | None
    load_after: float | None
    others_cpus: float | None
    steal_cpus: float | None
    seconds: float

    @property
    def busy(self) -> bool:
        """Other processes, or other guests, took a noticeable share of the CPUs."""
        return any(
            v is not None and v >= BUSY_HOST_CPUS for v in (self.others_cpus, self.steal_cpus)
        )


class _HostClock:
    """Start of a :class:`HostLoad` reading."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.load0 = _loadavg()
        self.stat0 = _proc_stat()
        self.own0 = _own_cpu()

    def reading(self) -> HostLoad:
        seconds = time.monotonic() - self.t0
        stat1, own1 = _proc_stat(), _own_cpu()
        others = steal = None
        if self.stat0 and stat1 and seconds > 0:
            busy = stat1[0] - self.stat0[0]
            others = max(0.0, (busy - (own1 - self.own0)) / seconds)
            steal = max(0.0, (stat1[1] - self.stat0[1]) / seconds)
        return HostLoad(self.load0, _loadavg(), others, steal, seconds)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _proc_stat() -> tuple[float, float] | None:
    """Busy and steal CPU seconds of the whole host so far (Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return ((user + nice + system + irq + softirq) / ticks, steal / ticks)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


@dataclass(frozen=True)
class Result:
    """One measured cell: raw timings, their context, and derived figures.

    ``runs`` are the timed parallel runs, one per round (warm-ups are kept
    apart in ``warmups``); ``baseline_s`` and ``baseline_cpu_s`` are the span
    and CPU time of the serial run of the same kernel doing the same total
    work in one thread, measured back to back with ``runs[i]`` in the same
    round (``serial_first[i]`` says which went first). ``capacity[i]`` is
    the host's capacity pair of that round. Every round is kept, including
    those the consistency check leaves out of the figures.

    ``status`` is ``"ok"``, ``"unsupported"`` (it cannot run here),
    ``"failed"`` (a worker raised or died) or ``"timeout"`` (it overran the
    plan's ``timeout``); for all but ``"ok"``, ``reason`` says why and there
    are no runs. ``gil`` is the GIL contention read during one untimed run on
    backends whose workers share or own a GIL (threads, interpreters); None
    elsewhere. ``stopped`` says why no more rounds were added.
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
    baseline_cpu_s: tuple[float, ...] = ()
    serial_first: tuple[bool, ...] = ()
    capacity: tuple[CapacityRound | None, ...] = ()
    #: The precision asked for (None: a fixed number of rounds).
    precision: float | None = None
    #: Why rounds stopped: "precision reached", "fixed rounds", "time budget",
    #: "round limit", "interrupted".
    stopped: str = ""
    host: HostLoad | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        """A worker raised or died, or the cell timed out (not merely unsupported)."""
        return self.status in ("failed", "timeout")

    # ------------------------------------------------------------- raw rounds

    @property
    def rounds(self) -> int:
        """Rounds measured (each: one serial and one parallel run)."""
        return len(self.runs)

    @property
    def round_speedups(self) -> list[float]:
        """Serial span / parallel span, per round (every round)."""
        return [
            b / r.span_s if r.span_s > 0 else float("nan")
            for b, r in zip(self.baseline_s, self.runs, strict=False)
        ]

    @property
    def round_consistent(self) -> list[bool]:
        """Per round: whether its speedup is possible given its busy CPUs
        (see :func:`consistent`). Rounds without CPU readings pass."""
        flags = []
        for i, ratio in enumerate(self.round_speedups):
            if i >= len(self.baseline_cpu_s):
                flags.append(True)
                continue
            run = self.runs[i]
            flags.append(
                consistent(ratio, self.baseline_s[i], self.baseline_cpu_s[i], run.span_s, run.cpu_s)
            )
        return flags

    @property
    def excluded_rounds(self) -> int:
        """Rounds left out of the figures: faster than their busy CPUs allow."""
        return sum(not ok for ok in self.round_consistent)

    def _kept(self) -> list[float]:
        return [
            s
            for s, ok in zip(self.round_speedups, self.round_consistent, strict=True)
            if ok and not math.isnan(s)
        ]

    @property
    def flagged(self) -> bool:
        """More than half the rounds were left out, or none was kept: the
        host changed speed too often for the figures to be trusted."""
        if not self.runs:
            return False
        return not self._kept() or self.excluded_rounds > FLAG_EXCLUDED * self.rounds

    # ---------------------------------------------------------------- figures

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
        """Median of the per-round speedups, over the rounds kept (the serial
        time for the same work / this cell's span, each pair back to back)."""
        kept = self._kept()
        return statistics.median(kept) if kept else float("nan")

    @property
    def efficiency(self) -> float:
        """Speedup / workers (1.0 is perfect scaling)."""
        return self.speedup / self.workers

    def speedup_ci(self, confidence: float = 0.95, resamples: int = 2000) -> tuple[float, float]:
        """Bootstrap confidence interval of :attr:`speedup`, over rounds."""
        return median_ci(self._kept(), confidence, resamples)

    @property
    def half_width(self) -> float:
        """Half the 95% interval, as a share of the speedup (0.05: +-5%)."""
        low, high = self.speedup_ci()
        return (high - low) / 2 / self.speedup if self.speedup > 0 else float("nan")

    @property
    def precision_reached(self) -> bool | None:
        """Whether the interval is as narrow as asked (None: none was asked).
        Never with fewer than :data:`MIN_ROUNDS_FOR_CI` rounds kept: an
        interval from one or two rounds says nothing."""
        if self.precision is None:
            return None
        if len(self._kept()) < MIN_ROUNDS_FOR_CI:
            return False
        return bool(self.half_width <= self.precision)

    def _capacity_kept(self) -> list[float]:
        return [c.speedup for c in self.capacity if c is not None and c.consistent]

    @property
    def capacity_speedup(self) -> float:
        """Median speedup of the host's capacity pairs: what ``workers``
        independent processes got here, in the same rounds (NaN if not measured)."""
        kept = self._capacity_kept()
        return statistics.median(kept) if kept else float("nan")

    def capacity_ci(self) -> tuple[float, float]:
        return median_ci(self._capacity_kept())

    def _paired(self) -> tuple[list[float], list[float]]:
        """Speedup and capacity of the rounds where both were kept."""
        speedups, capacities = [], []
        for i, (s, ok) in enumerate(zip(self.round_speedups, self.round_consistent, strict=True)):
            c = self.capacity[i] if i < len(self.capacity) else None
            if ok and c is not None and c.consistent and c.speedup > 0 and not math.isnan(s):
                speedups.append(s)
                capacities.append(c.speedup)
        return speedups, capacities

    @property
    def share(self) -> float:
        """This cell's speedup as a share of the host's capacity measured in
        the same rounds (1.0: as fast as independent processes got): the mean
        speedup over the mean capacity, both over the rounds where both were
        kept.

        Means, not medians: on a host whose CPUs are now and then slow, run
        by run, both sides are mixtures of a fast and a slow mode, and the
        median of a mixture jumps between its modes with the luck of the
        draw, while the mean moves smoothly.
        """
        speedups, capacities = self._paired()
        if not speedups:
            return float("nan")
        return statistics.fmean(speedups) / statistics.fmean(capacities)

    def share_ci(self, confidence: float = 0.95, resamples: int = 2000) -> tuple[float, float]:
        """Bootstrap interval of :attr:`share`, resampling whole rounds, so a
        round's speedup and capacity stay together."""
        import numpy as np

        speedups, capacities = self._paired()
        if len(speedups) < 2:
            value = self.share
            return (value, value)
        rng = np.random.default_rng(0)
        pick = rng.integers(0, len(speedups), (resamples, len(speedups)))
        s, c = np.asarray(speedups)[pick], np.asarray(capacities)[pick]
        shares = s.mean(axis=1) / c.mean(axis=1)
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(shares, [tail, 100 - tail])
        return (float(low), float(high))

    @property
    def warnings(self) -> list[str]:
        """Sentences saying why the figures deserve less trust."""
        if not self.runs:
            return []
        notes = []
        where = f"{self.kernel} on {self.backend} x{self.workers}"
        if self.flagged:
            notes.append(
                f"{where}: {self.excluded_rounds} of {self.rounds} rounds were faster than "
                "their busy CPUs allow (the host changed speed between the serial and the "
                "parallel run) and were left out; run it on a quieter machine"
            )
        if self.precision_reached is False:
            notes.append(
                f"{where}: speedup known to +-{self.half_width:.0%} after {self.rounds} rounds "
                f"(asked: +-{self.precision:.0%}; stopped: {self.stopped}); give it more time "
                "(--max-time) or a quieter machine"
            )
        if self.host is not None and self.host.busy:
            notes.append(f"{where}: the host was busy: {_host_words(self.host)}")
        return notes

    @property
    def warning(self) -> str | None:
        """The first of :attr:`warnings`, or None."""
        notes = self.warnings
        return notes[0] if notes else None

    def to_dict(self) -> dict[str, Any]:
        """Everything: raw timings, metadata and derived figures (JSON-ready)."""
        data = asdict(self)
        low, high = self.speedup_ci()
        cap_low, cap_high = self.capacity_ci()
        share_low, share_high = self.share_ci()
        data["derived"] = {
            "median_s": self.median_s,
            "spread": self.spread,
            "setup_median_s": self.setup_median_s,
            "total_median_s": self.total_median_s,
            "cpu_median_s": self.cpu_median_s,
            "busy_cpus": self.busy_cpus,
            "baseline_median_s": self.baseline_median_s,
            "round_speedups": self.round_speedups,
            "round_consistent": self.round_consistent,
            "excluded_rounds": self.excluded_rounds,
            "flagged": self.flagged,
            "speedup": self.speedup,
            "speedup_ci95": [low, high],
            "precision_reached": self.precision_reached,
            "efficiency": self.efficiency,
            "capacity_speedup": self.capacity_speedup,
            "capacity_ci95": [cap_low, cap_high],
            "share": self.share,
            "share_ci95": [share_low, share_high],
            "contention": self.contention,
            "warnings": self.warnings,
        }
        return data


def _host_words(host: HostLoad) -> str:
    parts = []
    if host.others_cpus is not None:
        parts.append(f"other processes used {host.others_cpus:.2f} CPUs")
    if host.steal_cpus:
        parts.append(f"other guests took {host.steal_cpus:.2f} CPUs (steal)")
    if host.load_before is not None and host.load_after is not None:
        parts.append(f"load average {host.load_before:.2f} -> {host.load_after:.2f}")
    return ", ".join(parts)


# -------------------------------------------------------------------- the engine


#: Called before each round with a label and the most rounds there can be.
ProgressHook = Callable[[str, int], None]
#: Called with each cell's :class:`Result` as soon as it is measured.
ResultHook = Callable[[Result], None]

_SERIAL = BACKENDS["serial"]


def _failure(exc: BaseException, timeout: float | None) -> tuple[Status, str]:
    """A failed cell's status and reason."""
    if isinstance(exc, RunTimeout):
        return "timeout", f"over the {timeout:g} s timeout: {exc}; its workers were stopped"
    return "failed", str(exc)


class _Track:
    """One thing measured in every round of a group: a cell, a kernel's
    serial run, or one side of the capacity pair."""

    def __init__(
        self,
        kernel: Kernel,
        backend: Backend,
        chunks: list[int],
        options: dict[str, Any],
        timeout: float | None,
        role: Literal["cell", "serial", "capacity"] = "cell",
    ) -> None:
        self.kernel, self.backend, self.chunks, self.options = kernel, backend, chunks, options
        self.role = role
        self.timeout = timeout  # for each run
        self.status: Status = "ok"
        self.reason = ""
        self.error: BaseException | None = None
        self.warm: list[RunTiming] = []
        self.gil: GILReading | None = None
        self.setup_s = 0.0
        self.done = False  # no more rounds needed
        # Per round, in the group's round numbering: the run, or None.
        self.rounds: dict[int, RunTiming] = {}

    @property
    def live(self) -> bool:
        return self.status == "ok"

    def fail(self, status: Status, reason: str, error: BaseException | None = None) -> None:
        self.status, self.reason, self.error = status, reason, error

    def run(self, metered: bool = False) -> RunTiming:
        """One run, stopped past the timeout; raises what the backend raises.

        The timeout bounds each run, not the cell: how many rounds a cell
        gets is the time budget's business, and a timeout is there to stop a
        run that hangs or runs away."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        if metered:
            timing = self.backend.metered_run(
                self.kernel, self.chunks, deadline=deadline, **self.options
            )
        else:
            timing = self.backend.run(self.kernel, self.chunks, deadline=deadline, **self.options)
        if timing.iterations != sum(self.chunks):  # every kernel reports what it did
            raise RuntimeError(
                f"{self.kernel.name} on {self.backend.name} performed {timing.iterations} "
                f"iterations instead of {sum(self.chunks)}"
            )
        return timing


class _Group:
    """Every cell of one worker count, measured in shared rounds."""

    def __init__(
        self,
        plan: Plan,
        count: int,
        sizes: dict[str, int],
        ctx: Context,
        errors: OnError,
    ) -> None:
        self.plan, self.count, self.sizes, self.ctx, self.errors = plan, count, sizes, ctx, errors
        self.serial: dict[str, _Track] = {}
        self.cells: list[_Track] = []
        for kernel in plan.kernels:
            chunks = chunks_for(sizes[kernel.name], count, plan.scaling)
            self.serial[kernel.name] = _Track(
                kernel, _SERIAL, [sum(chunks)], {}, plan.timeout, role="serial"
            )
            for backend in plan.backends:
                cell = _Track(kernel, backend, chunks, plan.options_for(backend), plan.timeout)
                reason = backend.availability() or backend.unsupported_reason(kernel)
                if reason:
                    cell.fail("unsupported", reason)
                self.cells.append(cell)
        self.capacity: tuple[_Track, _Track] | None = None
        self.round = 0
        self.stopped = ""
        self.host: HostLoad | None = None

    # ------------------------------------------------------------- failures

    def _lost(self, track: _Track, exc: BaseException) -> None:
        """``track`` failed: record it on the cells it concerns (or raise)."""
        if isinstance(exc, UnsupportedError):
            track.fail("unsupported", str(exc))
            return
        if self.errors == "raise":
            raise exc
        status, why = _failure(exc, self.plan.timeout)
        track.fail(status, why, exc)
        if track.role == "serial":  # every cell of its kernel needs it
            for cell in self.cells:
                if cell.kernel is track.kernel and cell.live:
                    cell.fail(status, f"its serial baseline: {why}", exc)

    def _attempt(self, track: _Track, metered: bool = False) -> RunTiming | None:
        """One run of ``track``, or None when it failed (recorded, or raised
        with ``errors="raise"``)."""
        try:
            return track.run(metered)
        except (WorkerError, RunTimeout, UnsupportedError) as exc:
            if track.role == "capacity":
                # A reference, not a cell: without it the shares are unknown.
                self.capacity = None
                return None
            self._lost(track, exc)
            return None

    # ---------------------------------------------------------------- warm-up

    def warm_up(self, stack: contextlib.ExitStack) -> None:
        """Set up every cell, run the warm-ups (the first of a metered backend
        carries the GIL meter), and size the capacity pair."""
        serial_times: list[float] = []
        for kernel in self.plan.kernels:
            serial = self.serial[kernel.name]
            for _ in range(self.plan.warmups):
                timing = self._attempt(serial)
                if timing is not None:
                    serial.warm.append(timing)
            timings = list(serial.warm)
            if self.plan.n is not None and serial.live and not timings:
                extra = self._attempt(serial)  # one untimed run to size the capacity pair
                timings += [extra] if extra is not None else []
            if timings:
                serial_times.append(statistics.median(t.span_s for t in timings))
            elif self.plan.n is None:
                weak = self.count if self.plan.scaling == "weak" else 1
                serial_times.append(self.plan.seconds * weak)
        for cell in self.cells:
            if not cell.live:
                continue
            t0 = time.perf_counter()
            try:
                cell.options = stack.enter_context(cell.backend.cell(self.count, cell.options))
            except UnsupportedError as exc:
                cell.fail("unsupported", str(exc))
                continue
            except (WorkerError, RunTimeout) as exc:
                self._lost(cell, exc)
                continue
            cell.setup_s = time.perf_counter() - t0
            meter = cell.backend.gil_meter is not None
            for i in range(self.plan.warmups):
                timing = self._attempt(cell, metered=meter and i == 0)
                if timing is None:
                    break
                cell.warm.append(timing)
                if meter and i == 0:
                    cell.gil = timing.gil
            if meter and cell.live and cell.gil is None:
                timing = self._attempt(cell, metered=True)
                cell.gil = timing.gil if timing is not None else None
        self._size_capacity(max(serial_times, default=0.0))

    def _size_capacity(self, serial_s: float) -> None:
        parallel = [c for c in self.cells if c.live and c.backend is not _SERIAL]
        backend = BACKENDS[CAPACITY_BACKEND]
        if (
            not self.plan.capacity
            or self.count < 2
            or not parallel
            or serial_s <= 0
            or backend.availability()
        ):
            return
        kernel = KERNELS[CAPACITY_KERNEL]
        if CAPACITY_KERNEL in self.sizes and self.plan.scaling == "strong":
            n = self.sizes[CAPACITY_KERNEL]  # the very work of that kernel's cells
        else:
            n = calibrate(kernel, max(serial_s, 1e-4))
        self.capacity = (
            _Track(kernel, _SERIAL, [n], {}, None, role="capacity"),
            _Track(
                kernel,
                backend,
                chunks_for(n, self.count, "strong"),
                self.plan.options_for(backend),
                None,
                role="capacity",
            ),
        )

    # ----------------------------------------------------------------- rounds

    def _blocks(self) -> list[list[_Track]]:
        """This round's runs: one block per kernel (its serial run and its
        cells still measuring), then the capacity pair; blocks, and the cells
        within a block, rotate from round to round; the serial run goes first
        in even rounds and last in odd ones."""
        r = self.round
        blocks = []
        for kernel in self.plan.kernels:
            serial = self.serial[kernel.name]
            cells = [c for c in self.cells if c.kernel is kernel and c.live and not c.done]
            if not cells or not serial.live:
                continue
            cells = cells[r % len(cells) :] + cells[: r % len(cells)]
            blocks.append([serial, *cells] if r % 2 == 0 else [*cells, serial])
        if blocks and self.capacity is not None:
            serial, parallel = self.capacity
            blocks.append([serial, parallel] if r % 2 == 0 else [parallel, serial])
        k = r % len(blocks) if blocks else 0
        return blocks[k:] + blocks[:k]

    def pending(self) -> list[_Track]:
        """The cells that still need rounds (and have a serial run to pair with)."""
        return [c for c in self.cells if c.live and not c.done and self.serial[c.kernel.name].live]

    def measure_round(self) -> None:
        """Run one round of every pending cell, with their serial runs and the capacity pair."""
        for block in self._blocks():
            for track in block:
                if not track.live:  # its serial baseline failed earlier in this round
                    continue
                if track.role == "capacity" and self.capacity is None:
                    continue  # the capacity pair was dropped earlier in this round
                timing = self._attempt(track)
                if timing is not None:
                    track.rounds[self.round] = timing
        self.round += 1
        for cell in self.cells:
            if cell.live and not cell.done:
                cell.done = self._settled(cell)

    def _settled(self, cell: _Track) -> bool:
        """Enough rounds for ``cell``. With a precision asked for: at least
        the minimum number of rounds *kept* (rounds left out by the
        consistency check do not count), not flagged, and its interval as
        narrow as asked. Without: exactly the minimum number of rounds."""
        result = self.result(cell)
        if self.plan.precision is None:
            return result.rounds >= self.plan.rounds
        if len(result._kept()) < self.plan.rounds or result.flagged:
            return False
        return bool(result.precision_reached)

    # ---------------------------------------------------------------- results

    def result(self, cell: _Track, stopped: str = "") -> Result:
        """The :class:`Result` of ``cell`` from the rounds measured so far."""
        base = functools.partial(
            Result,
            kernel=cell.kernel.name,
            backend=cell.backend.name,
            workers=self.count,
            n=self.sizes[cell.kernel.name],
            scaling=self.plan.scaling,
            start_method=cell.options.get("start_method"),
            context=self.ctx,
            precision=self.plan.precision,
            host=self.host,
        )
        if not cell.live:
            return base(status=cell.status, reason=cell.reason, runs=(), warmups=(), baseline_s=())
        serial = self.serial[cell.kernel.name]
        cap_serial, cap_parallel = self.capacity or (None, None)
        runs: list[RunTiming] = []
        base_s: list[float] = []
        base_cpu: list[float] = []
        first: list[bool] = []
        capacity: list[CapacityRound | None] = []
        for r in sorted(cell.rounds):
            s = serial.rounds.get(r)
            if s is None:
                continue  # no serial run to pair it with (cannot happen while live)
            runs.append(cell.rounds[r])
            base_s.append(s.span_s)
            base_cpu.append(s.cpu_s)
            first.append(r % 2 == 0)
            cs = cap_serial.rounds.get(r) if cap_serial else None
            cp = cap_parallel.rounds.get(r) if cap_parallel else None
            capacity.append(
                CapacityRound(self.count, cs.span_s, cs.cpu_s, cp.span_s, cp.cpu_s)
                if cs is not None and cp is not None
                else None
            )
        return base(
            status="ok",
            reason="",
            runs=tuple(runs),
            warmups=tuple(cell.warm),
            baseline_s=tuple(base_s),
            gil=cell.gil,
            cell_setup_s=cell.setup_s,
            baseline_cpu_s=tuple(base_cpu),
            serial_first=tuple(first),
            capacity=tuple(capacity),
            stopped=stopped or self._why_stopped(cell),
        )

    def _why_stopped(self, cell: _Track) -> str:
        if not cell.done:
            return self.stopped
        return "precision reached" if self.plan.precision is not None else "fixed rounds"

    def results(self, stopped: str = "") -> list[Result]:
        return [self.result(c, stopped) for c in self.cells]


def measure(
    plan: Plan,
    *,
    progress: ProgressHook | None = None,
    on_result: ResultHook | None = None,
    errors: OnError = "record",
) -> list[Result]:
    """Measure every cell of ``plan``; one :class:`Result` per kernel x
    worker count x backend, in that order.

    Worker counts are measured one after another, each in its own rounds,
    sharing what is left of ``plan.max_time``. ``progress``, if given, is
    called before each round with a label and the most rounds there can be.
    ``on_result`` is called with each cell's result as soon as its worker
    count is done, and, on Ctrl-C, with the rounds measured so far: nothing
    measured is lost. With ``errors="raise"`` the first failed run raises
    (:class:`~gilfree.backends.WorkerError`, :class:`~gilfree.backends.RunTimeout`).
    """
    if errors not in ("record", "raise"):
        raise ValueError(f"errors must be 'record' or 'raise', got {errors!r}")
    started = time.monotonic()
    end_by = started + plan.max_time
    ctx = context()
    sizes = {
        k.name: plan.n if plan.n is not None else calibrate(k, plan.seconds) for k in plan.kernels
    }
    for name, size in sizes.items():
        most = size * (max(plan.workers) if plan.scaling == "weak" else 1)
        if most > MAX_N:  # the serial baseline counts it all in one call
            raise OverflowError(
                f"weak scaling: {max(plan.workers)} workers x n={size} of {name} = {most} "
                f"iterations, more than the largest n ({MAX_N}); use a smaller n"
            )
    steps = len(plan.workers) * plan.max_rounds
    done: dict[tuple[str, str, int], Result] = {}
    for g, count in enumerate(plan.workers):
        group = _Group(plan, count, sizes, ctx, errors)
        group_end = time.monotonic() + (end_by - time.monotonic()) / (len(plan.workers) - g)
        clock = _HostClock()
        try:
            with contextlib.ExitStack() as stack:
                group.warm_up(stack)
                while group.round < plan.max_rounds:
                    pending = group.pending()
                    if not pending:
                        break
                    if progress:
                        progress(_round_label(group, pending), steps)
                    group.measure_round()
                    if group.round >= plan.rounds and time.monotonic() >= group_end:
                        group.stopped = "time budget"
                        break
                else:
                    group.stopped = "round limit"
        except KeyboardInterrupt:
            group.host = clock.reading()
            if on_result:
                for r in group.results("interrupted"):
                    if r.runs:
                        on_result(r)
            raise
        group.host = clock.reading()
        for r in group.results():
            done[(r.kernel, r.backend, r.workers)] = r
            if on_result:
                on_result(r)
    return [
        done[(k.name, b.name, c)] for k in plan.kernels for c in plan.workers for b in plan.backends
    ]


def _round_label(group: _Group, pending: list[_Track]) -> str:
    names = list(dict.fromkeys(c.kernel.name for c in pending))
    what = names[0] if len(names) == 1 else f"{len(names)} kernels"
    return f"{what} x{group.count}: round {group.round + 1}, {len(pending)} cell(s) measuring"


def sweep(
    kernels: Iterable[str | Kernel] = ("python", "cython-nogil"),
    backends: Iterable[str | Backend | concurrent.futures.Executor] = ("threads", "processes"),
    workers: Iterable[int] = (2,),
    n: int | None = None,
    *,
    seconds: float = 0.25,
    scaling: Scaling = "strong",
    repeats: int = DEFAULT_ROUNDS,
    warmups: int = 1,
    precision: float | None = DEFAULT_PRECISION,
    max_time: float = DEFAULT_MAX_TIME,
    max_rounds: int | None = None,
    capacity: bool = True,
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
    Each cell runs at least ``repeats`` rounds (one serial and one parallel
    run back to back), then more until its speedup's 95% interval is within
    ``precision`` of it (None: exactly ``repeats`` rounds), within
    ``max_time`` seconds for the whole sweep and ``max_rounds`` rounds
    (default 30, or ``repeats`` if more).
    ``capacity`` measures, in the same rounds, what independent processes
    get on this host (:attr:`Result.share`).
    Cells that cannot run (a backend unavailable here, a kernel a backend
    cannot host) come back with ``status="unsupported"`` and the reason.
    The ``start_method`` applies to the backends that take one (processes);
    ``scheduler`` (an address or a ``distributed.Client``) to dask.

    Failures: a cell whose worker raises or dies comes back with
    ``status="failed"``, and one with a run longer than ``timeout`` seconds
    with ``status="timeout"``, its workers stopped; the sweep goes on with the
    other cells. With ``errors="raise"`` the first such
    failure raises instead (:class:`~gilfree.backends.WorkerError`,
    :class:`~gilfree.backends.RunTimeout`). A serial baseline that fails fails
    every cell that needs it. ``on_result``, if given, is called with each
    cell's :class:`Result` as soon as it is measured, so nothing measured is
    lost when a later cell, or Ctrl-C, stops the sweep.
    """
    plan = Plan.build(
        kernels,
        backends,
        workers,
        n,
        seconds=seconds,
        scaling=scaling,
        rounds=repeats,
        precision=precision,
        max_time=max_time,
        max_rounds=max_rounds,
        warmups=warmups,
        capacity=capacity,
        start_method=start_method,
        scheduler=scheduler,
        timeout=timeout,
    )
    return measure(plan, progress=progress, on_result=on_result, errors=errors)


def run(
    kernel: str | Kernel = "cython-nogil",
    backend: str | Backend | concurrent.futures.Executor = "threads",
    workers: int = 2,
    n: int | None = None,
    *,
    seconds: float = 0.25,
    scaling: Scaling = "strong",
    repeats: int = DEFAULT_ROUNDS,
    warmups: int = 1,
    precision: float | None = DEFAULT_PRECISION,
    max_time: float = DEFAULT_MAX_TIME,
    max_rounds: int | None = None,
    capacity: bool = True,
    start_method: str | None = None,
    scheduler: Any = None,
    timeout: float | None = None,
) -> Result:
    """Measure one kernel on one backend with ``workers`` workers.

    Returns a :class:`Result` whose ``speedup`` compares it with the serial run
    of the same kernel and total work, round by round, measured in the same
    call (see :func:`sweep` for the rounds, ``precision`` and ``max_time``). A
    worker that raises or dies raises :class:`~gilfree.backends.WorkerError`;
    a run (parallel or serial) past ``timeout`` seconds has its workers
    stopped and raises :class:`~gilfree.backends.RunTimeout`.

    >>> from gilfree import run
    >>> r = run("cython-nogil", "threads", workers=2, n=10**7, repeats=3)
    >>> r.ok, r.workers, r.runs[0].iterations, r.rounds >= 3
    (True, 2, 10000000, True)
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
        precision=precision,
        max_time=max_time,
        max_rounds=max_rounds,
        capacity=capacity,
        start_method=start_method,
        scheduler=scheduler,
        timeout=timeout,
        errors="raise",
    )
    return result
