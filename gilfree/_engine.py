"""The engine's inside: one group of cells measured in paired rounds.

:mod:`gilfree.measure` turns a plan into groups and results; this module
runs a group's rounds (the serial run, the parallel run and the host's
capacity pair, back to back), tracks each cell's rounds until its precision
or budget is reached, and reads the host's load and the GIL beside them. It
also sizes the work (:func:`calibrate`, :func:`chunks_for`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import statistics
import time
from typing import Any, Literal

from gilfree.backends import (
    BACKENDS,
    Backend,
    RunTimeout,
    RunTiming,
    UnsupportedError,
    WorkerError,
)
from gilfree.kernels import KERNELS, MAX_N, Kernel, get_kernel
from gilfree.meter import GILReading
from gilfree.plan import (
    Plan,
    Scaling,
)
from gilfree.results import (
    CapacityRound,
    Context,
    HostLoad,
    Result,
    Status,
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
