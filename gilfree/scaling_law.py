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
- **Hand-offs are left out.** Each change of the GIL's holder costs a
  wake-up, and where held sections are short (tens of microseconds) those
  costs, and the convoys they start, take threads well below this curve.
  The prediction does not model them: compare it with a measured run
  (``gilfree sweep``) before trusting it there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_WORKERS", "MISS", "Row", "knee", "law_for", "scaling"]

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "bound": self.bound,
            "predicted": self.predicted,
        }


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
    limit = cores if free == "compute" else None
    if sections == "fixed":
        most = knee(f) if limit is None else min(knee(f), limit)
        return [
            Row(workers=n, bound=float(min(n, knee(f))), predicted=float(min(n, most)))
            for n in counts
        ]
    curve = _mva(f, max(counts), limit)
    return [Row(workers=n, bound=float(min(n, knee(f))), predicted=curve[n - 1]) for n in counts]


def _mva(f: float, most: int, cores: int | None) -> list[float]:
    """Throughput at 1..most threads (one thread alone: 1), by exact mean
    value analysis of the GIL (one server, first come first served, demand
    ``f``) and the GIL-free part (demand ``1 - f``): a delay, or ``cores``
    CPUs as a load-dependent station (``j`` threads on it run at
    ``min(j, cores)`` times one's speed), whose queue-length distribution the
    recursion carries."""
    rest = 1.0 - f
    q_gil = 0.0
    # p[j]: the chance that j threads are at the CPUs (with one fewer thread).
    p = [1.0]
    out = []
    for n in range(1, most + 1):
        r_gil = f * (1.0 + q_gil)
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
        # (rounding can carry x a hair past 1/f, which the GIL never allows)
        out.append(min(x, float(n), knee(f), float(cores) if cores else math.inf))
    return out


#: A prediction that misses its measurement by more than this is flagged.
MISS = 0.20
#: Serial runs that kept a CPU busy less than this share of their time
#: spend their GIL-free part waiting: the law takes ``free="wait"``.
WAITING_BELOW = 0.5
#: GIL hand-offs a second from which they are named as the likely cost.
MANY_HANDOFFS = 1000.0


def law_for(cells: Iterable[Any], cores: int | None = None) -> dict[str, Any] | None:
    """The law for one kernel's threads cells (:class:`~gilfree.results.Result`),
    from the held share of its largest threads cell, against every measured
    threads point; None where the GIL's held share was not read (no GIL, or
    a build whose GIL cannot be read).

    The GIL-free part is taken to wait when the serial run kept a CPU busy
    less than :data:`WAITING_BELOW` of its time, else to compute on ``cores``
    CPUs (default: the CPUs this run had). A point the prediction misses by
    more than :data:`MISS` is flagged, with the reason the readings point to.
    """
    threads = sorted(
        (c for c in cells if c.ok and c.backend == "threads" and c.context.gil_enabled),
        key=lambda c: c.workers,
    )
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
    points = []
    for c in threads:
        if math.isnan(c.speedup) or c.workers < 2:
            continue
        row = scaling(held, [c.workers], cores=None if waits else here)[0]
        off = c.speedup / row.predicted - 1
        points.append(
            {
                "workers": c.workers,
                "measured": c.speedup,
                "predicted": row.predicted,
                "bound": row.bound,
                "off": off,
                "flag": _why_missed(c, off, here) if abs(off) > MISS else None,
            }
        )
    return {
        "held": held,
        "knee": knee(held),
        "free": free,
        "cores": stated,
        "prediction": [r.to_dict() for r in scaling(held, counts, cores=None if waits else stated)],
        "measured": points,
    }


def _why_missed(cell: Any, off: float, cpus: int) -> str:
    """What the readings of a cell point to when the law misses it."""
    if off > 0:
        return (
            "above the curve: its held sections queue less than the model's (sections "
            "of one length do)"
        )
    handoffs = cell.handoffs_per_s
    rate = "" if handoffs is None else f": {handoffs:,.0f} a second"
    if (handoffs is not None and handoffs >= MANY_HANDOFFS) or (cell.gil_held or 0) >= 0.5:
        return (
            f"the GIL's hand-offs between threads{rate}, whose wake-ups and waits the law "
            "leaves out"
        )
    busy = cell.busy_cpus
    if busy >= 0.9 * min(cell.workers, cpus) and cell.workers >= cpus:
        return f"the CPUs: {busy:.2f} of {cpus} were busy"
    return (
        f"something other than the GIL: {busy:.2f} busy CPUs for {cell.workers} threads "
        "(a lock, I/O, or memory bandwidth)"
    )
