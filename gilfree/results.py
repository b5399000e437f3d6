"""Results: immutable cells that carry their raw rounds, their context and
their derived figures, and the JSON forms they are saved in.

A :class:`Result` keeps every round it measured (the serial run, the parallel
run and the host's capacity pair, back to back), including the rounds the
consistency check leaves out of the figures, so that a reader can redo the
arithmetic from a saved file. Its figures (speedup, interval, share of the
capacity, warnings) are derived from those rounds on demand.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import math
import os
import platform
import statistics
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TextIO

from gilfree.backends import RunTiming
from gilfree.meter import GILReading
from gilfree.plan import Scaling
from gilfree.sampler import Handoffs, SamplerReading

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CapacityRound",
    "Context",
    "HostLoad",
    "JsonLog",
    "Result",
    "SavedRun",
    "ThreadCost",
    "build_label",
    "consistent",
    "context",
    "load",
    "median_ci",
    "read_json",
    "to_json",
    "write_json",
]

Status = Literal["ok", "unsupported", "failed", "timeout"]


SPREAD_WARNING = 0.10  # pyperf's rule: warn when stdev exceeds 10% of the mean


#: A round may read a speedup up to this much above what its busy CPUs allow
#: (unequal CPUs: a serial run on the slower of two reads up to ~1.2x over).
CONSISTENCY_SLACK = 0.15


#: The consistency check needs a serial run that keeps a CPU busy; below
#: this many busy CPUs (sleeping, waiting on I/O) there is nothing to check.
CPU_BOUND_ABOVE = 0.5


#: A serial run shorter than this measures the harness (starting threads,
#: the start line), not parallelism: too short to judge.
SHORT_RUN_S = 0.001
#: At or below this speedup, threads gained nothing worth having.
NO_GAIN = 1.15
#: The fewest rounds kept before an interval may count as precise.
MIN_ROUNDS_FOR_CI = 3


#: A cell with more than this share of its rounds left out is flagged: the
#: host changed speed in most rounds, and the rounds kept are a biased few.
FLAG_EXCLUDED = 1 / 2


#: Other processes using this many CPUs on average during a cell: a busy host.
BUSY_HOST_CPUS = 0.3


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
    #: How gilfree's compiled module was built: ``{"cython": ..., "compiler": ...}``.
    build: dict[str, str] = field(default_factory=dict, hash=False)
    #: NumPy's version, where it is installed.
    numpy: str | None = None
    #: The native thread pools loaded in this process when the result was
    #: taken (threadpoolctl's ``threadpool_info()``: BLAS, OpenMP), each with
    #: its ``num_threads``. A BLAS pool of several threads makes a "serial"
    #: run of a function that calls BLAS parallel already.
    thread_pools: tuple[dict[str, Any], ...] = field(default=(), hash=False)
    #: Environment settings the interpreter ran with when ``--python`` named
    #: them (``{"PYTHON_GIL": "1"}``): part of the build, see :func:`build_label`.
    settings: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def cpus_available(self) -> int:
        """CPUs this process may run on (its affinity), else the CPU count."""
        return len(self.cpu_affinity) if self.cpu_affinity else (self.cpu_count or 1)


def build_label(ctx: Context) -> str:
    """The build a result was measured on, as the report names it: the
    version, ``t`` for a free-threaded build, then any settings it ran with
    (``3.13.0``, ``3.13.5t``, ``3.13.5t PYTHON_GIL=1``)."""
    return label_of(ctx.python, ctx.free_threaded_build, ctx.settings)


def label_of(python: str, free_threaded: bool, settings: dict[str, str]) -> str:
    """``3.13.5t PYTHON_GIL=1`` from its parts (see :func:`build_label`)."""
    label = python + ("t" if free_threaded else "")
    return " ".join([label, *(f"{k}={v}" for k, v in settings.items())])


@dataclass(frozen=True)
class ThreadCost:
    """What one thread of a kernel costs on this result's build against
    another build (``against``, the first one named): the median of per-round
    ratios of single-thread times, the two builds run back to back in each
    round, order alternating, with its bootstrap 95% interval. Above 1: one
    thread is slower here."""

    against: str
    ratio: float
    low: float
    high: float
    rounds: int


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
    from gilfree._version import __version__

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
        build=_build_info(),
        numpy=_numpy_version(),
        thread_pools=thread_pools(),
    )


@functools.cache
def _build_info() -> dict[str, str]:
    from gilfree import _countdown

    return dict(_countdown.build_info())


@functools.cache
def _numpy_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("numpy")
    except Exception:  # not installed (or no metadata): nothing to record
        return None


#: What :func:`thread_pools` keeps of each pool threadpoolctl reports.
POOL_KEYS = ("user_api", "internal_api", "prefix", "version", "num_threads", "filepath")


def thread_pools() -> tuple[dict[str, Any], ...]:
    """The BLAS and OpenMP thread pools loaded in this process now
    (threadpoolctl), or none where threadpoolctl is missing."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ()
    return tuple({k: pool.get(k) for k in POOL_KEYS} for pool in threadpool_info())


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
    #: One thread's time on this build against the first build named with
    #: ``--python``, measured in the same run; None with one build.
    thread_cost: ThreadCost | None = None
    #: For cells whose workers share this interpreter's GIL (threads): the
    #: GIL sampler's reading of an untimed serial run of this cell's kernel
    #: (one worker alone), and the GIL's hand-offs in its timed parallel runs,
    #: pooled over rounds; None elsewhere and in files saved before gilfree 0.3.
    gil_alone: SamplerReading | None = None
    gil_handoffs: Handoffs | None = None

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
    def gil_held(self) -> float | None:
        """The share of its time one worker holds the GIL when it runs alone
        (0 to 1), read from the GIL's state; None where it was not read or
        there is no GIL."""
        return None if self.gil_alone is None else self.gil_alone.held

    @property
    def gil_held_ci(self) -> tuple[float, float] | None:
        """The 95% interval of :attr:`gil_held`, where it was read."""
        if self.gil_alone is None or self.gil_alone.held is None:
            return None
        return self.gil_alone.held_ci

    @property
    def handoffs_per_s(self) -> float | None:
        """The GIL's hand-offs between threads per second in the parallel
        run, where the build counts them."""
        return None if self.gil_handoffs is None else self.gil_handoffs.per_s

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
        """Bootstrap confidence interval of :attr:`speedup`, over rounds; NaN
        with fewer than :data:`MIN_ROUNDS_FOR_CI` rounds kept (an interval from
        one or two points says nothing, and nothing is decided from it)."""
        kept = self._kept()
        if len(kept) < MIN_ROUNDS_FOR_CI:
            return float("nan"), float("nan")
        return median_ci(kept, confidence, resamples)

    @property
    def too_few_rounds(self) -> bool:
        """Fewer rounds kept than an interval needs (:data:`MIN_ROUNDS_FOR_CI`),
        though at least one: the speedup is a point, and stays undecided."""
        return 0 < len(self._kept()) < MIN_ROUNDS_FOR_CI

    @property
    def more_work(self) -> str:
        """How to give this cell's runs more work: ``--calls`` and a larger
        input for a user's function (named ``module:function``), ``-n`` or
        ``--seconds`` for a kernel."""
        if ":" in self.kernel:
            return "pass a larger input or more calls (--calls N)"
        return "raise -n or --seconds"

    @property
    def half_width(self) -> float:
        """Half the 95% interval, as a share of the speedup (0.05: +-5%)."""
        low, high = self.speedup_ci()
        return (high - low) / 2 / self.speedup if self.speedup > 0 else float("nan")

    @property
    def precision_reached(self) -> bool | None:
        """Whether the speedup's 95% interval is within the precision asked
        (None: none was asked). The speedup is the magnitude on this host;
        the verdict's word comes from readings inside the runs, which more
        rounds do not change. Never with fewer than :data:`MIN_ROUNDS_FOR_CI`
        rounds kept: an interval from one or two rounds says nothing."""
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
    def too_short(self) -> bool:
        """The serial run takes under :data:`SHORT_RUN_S`: what was measured
        is the harness, not parallelism."""
        return bool(self.baseline_s) and self.baseline_median_s < SHORT_RUN_S

    @property
    def warnings(self) -> list[str]:
        """Sentences saying why the figures deserve less trust."""
        if not self.runs:
            return []
        notes = []
        where = f"{self.kernel} on {self.backend} x{self.workers}"
        if self.too_short:
            notes.append(
                f"{where}: the serial run takes {self.baseline_median_s * 1e6:.1f} us, too short "
                "to measure parallelism (starting the workers outweighs the work); "
                + self.more_work
            )
        if self.flagged:
            notes.append(
                f"{where}: {self.excluded_rounds} of {self.rounds} rounds were faster than "
                "their busy CPUs allow (the host changed speed between the serial and the "
                "parallel run) and were left out; run it on a quieter machine"
            )
        if self.precision_reached is False:
            notes.append(
                f"{where}: speedup known to +-{self.half_width:.0%} after "
                f"{self.rounds} rounds (asked: +-{self.precision:.0%}; stopped: {self.stopped}); "
                "give it more time (--max-time) or a quieter machine"
            )
        if self.host is not None and self.host.busy:
            notes.append(f"{where}: the host was busy: {_host_words(self.host)}")
        return notes

    @property
    def warning(self) -> str | None:
        """The first of :attr:`warnings`, or None."""
        notes = self.warnings
        return notes[0] if notes else None

    @classmethod
    def from_dict(cls, data: dict[str, Any], context: dict[str, Any] | None = None) -> Result:
        """The :class:`Result` a :meth:`to_dict` (or a saved cell of any gilfree
        format) describes. ``context``: the document's context, for cells that
        store it once at the top. The derived figures are computed again from
        the raw timings, not read back.

        Raises ValueError naming the first field that is missing or wrong."""
        try:
            ctx = data.get("context") or context
            if not isinstance(ctx, dict):
                raise KeyError("context")
            return cls(
                kernel=str(data["kernel"]),
                backend=str(data["backend"]),
                workers=_whole(data["workers"], "workers", 1, _MOST_WORKERS),
                n=_whole(data["n"], "n", 0, _MOST_N),
                scaling=data["scaling"],
                start_method=data.get("start_method"),
                status=data["status"],
                reason=str(data.get("reason", "")),
                runs=tuple(_run_from(r) for r in data["runs"]),
                warmups=tuple(_run_from(r) for r in data.get("warmups", ())),
                baseline_s=tuple(_num(x) for x in data["baseline_s"]),
                context=_context_from(ctx),
                gil=_gil_from(data.get("gil")),
                cell_setup_s=_num(data.get("cell_setup_s", 0.0)),
                baseline_cpu_s=tuple(_num(x) for x in data.get("baseline_cpu_s", ())),
                serial_first=tuple(bool(x) for x in data.get("serial_first", ())),
                capacity=tuple(
                    None if c is None else CapacityRound(**{k: c[k] for k in _CAPACITY_FIELDS})
                    for c in data.get("capacity", ())
                ),
                precision=data.get("precision"),
                stopped=str(data.get("stopped", "")),
                host=None if data.get("host") is None else HostLoad(**data["host"]),
                thread_cost=None
                if data.get("thread_cost") is None
                else ThreadCost(**data["thread_cost"]),
                gil_alone=_sampled_from(data.get("gil_alone")),
                gil_handoffs=None
                if data.get("gil_handoffs") is None
                else Handoffs.from_dict(data["gil_handoffs"]),
            )
        except KeyError as exc:
            raise ValueError(f"not a gilfree cell: it has no {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            raise ValueError(f"not a gilfree cell: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Everything: raw timings, metadata and derived figures (JSON-ready)."""
        data = asdict(self)
        for key in ("runs", "warmups"):  # stamps by name, not as bare arrays
            for run in data[key]:
                run["workers"] = [w._asdict() for w in run["workers"]]
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
            "speedup_ci95": {"low": low, "high": high},
            "precision_reached": self.precision_reached,
            "efficiency": self.efficiency,
            "capacity_speedup": self.capacity_speedup,
            "capacity_ci95": {"low": cap_low, "high": cap_high},
            "share": self.share,
            "share_ci95": {"low": share_low, "high": share_high},
            "contention": self.contention,
            "gil_held": self.gil_held,
            "handoffs_per_s": self.handoffs_per_s,
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


# ------------------------------------------------------------------------- JSON

#: What every file gilfree writes says it is, and in which version of its
#: shape: ``"format"`` and ``"version"`` in the JSON document and in the first
#: line of the JSON Lines stream. Version 1 is gilfree 0.1's document, which
#: had neither (it is still read); version 2 names every field (worker stamps
#: are objects, not arrays) and stores the context once in the document.
FORMAT = "gilfree-results"
FORMAT_VERSION = 2

_CAPACITY_FIELDS = ("workers", "serial_s", "serial_cpu_s", "parallel_s", "parallel_cpu_s")


#: The largest counts a saved cell may hold: far past any run, and small
#: enough that every figure made from them can be shown.
_MOST_N = 2**63 - 1
_MOST_WORKERS = 1_000_000


def _whole(value: Any, name: str, low: int, high: int) -> int:
    """A whole number from a saved file, within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{name} is {value!r}, not a whole number")
    if not low <= value <= high:
        digits = len(str(int(abs(value))))
        shown = f"a number of {digits} digits" if digits > 15 else str(value)
        raise ValueError(f"{name} is {shown}, outside {low} to {high:,}")
    return int(value)


def _num(value: Any) -> float:
    """A float read back from JSON, where NaN was written as null."""
    return float("nan") if value is None else float(value)


def _run_from(data: dict[str, Any]) -> RunTiming:
    from gilfree._worker import WorkerStamp

    def stamp(w: Any) -> WorkerStamp:
        if isinstance(w, dict):  # version 2: named
            return WorkerStamp(
                int(w["start_ns"]), int(w["end_ns"]), _num(w["cpu_s"]), int(w["iterations"])
            )
        return WorkerStamp(int(w[0]), int(w[1]), _num(w[2]), int(w[3]))  # version 1: an array

    return RunTiming(
        setup_s=_num(data["setup_s"]),
        span_s=_num(data["span_s"]),
        total_s=_num(data["total_s"]),
        workers=tuple(stamp(w) for w in data["workers"]),
        gil=_gil_from(data.get("gil")),
        span_from=data.get("span_from", "shared clock"),
    )


def _sampled_from(data: dict[str, Any] | None) -> SamplerReading | None:
    return None if data is None else SamplerReading.from_dict(data)


def _gil_from(data: dict[str, Any] | None) -> GILReading | None:
    if data is None:
        return None
    return GILReading(
        gil=bool(data["gil"]),
        samples=int(data["samples"]),
        waited_s=_num(data["waited_s"]),
        probed_s=_num(data["probed_s"]),
        max_wait_s=_num(data["max_wait_s"]),
        interval_s=_num(data["interval_s"]),
    )


def _context_from(data: dict[str, Any]) -> Context:
    affinity = data.get("cpu_affinity")
    return Context(
        python=str(data["python"]),
        implementation=str(data.get("implementation", "CPython")),
        free_threaded_build=bool(data.get("free_threaded_build", False)),
        gil_enabled=bool(data.get("gil_enabled", True)),
        switch_interval_s=_num(data.get("switch_interval_s")),
        cpu_count=data.get("cpu_count"),
        cpu_affinity=None if affinity is None else tuple(affinity),
        machine=str(data.get("machine", "")),
        processor=str(data.get("processor", "")),
        platform=str(data.get("platform", "")),
        gilfree=str(data.get("gilfree", "")),
        timestamp=str(data.get("timestamp", "")),
        build=dict(data.get("build") or {}),
        numpy=data.get("numpy"),
        thread_pools=tuple(data.get("thread_pools") or ()),
        settings={str(k): str(v) for k, v in (data.get("settings") or {}).items()},
    )


def to_json(results: Sequence[Result], status: str = "complete", **meta: Any) -> dict[str, Any]:
    """Every raw timing and the metadata, as one JSON-ready document:
    ``format``, ``version``, the gilfree version, ``status``, the context
    (once: a cell keeps its own only where it differs), ``meta`` (such as the
    command) and the cells. :func:`load` reads it back."""
    from gilfree._version import __version__

    cells = [r.to_dict() for r in results]
    shared = cells[0]["context"] if cells else asdict(context())
    for cell in cells:
        if cell["context"] == shared:
            del cell["context"]
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "gilfree": __version__,
        "status": status,
        "context": shared,
        **meta,
        "results": cells,
    }


@dataclass(frozen=True)
class SavedRun:
    """A run read back by :func:`load`: its cells as :class:`Result` objects,
    how it ended (``complete``, ``failed``, ``interrupted``, or ``cut off``
    for a stream whose process was killed), and what else it recorded
    (``command``, a ``check``'s verdict, ...)."""

    path: str
    results: list[Result]
    status: str
    meta: dict[str, Any]
    version: int


def load(path: str) -> SavedRun:
    """Any file gilfree wrote with ``--json`` or ``--format json|jsonl``, in
    any format version it knows, as a :class:`SavedRun`.

    Raises ValueError naming the file and the problem: not a gilfree file, a
    newer format version, an empty file, a stream cut inside its first line.
    A stream cut later reads as ``"cut off"`` with the cells it holds.
    OSError where it cannot be read."""
    with open(path, encoding="utf-8-sig") as f:  # (a byte-order mark an editor added is skipped)
        text = f.read()
    if not text.strip():
        raise ValueError(f"{path}: the file is empty; is it the output of gilfree --json?")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ValueError(f"{path}: not a gilfree results file (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        if not text.lstrip().startswith(("{", "[")):
            raise ValueError(
                f"{path}: not a gilfree results file (not JSON: it starts {text.lstrip()[:20]!r})"
            ) from None
        if not text.lstrip().startswith('{"record"'):  # not a JSON Lines log either
            what = "text after the JSON document" if exc.msg == "Extra data" else exc.msg.lower()
            raise ValueError(
                f"{path}: not valid JSON: {what} (line {exc.lineno}, column {exc.colno})"
                + ("; was the file cut short?" if exc.msg != "Extra data" else "")
            ) from None
        doc = None  # JSON Lines: one value per line
    if isinstance(doc, dict) and "record" not in doc:
        if not isinstance(doc.get("results"), list):
            raise ValueError(f"{path}: not a gilfree results file (no list of results)")
        version = _version(path, doc, legacy=1)
        shared = doc.get("context")
        meta = {k: v for k, v in doc.items() if k not in ("results", "context")}
        results = [_cell(path, i, c, shared) for i, c in enumerate(doc["results"], 1)]
        return SavedRun(path, results, str(doc.get("status", "complete")), meta, version)
    if isinstance(doc, list) or (doc is not None and not isinstance(doc, dict)):
        raise ValueError(f"{path}: not a gilfree results file (a JSON {type(doc).__name__})")
    log = read_json(path)
    version = _version(path, log["start"], legacy=2)
    shared = log["start"].get("context")
    results = [_cell(path, i, c, shared) for i, c in enumerate(log["results"], 1)]
    meta = {**log["start"], **(log["end"] or {})}
    return SavedRun(path, results, log["status"], meta, version)


def _version(path: str, header: dict[str, Any], legacy: int) -> int:
    """The format version a file declares (``legacy`` where it declares none,
    as gilfree 0.1's files did), refusing a newer one or another format."""
    kind = header.get("format", FORMAT)
    if kind != FORMAT:
        raise ValueError(f"{path}: a {kind!r} file, not gilfree results")
    version = header.get("version", legacy)
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: format version {version!r} is not one gilfree wrote")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {version}, newer than this gilfree reads (up to "
            f"{FORMAT_VERSION}); upgrade it: pip install -U gilfree"
        )
    return version


def _cell(path: str, number: int, data: Any, shared: dict[str, Any] | None) -> Result:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: cell {number} is not an object")
    try:
        return Result.from_dict(data, shared)
    except ValueError as exc:
        raise ValueError(f"{path}: cell {number}: {exc}") from None


class JsonLog:
    """A measurement written as JSON Lines while it runs, so that nothing
    measured is lost when a later cell, Ctrl-C or a crash stops it.

    The first line is ``{"record": "start", ...}`` (the command and context),
    then one ``{"record": "cell", ...}`` per cell as it completes
    (:meth:`Result.to_dict`), then ``{"record": "end", "status": ...}`` with
    ``"complete"``, ``"failed"`` (some cells failed or timed out) or
    ``"interrupted"``. A file without an end line was cut off (the process
    was killed). :func:`read_json` reads it back.
    """

    def __init__(self, path: str, **meta: Any) -> None:
        from gilfree._version import __version__

        self.path = path
        self.cells = 0
        self._file = _own_stdout() if path == "-" else open(path, "w", encoding="utf-8")  # noqa: SIM115
        try:
            self._write(
                {
                    "record": "start",
                    "format": FORMAT,
                    "version": FORMAT_VERSION,
                    "gilfree": __version__,
                    **meta,
                }
            )
        except BaseException:
            self.close()
            raise

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(_clean(record), allow_nan=False) + "\n")
        self._file.flush()

    def cell(self, result: Result) -> None:
        """Append one measured cell."""
        self.cells += 1
        self._write({"record": "cell", **result.to_dict()})

    def end(self, status: str, **meta: Any) -> None:
        """Write the end line and close the file (standard output stays open)."""
        self._write({"record": "end", "status": status, "cells": self.cells, **meta})
        self.close()

    def close(self) -> None:
        """Close the file (standard output stays open). A failed write leaves
        its line in the buffer; closing drops it rather than failing again."""
        if self._file in (sys.stdout, sys.__stdout__) or self._file.closed:
            return
        with contextlib.suppress(OSError):
            self._file.close()


def _own_stdout() -> TextIO:
    """A stream of its own onto standard output (a duplicate of its file
    descriptor), so that a log written to ``-`` keeps going to standard output
    while the measured code's prints are sent to stderr. Where standard
    output has no descriptor (a capturing test), standard output itself."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdout
    sys.stdout.flush()
    return os.fdopen(os.dup(fd), "w", encoding="utf-8")


def read_json(path: str) -> dict[str, Any]:
    """A :class:`JsonLog` file as ``{"start": ..., "results": [...], "end": ...}``;
    ``end`` is None when the run was cut off before it could write one, and
    ``status`` is the end line's status, or ``"cut off"``.

    Raises ValueError, naming the file and line, for anything that is not
    one such log: a line that is not a record, a file cut inside its first
    line, two logs joined end to end, a record after the end line."""
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    cells: list[dict[str, Any]] = []
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            kind = record.get("record") if isinstance(record, dict) else None
            cut = line.lstrip().startswith("{")  # the start of a record, never its end
            if record is None and not line.endswith("\n") and cut:
                # A last line cut off mid-write: the process was killed.
                if start is None:
                    raise ValueError(
                        f"{path}: cut off inside its first line (the run was killed as it "
                        "started), so it holds no cells"
                    )
                break
            if kind not in ("start", "cell", "end"):
                what = (
                    "text that is not JSON" if record is None else f"a JSON {type(record).__name__}"
                )
                raise ValueError(f"{path}:{number}: not a gilfree JSON Lines record ({what})")
            assert isinstance(record, dict)
            del record["record"]
            if end is not None:
                raise ValueError(
                    f"{path}:{number}: a {kind} record after the end line"
                    + ("; two logs joined end to end? Keep one per file" if kind == "start" else "")
                )
            if kind == "start":
                if start is not None:
                    raise ValueError(
                        f"{path}:{number}: a second start record; two logs joined end to end? "
                        "Keep one per file"
                    )
                start = record
            elif start is None:
                raise ValueError(f"{path}:{number}: a {kind} record before the start record")
            elif kind == "cell":
                cells.append(record)
            else:
                end = record
    if start is None:
        raise ValueError(f"{path}: no start record; is it a gilfree --json file?")
    return {
        "start": start,
        "results": cells,
        "end": end,
        "status": end["status"] if end else "cut off",
    }


def write_json(data: dict[str, Any], path: str) -> None:
    """Write ``data`` to ``path`` (``-``: standard output)."""
    text = json.dumps(_clean(data), indent=2, allow_nan=False)
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _clean(value: Any) -> Any:
    """NaN (no measurement) becomes null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
