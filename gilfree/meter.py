"""A GIL contention meter: how long a thread that asks for the GIL has to wait.

Timings say that threads did not help; the meter says why. A probe thread
sleeps ``interval`` seconds without the GIL, then takes it back and records
how long taking it took. The reading is the fraction of the probe's time spent
waiting, cumulative and time-weighted (total wait / total probe time), with the
number of samples behind it:

- near 0: the GIL is free most of the time (idle, or the busy threads release
  it, as ``cython-nogil`` does); more threads can run Python in parallel;
- high (two or more threads that hold the GIL read 0.8 and up): some thread
  holds the GIL nearly all the time, and any other Python thread of the
  interpreter waits for it. One busy pure-Python thread reads high too
  (about 0.7 at the default interval): the probe waits up to a switch
  interval each time it asks. That is the GIL's load, what a new thread
  would meet.

The reading depends on the interval: the shorter it is, the closer the
reading comes to the share of time the GIL is busy, and the more hand-overs
the probe forces on the measured threads.

The GIL measured is the one of the interpreter that starts the meter (each
subinterpreter with its own GIL needs its own meter). On a free-threaded build
with the GIL disabled there is nothing to measure: the reading says "no GIL".

>>> from gilfree import GILMeter, countdown
>>> with GILMeter() as meter:
...     _ = countdown(10**8)  # cython-nogil: the GIL stays free
>>> meter.reading().contention < 0.5
True
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from gilfree._countdown import gil_probe
from gilfree._startstop import StartStop

__all__ = ["DEFAULT_INTERVAL", "FREE_BELOW", "GILMeter", "GILReading", "gil_enabled"]

#: Seconds between two probes. Two threads that hold the GIL make each probe
#: wait at least a switch interval S (5 ms), so they read at least
#: S / (interval + S): 0.71 at 2 ms, but only 0.5 at 5 ms, right on the line
#: between "contended" and not. Each wake-up of the probe costs the measured
#: work about 7-19 us when every CPU is busy (bench/test_bench_meter.py): about
#: 0.3-0.9% at 2 ms, and up to 2% at 1 ms.
DEFAULT_INTERVAL = 0.002


#: A reading below this means the GIL was free: whatever ran let other Python
#: threads in. gilfree.testing calls such a function "releases"; a verdict on
#: threads that fell short anyway says "limited elsewhere".
FREE_BELOW = 0.2


def gil_enabled() -> bool:
    """Whether this interpreter has a GIL right now (False only on a
    free-threaded build running with the GIL disabled)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


@dataclass(frozen=True)
class GILReading:
    """A meter's cumulative reading.

    ``contention`` is ``waited_s / probed_s``: the fraction of the probe's time
    spent waiting for the GIL. It is ``None`` when there is no GIL to measure
    (``gil`` is False) and NaN before the first sample.
    """

    gil: bool
    samples: int
    waited_s: float
    probed_s: float
    max_wait_s: float
    interval_s: float

    @property
    def contention(self) -> float | None:
        if not self.gil:
            return None
        return self.waited_s / self.probed_s if self.probed_s > 0 else float("nan")

    def since(self, earlier: GILReading) -> GILReading:
        """The reading over the time between ``earlier`` and this one (both from
        the same meter): cumulative readings never need a reset."""
        return GILReading(
            gil=self.gil,
            samples=self.samples - earlier.samples,
            waited_s=self.waited_s - earlier.waited_s,
            probed_s=self.probed_s - earlier.probed_s,
            max_wait_s=self.max_wait_s,  # the largest over the whole life
            interval_s=self.interval_s,
        )

    @classmethod
    def pooled(cls, readings: Iterable[GILReading]) -> GILReading:
        """Several meters (one per subinterpreter) as one time-weighted reading."""
        items = list(readings)
        if not items:
            raise ValueError("no readings to pool")
        return cls(
            gil=all(r.gil for r in items),
            samples=sum(r.samples for r in items),
            waited_s=sum(r.waited_s for r in items),
            probed_s=sum(r.probed_s for r in items),
            max_wait_s=max(r.max_wait_s for r in items),
            interval_s=items[0].interval_s,
        )

    def short(self) -> str:
        """``93%``, ``no GIL`` or ``-`` (no samples): for tables."""
        value = self.contention
        if value is None:
            return "no GIL"
        return "-" if math.isnan(value) else f"{value:.0%}"

    def __str__(self) -> str:
        value = self.contention
        if value is None:
            return "no GIL (free-threaded build, GIL disabled): nothing to wait for"
        if math.isnan(value):
            return "GIL contention: no samples yet"
        return (
            f"GIL contention {value:.1%} ({self.samples} samples over {self.probed_s:.3f} s, "
            f"longest wait {self.max_wait_s * 1000:.1f} ms)"
        )


class GILMeter(StartStop):
    """Measure GIL contention while a block of code runs.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    :meth:`reading` may be called at any moment, from any thread, while it
    runs or after; :meth:`stop` returns the final reading.

    Parameters
    ----------
    interval
        Seconds the probe sleeps between two requests for the GIL
        (default 2 ms). Shorter: more samples and a reading closer to the
        share of time the GIL is busy, but more hand-overs forced on the
        measured threads and more wake-ups taking a CPU from them.
    """

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        if not isinstance(interval, (int, float)) or isinstance(interval, bool):
            raise TypeError(f"interval must be a number of seconds, not {type(interval).__name__}")
        if not 1e-5 <= interval <= 1.0:
            raise ValueError(
                f"interval must be between 1e-05 and 1 second, got {interval!r}; "
                f"the default is {DEFAULT_INTERVAL}"
            )
        self.interval = float(interval)
        # [stop, samples, waited_ns, probed_ns, max_wait_ns], see gil_probe.
        self._state = [False, 0, 0, 0, 0]
        self._thread: threading.Thread | None = None
        self._gil = gil_enabled()
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopped

    def start(self) -> GILMeter:
        """Start probing (once per meter); returns the meter."""
        if self._thread is not None or self._stopped:
            raise RuntimeError("a GILMeter can be started once; create a new one")
        args = (round(self.interval * 1e9), self._state)
        try:
            thread = threading.Thread(
                target=gil_probe, args=args, name="gilfree-gil-meter", daemon=True
            )
        except RuntimeError:  # a subinterpreter refuses daemon threads; stop() joins it
            thread = threading.Thread(target=gil_probe, args=args, name="gilfree-gil-meter")
        if self._gil:  # with no GIL there is nothing to probe
            thread.start()
        self._thread = thread
        return self

    def stop(self) -> GILReading:
        """Stop probing, wait for the probe thread, return the final reading."""
        if self._thread is None:
            raise RuntimeError("the GILMeter was never started")
        if not self._stopped:
            self._state[0] = True  # the probe returns after its current sample
            if self._thread.ident is not None:
                self._thread.join()
            self._stopped = True
        return self.reading()

    def reading(self) -> GILReading:
        """The cumulative reading so far (consistent: the probe updates its
        counters only while holding the GIL, which the caller holds too)."""
        samples, waited, probed, longest = self._state[1:5]  # one copy: a consistent set
        return GILReading(
            gil=self._gil,
            samples=samples,
            waited_s=waited / 1e9,
            probed_s=probed / 1e9,
            max_wait_s=longest / 1e9,
            interval_s=self.interval,
        )

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped" if self._stopped else "not started"
        return f"<GILMeter {state}, interval {self.interval * 1000:g} ms: {self.reading().short()}>"
