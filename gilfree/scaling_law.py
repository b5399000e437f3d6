"""The scaling law: how far threads go, from the GIL's held share.

One thread alone holds the GIL a share ``f`` of its time (read by
:class:`gilfree.GILSampler`). N threads under one lock then run at most

    bound(N) = min(N, 1/f)

times as fast as one: past about ``1/f`` threads (the knee), more threads do
not help. Below the bound, threads queue for the GIL. :func:`scaling` gives
the curve a closed queueing model predicts:

- **The model.** N threads cycle between two stations. The GIL is one
  server, first come first served, with a demand of ``f`` per unit of work
  (the time one thread alone takes for it). The GIL-free part, ``1 - f``,
  either waits (``free="wait"``: a delay station, every thread at once, like
  a socket read) or computes (``free="compute"``: a station of ``cores``
  CPUs, where ``j`` threads run at ``min(j, cores)`` times one's speed).
  Exact mean value analysis gives the throughput at each N, which is the
  speedup over one thread. The GIL's holder runs on a CPU too, which the
  model leaves out; the prediction never passes ``cores``.
- **Held sections**: ``sections="exponential"`` (the default; real code's
  sections vary in length) takes them as exponential, for which mean value
  analysis is exact. ``sections="fixed"`` takes every section and every
  GIL-free stretch as one length, as the ``mixed`` and ``io`` kernels hold
  them: with nothing to upset them, threads fall into step and never queue,
  so the curve is the bound itself, ``min(N, 1/f)`` (and ``cores``), which
  is exact for such a deterministic cycle. Real code lies between the two.
- **Hand-offs**: each change of the GIL's holder can cost a wake-up, and
  where held sections are short (tens of microseconds) those costs take
  threads well below the queue's curve. ``handoffs=`` (a
  :class:`HandoffCost`) puts them in: the GIL's demand per unit of work
  grows from ``f`` to ``f + rate * seconds`` once there are two threads or
  more. :func:`handoff_cost` reads that cost from a measured run of
  threads: its hand-offs per second, its held share and its speedup (the
  loss the GIL's queue alone leaves unexplained, shared among its
  hand-offs). Without it, the prediction leaves hand-offs out and says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gilfree.results.context import build_label

__all__ = [
    "DEFAULT_WORKERS",
    "MISS",
    "HandoffCost",
    "Row",
    "handoff_cost",
    "knee",
    "law_for",
    "law_lines",
    "laws",
    "scaling",
]

#: The worker counts :func:`scaling` predicts by default.
DEFAULT_WORKERS = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Row:
    """One worker count: the GIL's bound and the model's prediction."""

    workers: int
    #: min(workers, 1/held): no number of threads under one lock does better.
    bound: float
    #: The speedup over one thread the queueing model predicts.
    predicted: float
    #: Whether the prediction takes the GIL's hand-offs in (``handoffs=``).
    handoffs_in: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "bound": self.bound,
            "predicted": self.predicted,
            "handoffs_in": self.handoffs_in,
        }


@dataclass(frozen=True)
class HandoffCost:
    """What the GIL's hand-offs take from threads: ``rate`` hand-offs per
    second of one thread's work, each costing the GIL ``seconds`` beyond the
    held sections (the wake-up of a thread that waited for it). Read from a
    run with :func:`handoff_cost`, or given.

    >>> HandoffCost(rate=20_000, seconds=10e-6).share   # the GIL's demand grows by 0.2
    0.2
    """

    #: Hand-offs per second of one thread's work.
    rate: float
    #: Seconds of the GIL's time each hand-off takes.
    seconds: float
    #: The thread count of the run it was read from (0: given, not read).
    workers: int = 0

    def __post_init__(self) -> None:
        for name in ("rate", "seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, not {value!r}")
            if not 0.0 <= value < math.inf:  # NaN fails too
                raise ValueError(f"{name} must be a finite number of at least 0, got {value!r}")

    @property
    def share(self) -> float:
        """The GIL's demand the hand-offs add per unit of work."""
        return self.rate * self.seconds

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "seconds": self.seconds, "workers": self.workers}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HandoffCost:
        return cls(float(data["rate"]), float(data["seconds"]), int(data.get("workers", 0)))


def _share(held: Any) -> float:
    """A held share from a number, a sampler reading or a result."""
    value = getattr(held, "gil_held", held)  # a Result
    value = getattr(value, "held", value)  # a SamplerReading
    if value is None:
        raise ValueError(
            "there is no held share to scale from: the GIL was not read (no GIL, or a "
            "build whose GIL gilfree cannot read)"
        )
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"held must be a share from 0 to 1 or a sampler reading, not {held!r}")
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ValueError(f"held must be a share from 0 to 1, got {value!r}")
    return float(value)


def knee(held: Any) -> float:
    """``1/f``: past about this many threads, more threads do not help
    (infinite where the GIL is never held)."""
    f = _share(held)
    return math.inf if f == 0 else 1.0 / f


def scaling(
    held: Any,
    workers: Iterable[int] = DEFAULT_WORKERS,
    *,
    cores: int | None = None,
    free: str = "compute",
    sections: str = "exponential",
    handoffs: HandoffCost | None = None,
) -> list[Row]:
    """The bound and the predicted speedup of threads, one :class:`Row` per
    worker count (see the module's text for the model).

    Parameters
    ----------
    held
        The share of its time one thread alone holds the GIL, 0 to 1; or a
        :class:`~gilfree.sampler.SamplerReading`, or a threads
        :class:`~gilfree.results.Result` (its ``gil_held``).
    workers
        The thread counts (default 1 to 64, in powers of two).
    cores
        The CPUs the GIL-free part can use (``free="compute"``); None: as many
        as there are threads (no CPU limit).
    free
        ``"compute"`` (the GIL-free part runs on CPUs) or ``"wait"`` (it
        waits, as I/O does: no CPU limit).
    sections
        ``"exponential"`` (held sections of varying length) or ``"fixed"``
        (all of one length: threads fall into step, and the curve is the
        bound).
    handoffs
        A :class:`HandoffCost`: from two threads on, the GIL's demand per
        unit of work is ``held + handoffs.share``. None: hand-offs are left
        out (each row's ``handoffs_in`` says which).
    """
    f = _share(held)
    counts = [int(w) for w in workers]
    if not counts or any(w < 1 for w in counts):
        raise ValueError(f"workers must be counts of at least 1, got {counts!r}")
    if free not in ("compute", "wait"):
        raise ValueError(f"free must be 'compute' or 'wait', not {free!r}")
    if cores is not None and (isinstance(cores, bool) or not isinstance(cores, int) or cores < 1):
        raise ValueError(f"cores must be a whole number of at least 1, got {cores!r}")
    if sections not in ("exponential", "fixed"):
        raise ValueError(f"sections must be 'exponential' or 'fixed', not {sections!r}")
    if handoffs is not None and not isinstance(handoffs, HandoffCost):
        raise TypeError(f"handoffs must be a HandoffCost or None, not {handoffs!r}")
    limit = cores if free == "compute" else None
    # The GIL's demand per unit of work once threads hand it to each other.
    demand = min(1.0, f + handoffs.share) if handoffs is not None else f
    within = handoffs is not None
    if sections == "fixed":
        most = knee(demand) if limit is None else min(knee(demand), limit)
        return [
            Row(
                workers=n,
                bound=float(min(n, knee(f))),
                predicted=1.0 if n == 1 else float(min(n, most)),
                handoffs_in=within,
            )
            for n in counts
        ]
    curve = _mva(f, demand, max(counts), limit)
    return [
        Row(workers=n, bound=float(min(n, knee(f))), predicted=curve[n - 1], handoffs_in=within)
        for n in counts
    ]


def _mva(f: float, demand: float, most: int, cores: int | None) -> list[float]:
    """Throughput at 1..most threads (one thread alone: 1), by exact mean
    value analysis of the GIL (one server, first come first served, demand
    ``f`` for one thread, ``demand`` from two on: the hand-offs' share added)
    and the GIL-free part (demand ``1 - f``): a delay, or ``cores`` CPUs as a
    load-dependent station (``j`` threads on it run at ``min(j, cores)``
    times one's speed), whose queue-length distribution the recursion
    carries."""
    rest = 1.0 - f
    q_gil = 0.0
    # p[j]: the chance that j threads are at the CPUs (with one fewer thread).
    p = [1.0]
    out = []
    for n in range(1, most + 1):
        d = f if n == 1 else demand
        r_gil = d * (1.0 + q_gil)
        if cores is None:
            r_free = rest
        else:
            r_free = sum(j / min(j, cores) * rest * p[j - 1] for j in range(1, n + 1))
        cycle = r_gil + r_free
        x = n / cycle if cycle > 0 else float(n)
        q_gil = x * r_gil
        if cores is not None:
            grown = [0.0] + [rest / min(j, cores) * x * p[j - 1] for j in range(1, n + 1)]
            grown[0] = max(0.0, 1.0 - sum(grown[1:]))
            p = grown
        # (rounding can carry x a hair past 1/demand, which the GIL never allows)
        out.append(min(x, float(n), knee(d), float(cores) if cores else math.inf))
    return out


def handoff_cost(
    cell: Any,
    cores: int | None = None,
    free: str = "compute",
    sections: str = "exponential",
    held: float | None = None,
) -> HandoffCost | None:
    """The cost of a GIL hand-off, read from a measured threads run (a
    :class:`~gilfree.results.Result` of two threads or more, with its GIL
    read): the hand-offs per second of work are its hand-offs a second over
    its speedup; the seconds each costs are what makes the model (with
    ``cores``, ``free`` and ``sections`` as :func:`scaling` takes them) meet
    the measured speedup, shared among those hand-offs. 0 where the run did
    as well as the GIL's queue alone predicts. ``held``: the held share to
    read it with (default: the run's own).

    Where the GIL-free part computes and the host's capacity was measured in
    the same rounds, the loss is read against that capacity: the speedup the
    model must meet is the run's share of what as many processes got here,
    times the ideal ``min(workers, cores)``. A shortfall the processes shared
    is the host's (its CPUs were taken, or slower for a while), not the
    GIL's, and costs the GIL nothing.

    None where it cannot be read: no held share or hand-off count, fewer than
    two threads, no speedup, no hand-offs, a GIL held nearly all the time
    (free less than :data:`FREE_TO_READ`: one thread at a time whatever the
    cost), or CPUs that were all busy (the loss is then the CPUs', not the
    GIL's).
    """
    held = cell.gil_held if held is None else held
    rate_s, speedup, n = cell.handoffs_per_s, cell.speedup, cell.workers
    if held is None or rate_s is None or n < 2 or not speedup > 0 or rate_s <= 0:
        return None
    if cores is not None and cell.busy_cpus >= CPUS_BUSY * min(n, cores):
        return None
    f = float(held)
    rate = rate_s / speedup  # hand-offs per second of one thread's work
    target = speedup  # what the model must meet
    if free == "compute" and math.isfinite(share := cell.share) and share > 0:
        target = share * min(n, cores if cores is not None else n)

    def model(extra: float) -> float:
        cost = HandoffCost(rate, extra / rate, n)
        (row,) = scaling(f, [n], cores=cores, free=free, sections=sections, handoffs=cost)
        return row.predicted

    low, high = 0.0, 1.0 - f
    if high < FREE_TO_READ:  # the GIL alone allows about one thread: no cost shows
        return None
    if target >= model(0.0):
        return HandoffCost(rate, 0.0, n)
    if target <= model(high):
        return HandoffCost(rate, high / rate, n)
    for _ in range(60):  # the model falls as the demand grows: bisect
        mid = (low + high) / 2
        low, high = (mid, high) if model(mid) > target else (low, mid)
    return HandoffCost(rate, (low + high) / 2 / rate, n)


#: A prediction that misses its measurement by more than this is flagged.
MISS = 0.20
#: Serial runs that kept a CPU busy less than this share of their time
#: spend their GIL-free part waiting: the law takes ``free="wait"``.
WAITING_BELOW = 0.5
#: GIL hand-offs a second from which they are named as the likely cost.
MANY_HANDOFFS = 1000.0
#: The least GIL-free share a run needs for a hand-off cost to be read from
#: it: held more of the time, the GIL's queue alone allows one thread.
FREE_TO_READ = 0.02
#: A run whose busy CPUs reached this share of what its threads could use
#: was held back by the CPUs: no hand-off cost is read from it.
CPUS_BUSY = 0.9


def law_for(cells: Iterable[Any], cores: int | None = None) -> dict[str, Any] | None:
    """The law for one kernel's threads cells (:class:`~gilfree.results.Result`),
    from the held share of its largest threads cell, against every measured
    threads point; None where the GIL's held share was not read (no GIL, or
    a build whose GIL cannot be read).

    The GIL-free part is taken to wait when the serial run kept a CPU busy
    less than :data:`WAITING_BELOW` of its time, else to compute on ``cores``
    CPUs (default: the CPUs this run had).

    The hand-off cost is read (:func:`handoff_cost`) from the cell with the
    fewest threads, two or more. That cell is compared with the GIL's queue
    alone, since it sets the cost; every other cell, and the prediction, take
    the cost in. A point the prediction misses by more than :data:`MISS` is
    flagged, with the reason the readings point to.
    """
    threads = sorted(_lawful(cells), key=lambda c: c.workers)
    read = [c for c in threads if c.gil_held is not None]
    if not read:
        return None
    top = read[-1]
    held = float(top.gil_held)
    here = top.context.cpus_available
    cpu_s, wall_s = sum(top.baseline_cpu_s), sum(top.baseline_s)
    waits = bool(cpu_s and wall_s and cpu_s / wall_s < WAITING_BELOW)
    free = "wait" if waits else "compute"
    stated = cores if cores is not None else here
    counts = [w for w in DEFAULT_WORKERS if w <= max(2, 2 * stated)]
    usable = [c for c in threads if c.workers >= 2 and not math.isnan(c.speedup)]
    sets = usable[0] if usable else None
    cost = None
    if sets is not None:
        cost = handoff_cost(sets, None if waits else here, free, held=held)
    points = []
    for c in usable:
        given = None if c is sets else cost
        (row,) = scaling(
            held, [c.workers], cores=None if waits else here, free=free, handoffs=given
        )
        off = c.speedup / row.predicted - 1
        points.append(
            {
                "workers": c.workers,
                "measured": c.speedup,
                "predicted": row.predicted,
                "bound": row.bound,
                "off": off,
                "sets_cost": c is sets and cost is not None,
                "flag": _why_missed(c, off, here, cost if c is sets else None)
                if abs(off) > MISS
                else None,
            }
        )
    rows = scaling(held, counts, cores=None if waits else stated, free=free, handoffs=cost)
    return {
        "held": held,
        "knee": knee(held),
        "free": free,
        "cores": stated,
        "handoff": None if cost is None else cost.to_dict(),
        "prediction": [r.to_dict() for r in rows],
        "measured": points,
    }


def _threads_with_gil(cells: Iterable[Any]) -> list[Any]:
    """The threads cells that ran, on a build with its GIL on."""
    return [c for c in cells if c.ok and c.backend == "threads" and c.context.gil_enabled]


def _lawful(cells: Iterable[Any]) -> list[Any]:
    """The threads cells a law may rest on: run with the GIL, and long enough
    to measure. Under :data:`~gilfree.results.SHORT_RUN_S` of serial run, the
    speedup measures starting the workers, and the harness around each run,
    which holds the GIL too, weighs in the held share."""
    return [c for c in _threads_with_gil(cells) if not c.too_short]


def _unstated(name: str, results: Sequence[Any]) -> str | None:
    """Why the law is not stated for ``name``, where its GIL was read only in
    runs too short to measure; None otherwise."""
    read = [
        r
        for r in _threads_with_gil(r for r in results if r.kernel == name)
        if r.gil_held is not None
    ]
    if not read or not all(r.too_short for r in read):
        return None
    return (
        f"{name}: the GIL's law is not stated: its serial run takes "
        f"{read[0].baseline_median_s * 1e6:.1f} us, too short to measure (the harness "
        f"around each run holds the GIL too, and weighs in its share and its speedups); "
        f"{read[0].more_work}"
    )


def _why_missed(cell: Any, off: float, cpus: int, cost: HandoffCost | None = None) -> str:
    """What the readings of a cell point to when the law misses it (``cost``:
    the hand-off cost this cell's own readings give, where it sets it)."""
    if off > 0:
        return (
            "above the curve: its held sections queue less than the model's (sections "
            "of one length do)"
        )
    handoffs = cell.handoffs_per_s
    rate = "" if handoffs is None else f": {handoffs:,.0f} a second"
    if (handoffs is not None and handoffs >= MANY_HANDOFFS) or (cell.gil_held or 0) >= 0.5:
        if cost is not None and cost.seconds > 0:
            return (
                f"the GIL's hand-offs between threads{rate}: read as "
                f"{cost.seconds * 1e6:.1f} us of the GIL's time each, which the other "
                "predictions take in"
            )
        return (
            f"the GIL's hand-offs between threads{rate}, whose wake-ups and waits the law "
            "leaves out"
        )
    busy = cell.busy_cpus
    if busy >= CPUS_BUSY * min(cell.workers, cpus) and cell.workers >= cpus:
        return f"the CPUs: {busy:.2f} of {cpus} were busy"
    return (
        f"something other than the GIL: {busy:.2f} busy CPUs for {cell.workers} threads "
        "(a lock, I/O, or memory bandwidth)"
    )


# ------------------------------------------------------------- in words


def _several_builds(results: Sequence[Any]) -> bool:
    """Whether the results come from more than one build: the law is stated
    for one build only (each has its own GIL)."""
    return len({build_label(r.context) for r in results}) > 1


def laws(results: Sequence[Any], cores: int | None = None) -> dict[str, dict[str, Any]]:
    """The scaling law of each kernel whose GIL was read in a threads cell
    (:func:`gilfree.scaling_law.law_for`), by kernel name; one build only."""
    if _several_builds(results):
        return {}
    out = {}
    for name in dict.fromkeys(r.kernel for r in results):
        law = law_for([r for r in results if r.kernel == name], cores)
        if law is not None:
            out[name] = law
    return out


def law_lines(
    results: Sequence[Any], cores: int | None = None, found: dict[str, Any] | None = None
) -> list[str]:
    """The law in words, per kernel: the knee, the prediction on ``cores``
    CPUs, and each measured threads point against it (flagged, with the
    reason, where it misses by more than 20%). ``found``: :func:`laws` of
    these results, where the caller has them already."""
    if _several_builds(results):
        return []
    found = laws(results, cores) if found is None else found
    lines: list[str] = []
    for name in dict.fromkeys(r.kernel for r in results):
        if name in found:
            lines.extend(_stated(name, found[name]))
        elif (why := _unstated(name, results)) is not None:
            lines.append(why)
    return lines


def _stated(name: str, law: dict[str, Any]) -> list[str]:
    """One kernel's law in words, then its measured points against it."""
    knee = law["knee"]
    where = (
        "no number of threads is held back by the GIL"
        if math.isinf(knee)
        else f"past about {knee:.1f} threads, more threads do not help"
    )
    curve = ", ".join(f"{p['predicted']:.2f}x at {p['workers']}" for p in law["prediction"])
    how = "its GIL-free part waits" if law["free"] == "wait" else f"on {law['cores']} CPUs"
    cost = law.get("handoff")
    if cost is None:
        with_handoffs = "hand-offs left out"
    else:
        with_handoffs = (
            f"hand-offs in: {cost['seconds'] * 1e6:.1f} us each, "
            f"{cost['rate']:,.0f} per second of work, read from {cost['workers']} threads"
        )
    lines = [
        f"{name}: the GIL's law: held {law['held']:.0%} of its time, so {where}; "
        f"predicted ({how}, {with_handoffs}): {curve}"
    ]
    for p in law["measured"]:
        said = (
            f"  {p['workers']} threads: measured {p['measured']:.2f}x, predicted "
            f"{p['predicted']:.2f}x ({p['off']:+.0%})"
        )
        if p.get("sets_cost"):
            said += " by the GIL's queue alone (this run sets the hand-off cost)"
        if p["flag"]:
            said += f": the law does not hold here; {p['flag']}"
        lines.append(said)
    return lines
