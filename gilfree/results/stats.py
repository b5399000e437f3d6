"""The figures a :class:`~gilfree.results.Result` derives from its rounds.

A result keeps every round it measured; everything said about it (the
speedup and its interval, the rounds left out by the consistency check, the
share of the host's capacity, the GIL's readings, the warnings) is worked out
here, on demand, from those rounds. :class:`ResultStats` is mixed into
``Result``; the helpers are plain functions of numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gilfree.backends import RunTiming
from gilfree.meter import GILReading
from gilfree.results.context import CapacityRound, Context, HostLoad, ThreadCost, consistent
from gilfree.sampler import Handoffs, SamplerReading

SPREAD_WARNING = 0.10  # pyperf's rule: warn when stdev exceeds 10% of the mean


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


def _host_words(host: HostLoad) -> str:
    parts = []
    if host.others_cpus is not None:
        parts.append(f"other processes used {host.others_cpus:.2f} CPUs")
    if host.steal_cpus:
        parts.append(f"other guests took {host.steal_cpus:.2f} CPUs (steal)")
    if host.load_before is not None and host.load_after is not None:
        parts.append(f"load average {host.load_before:.2f} -> {host.load_after:.2f}")
    return ", ".join(parts)


class ResultStats:
    """The derived figures of a :class:`~gilfree.results.Result` (mixed in:
    they read its rounds, never change them)."""

    if TYPE_CHECKING:
        kernel: str
        backend: str
        workers: int
        n: int
        scaling: str
        start_method: str | None
        status: str
        reason: str
        context: Context
        serial_first: tuple[bool, ...]
        thread_cost: ThreadCost | None
        runs: tuple[RunTiming, ...]
        warmups: tuple[RunTiming, ...]
        baseline_s: tuple[float, ...]
        baseline_cpu_s: tuple[float, ...]
        capacity: tuple[CapacityRound | None, ...]
        precision: float | None
        stopped: str
        host: HostLoad | None
        cell_setup_s: float
        gil: GILReading | None
        gil_alone: SamplerReading | None
        gil_handoffs: Handoffs | None

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
