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
import functools
import os
import statistics
import time
from collections.abc import Callable, Iterable
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
from gilfree.results import (
    CapacityRound,
    Context,
    HostLoad,
    Result,
    Status,
    consistent,
    context,
    median_ci,
)
from gilfree.sampler import (
    MIN_SAMPLES,
    SAMPLE_MORE_S,
    SOURCE_STATE,
    GILSampler,
    HandoffCounter,
    Handoffs,
    SamplerReading,
    armed,
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
    "consistent",
    "context",
    "measure",
    "median_ci",
    "run",
    "sweep",
    "time_call",
]

#: What a sweep does when a cell fails: record it and go on, or raise.
OnError = Literal["record", "raise"]
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


def calibrate(kernel: str | Kernel, seconds: float, start: int = 1) -> int:
    """Return the ``n`` for which ``kernel(n)`` takes about ``seconds`` here.

    Grows ``n`` from ``start`` until one call takes at least a quarter of the
    target (so timer resolution, call overhead and clock ramp-up do not skew
    the estimate), then scales linearly: every kernel's time is linear in
    ``n``. Starting at one matters for a user's function, where ``n`` counts
    calls: a 20 ms function started at 1000 calls would take 20 s per try.
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
        #: The GIL sampler's readings of this track's untimed runs (a serial
        #: run), or the GIL's hand-offs in its timed runs (a cell).
        self.readings: list[SamplerReading] = []
        self.handoffs: list[Handoffs] = []
        self.setup_s = 0.0
        self.done = False  # no more rounds needed
        # Per round, in the group's round numbering: the run, or None.
        self.rounds: dict[int, RunTiming] = {}

    @property
    def live(self) -> bool:
        return self.status == "ok"

    def fail(self, status: Status, reason: str, error: BaseException | None = None) -> None:
        self.status, self.reason, self.error = status, reason, error

    def run(self, metered: bool = False, sampled: bool = False) -> RunTiming:
        """One run, stopped past the timeout; raises what the backend raises.

        The timeout bounds each run, not the cell: how many rounds a cell
        gets is the time budget's business, and a timeout is there to stop a
        run that hangs or runs away. ``sampled``: a serial run is read by the
        GIL sampler (whose thread takes CPU time: only in untimed runs); a
        cell's run counts the GIL's hand-offs, read from its switch counter
        as the workers start and after they end, nothing in between."""
        if sampled and self.role == "serial":
            with armed(GILSampler(apart=True)) as sampler:  # one worker alone: its own CPU
                timing = self.run(metered)
            if sampler.started:  # the backend set the window
                self.readings.append(sampler.reading())
            return timing
        if sampled:
            with armed(HandoffCounter()) as counter:
                timing = self.run(metered)
            count = counter.reading() if counter.started else None
            if count is not None:
                self.handoffs.append(count)
            return timing
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

    def _attempt(
        self, track: _Track, metered: bool = False, sampled: bool = False
    ) -> RunTiming | None:
        """One run of ``track``, or None when it failed (recorded, or raised
        with ``errors="raise"``)."""
        try:
            return track.run(metered, sampled)
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
            # Calibration has just run each kernel serially at about this size:
            # a serial warm-up would repeat it.
            # The GIL sampler reads one untimed serial run where a threads cell
            # needs it: its thread takes CPU time, so never a timed run.
            alone = self._wants_alone(kernel)
            for i in range(self.plan.warmups if self.plan.n is not None else 0):
                timing = self._attempt(serial, sampled=alone and i == 0)
                if timing is not None:
                    serial.warm.append(timing)
            timings = list(serial.warm)
            unread = alone and not serial.readings
            unsized = self.plan.n is not None and not timings and self._capacity_wanted()
            if serial.live and (unread or unsized):
                # One more untimed run: for the sampler, and to size the
                # capacity pair where no warm-up did.
                extra = self._attempt(serial, sampled=unread)
                timings += [extra] if extra is not None else []
            if alone:
                self._sample_enough(serial)
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

    def _sample_enough(self, serial: _Track) -> None:
        """Sample more untimed runs of a serial run too short to give
        :data:`MIN_SAMPLES` samples of the GIL's state (a few milliseconds),
        until its readings hold twice that, or :data:`SAMPLE_MORE_S` seconds
        of runs: a short run then gets a verdict too."""
        give_up = time.monotonic() + SAMPLE_MORE_S  # wall time: a run of n=0 takes none
        while (
            serial.live
            and serial.readings
            and serial.readings[-1].source == SOURCE_STATE
            and sum(r.samples for r in serial.readings) < 2 * MIN_SAMPLES
            and time.monotonic() < give_up
        ):
            if self._attempt(serial, sampled=True) is None:
                return

    def _capacity_wanted(self) -> bool:
        """Whether this group measures the host's capacity: asked for, more
        than one worker, a parallel cell to compare, and processes here."""
        parallel = [c for c in self.cells if c.live and c.backend is not _SERIAL]
        return (
            self.plan.capacity
            and self.count >= 2
            and bool(parallel)
            and not BACKENDS[CAPACITY_BACKEND].availability()
        )

    def _size_capacity(self, serial_s: float) -> None:
        if serial_s <= 0 or not self._capacity_wanted():
            return
        backend = BACKENDS[CAPACITY_BACKEND]
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
                shared = track.role == "cell" and track.backend.gil_meter == "shared"
                timing = self._attempt(track, sampled=shared)
                if timing is not None:
                    track.rounds[self.round] = timing
        self.round += 1
        for cell in self.cells:
            if cell.live and not cell.done:
                cell.done = self._settled(cell)

    def _wants_alone(self, kernel: Kernel) -> bool:
        """Whether ``kernel`` has a cell whose workers share this
        interpreter's GIL (threads): its verdict needs the share of its time
        one worker holds the GIL alone."""
        return any(
            c.kernel is kernel and c.backend.gil_meter == "shared" and c.live for c in self.cells
        )

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
            gil_alone=_pooled(serial.readings) if cell.handoffs else None,
            gil_handoffs=Handoffs.pooled(cell.handoffs) if cell.handoffs else None,
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


def _pooled(readings: list[SamplerReading]) -> SamplerReading | None:
    return SamplerReading.pooled(readings) if readings else None


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
