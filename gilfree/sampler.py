"""The GIL's held share, read from the interpreter's own GIL state.

A native thread (:mod:`gilfree._gilstate`), which holds no Python thread state
and never asks for the GIL, reads whether the GIL is held at exponentially
distributed random instants (mean ``interval``, 50 us by default). The share
of samples that found it held estimates the share of *time* it was held,
whatever the lengths of the held sections: a 30 us section is seen in
proportion to its length, where a probe that times its own wait for the GIL
(:class:`gilfree.GILMeter`) waits no longer than the section it meets and is
almost blind to it. The interval is a Wilson 95% interval on the samples
(binomial: samples closer together than the held sections are correlated, so
it is a floor on the uncertainty of one run, not a promise).

Beside the share, the GIL's own switch counter, read when sampling starts and
stops, gives its hand-offs between threads per second, and each held sample
records the thread that held it.

What is read, build by build:

- CPython 3.10, 3.11: ``_PyRuntime.ceval.gil``, the process's one GIL;
- CPython 3.12, 3.13: the asking interpreter's ``ceval.gil`` (a subinterpreter
  with its own GIL is read on its own);
- free-threaded 3.13t run with ``PYTHON_GIL=1``: the same state; with the GIL
  off the reading says "no GIL" (``held`` is None);
- a build whose GIL cannot be read (the compiled reader is missing): the
  wait-based :class:`~gilfree.GILMeter` stands in, and the reading says so
  (``source``).

>>> from gilfree import GILSampler, countdown
>>> with GILSampler() as s:
...     _ = countdown(10**8, kernel="cython-gil")   # holds the GIL throughout
>>> s.reading().held > 0.9
True
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from gilfree._startstop import StartStop
from gilfree.meter import GILMeter, gil_enabled

__all__ = [
    "DEFAULT_SAMPLE_INTERVAL",
    "MIN_SAMPLES",
    "GILSampler",
    "HandoffCounter",
    "Handoffs",
    "SamplerReading",
    "armed",
    "wilson",
    "window_start",
    "window_stop",
]

#: Mean seconds between two samples. Each sample wakes the sampler thread:
#: about 20,000 wake-ups a second, each a few microseconds of one CPU.
DEFAULT_SAMPLE_INTERVAL = 50e-6

#: How the reading was taken (:attr:`SamplerReading.source`).
SOURCE_STATE = "gil state"
#: Fewer samples than this decide no verdict: the engine samples a short
#: serial run again until its readings hold twice as many (or
#: :data:`SAMPLE_MORE_S` seconds of runs).
MIN_SAMPLES = 100
#: The most seconds of extra sampled runs a short serial run gets.
SAMPLE_MORE_S = 0.2
SOURCE_NONE = "no GIL"
SOURCE_METER = "wait meter"


def _reader() -> tuple[ModuleType | None, str]:
    """The compiled reader, or None and why it cannot be had."""
    try:
        from gilfree import _gilstate
    except ImportError as exc:
        return None, (
            f"this build's GIL state cannot be read ({exc}); reinstall gilfree from source "
            "with a C compiler for CPython's internal headers"
        )
    return _gilstate, ""


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial share ``hits / total`` (95%
    by default); (0, 1) with no trials."""
    if total <= 0:
        return (0.0, 1.0)
    p = hits / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    # At the ends the interval reaches the end exactly (rounding could leave
    # 1.0 just outside it).
    lo = 0.0 if hits == 0 else max(0.0, min(p, centre - half))
    hi = 1.0 if hits == total else min(1.0, max(p, centre + half))
    return (lo, hi)


@dataclass(frozen=True)
class SamplerReading:
    """What a :class:`GILSampler` read.

    ``held`` is the share of samples that found the GIL held (0 to 1), None
    where there is no GIL; ``held_ci`` its 95% interval; ``samples`` how many
    were taken over ``seconds``; ``handoffs`` and ``handoffs_per_s`` the
    GIL's changes of holder over that time (None where the build does not
    count them, or the reading is not from the GIL state); ``holders`` maps a
    thread ident (0: a thread that had ended when sampling stopped) to the
    held samples it held. ``source`` says how it was read: ``"gil state"``,
    ``"no GIL"`` or ``"wait meter"`` (with ``note`` saying why).
    """

    held: float | None
    held_ci: tuple[float, float]
    samples: int
    seconds: float
    handoffs: int | None
    handoffs_per_s: float | None
    holders: dict[int, int] = field(default_factory=dict)
    source: str = SOURCE_STATE
    note: str = ""

    def short(self) -> str:
        """``49%``, ``no GIL`` or ``-`` (no samples): for tables."""
        if self.held is None:
            return "no GIL"
        return "-" if self.samples == 0 else f"{self.held:.0%}"

    def __str__(self) -> str:
        if self.held is None:
            return "no GIL (free-threaded build, GIL disabled): nothing holds it"
        lo, hi = self.held_ci
        text = (
            f"GIL held {self.held:.1%} [{lo:.1%}, {hi:.1%}] of the time "
            f"({self.samples:,} samples over {self.seconds:.3f} s"
        )
        if self.handoffs_per_s is not None:
            text += f", {self.handoffs_per_s:,.0f} hand-offs/s"
        text += ")"
        if self.source != SOURCE_STATE:
            text += f" [{self.source}: {self.note}]"
        return text

    @classmethod
    def pooled(cls, readings: list[SamplerReading]) -> SamplerReading:
        """Several readings of the same work (one per round) as one: samples,
        held samples, hand-offs and seconds added up."""
        if not readings:
            raise ValueError("no readings to pool")
        if any(r.held is None or r.source != SOURCE_STATE for r in readings):
            return readings[-1]  # no GIL, or the stand-in meter's: nothing to add up
        samples = sum(r.samples for r in readings)
        held = sum(round((r.held or 0.0) * r.samples) for r in readings)
        seconds = sum(r.seconds for r in readings)
        counted = [r.handoffs for r in readings]
        handoffs = None if any(h is None for h in counted) else sum(h or 0 for h in counted)
        holders: dict[int, int] = {}
        for r in readings:
            for ident, count in r.holders.items():
                holders[ident] = holders.get(ident, 0) + count
        return cls(
            held=held / samples if samples else 0.0,
            held_ci=wilson(held, samples),
            samples=samples,
            seconds=seconds,
            handoffs=handoffs,
            handoffs_per_s=None if handoffs is None or seconds <= 0 else handoffs / seconds,
            holders=holders,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "held_ci": list(self.held_ci),
            "samples": self.samples,
            "seconds": self.seconds,
            "handoffs": self.handoffs,
            "handoffs_per_s": self.handoffs_per_s,
            "holders": dict(self.holders),
            "source": self.source,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplerReading:
        lo, hi = data.get("held_ci") or (0.0, 1.0)
        held = data.get("held")
        per_s = data.get("handoffs_per_s")
        return cls(
            held=None if held is None else float(held),
            held_ci=(float(lo), float(hi)),
            samples=int(data.get("samples", 0)),
            seconds=float(data.get("seconds", 0.0)),
            handoffs=None if data.get("handoffs") is None else int(data["handoffs"]),
            handoffs_per_s=None if per_s is None else float(per_s),
            holders={int(k): int(v) for k, v in (data.get("holders") or {}).items()},
            source=str(data.get("source", SOURCE_STATE)),
            note=str(data.get("note", "")),
        )


def _check_interval(interval: object) -> float:
    if not isinstance(interval, (int, float)) or isinstance(interval, bool):
        raise TypeError(f"interval must be a number of seconds, not {type(interval).__name__}")
    if not 1e-6 <= interval <= 1.0:  # NaN fails this too
        raise ValueError(
            f"interval must be between 1e-06 and 1 second, got {interval!r}; "
            f"the default is {DEFAULT_SAMPLE_INTERVAL}"
        )
    return float(interval)


class GILSampler(StartStop):
    """Sample the GIL's state while a block of code runs.

    ``with GILSampler() as s: work()``, then ``s.reading()``; or
    :meth:`start` and :meth:`stop` (which returns the reading). Each sampler
    runs once.

    Parameters
    ----------
    interval
        Mean seconds between two samples (exponentially distributed, so that
        the instants cannot fall into step with the work). Default 50 us.
    seed
        Seeds the instants (default: from the OS), for a reproducible series.
    apart
        Keep the sampler's thread off the CPU of the thread that starts it,
        for work that runs in that thread (where the OS lets a thread choose
        its CPUs and there are two or more). A sampler that shares a CPU
        with busy work wakes late, after the work has let the CPU go, so it
        reads the work's waits and misses its held time: the ``io`` kernel
        at 0.2 in 1 ms sections read 0.04 to 0.08 so, and 0.19 to 0.21
        apart. While it samples, the starting thread, and any thread it
        starts, run on the other CPUs (one fewer), and get their CPUs back
        at :meth:`stop`. gilfree samples one worker alone this way. Default
        False: threads the work starts keep every CPU.
    """

    def __init__(
        self,
        interval: float = DEFAULT_SAMPLE_INTERVAL,
        seed: int | None = None,
        apart: bool = False,
    ) -> None:
        self.interval = _check_interval(interval)
        self.apart = bool(apart)
        self._pinned: tuple[int, set[int]] | None = None  # (thread, its CPUs before)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        self._seed = (seed if seed is not None else int.from_bytes(os.urandom(8), "little")) & (
            2**64 - 1
        )
        self._handle: Any = None
        self._meter: GILMeter | None = None
        self._reading: SamplerReading | None = None
        self._started = False
        self._note = ""
        self._no_gil: SamplerReading | None = None

    @property
    def started(self) -> bool:
        return self._started

    @property
    def running(self) -> bool:
        return self._started and self._reading is None

    def start(self) -> GILSampler:
        """Start sampling (once per sampler); returns the sampler."""
        if self._started:
            raise RuntimeError("a GILSampler can be started once; create a new one")
        self._started = True
        reader, why = _reader()
        if not gil_enabled() or (reader is not None and not reader.enabled()):
            self._no_gil = SamplerReading(
                held=None,
                held_ci=(0.0, 0.0),
                samples=0,
                seconds=0.0,
                handoffs=None,
                handoffs_per_s=None,
                source=SOURCE_NONE,
                note="free-threaded build with the GIL disabled",
            )
        elif reader is not None:
            cpu = self._pin() if self.apart else None
            try:
                self._handle = reader.start(self.interval, self._seed or 1)
            finally:
                if cpu is not None and self._pinned is not None:  # the rest for the work
                    _set_cpus(self._pinned[0], self._pinned[1] - {cpu})
        else:
            self._note = why
            self._meter = GILMeter().start()
        return self

    def stop(self) -> SamplerReading:
        """Stop sampling and return the reading (again on later calls)."""
        if not self._started:
            raise RuntimeError("the GILSampler was never started")
        if self._reading is not None:
            return self._reading
        if self._no_gil is not None:
            self._reading = self._no_gil
            return self._reading
        if self._meter is not None:
            got = self._meter.stop()
            share = got.contention
            self._reading = SamplerReading(
                held=share if share is None or not math.isnan(share) else 0.0,
                held_ci=(0.0, 1.0),
                samples=got.samples,
                seconds=got.probed_s,
                handoffs=None,
                handoffs_per_s=None,
                source=SOURCE_METER,
                note=self._note,
            )
            return self._reading
        from gilfree import _gilstate

        raw = _gilstate.stop(self._handle)
        self._handle = None
        if self._pinned is not None:
            _set_cpus(*self._pinned)
            self._pinned = None
        samples, held = int(raw["samples"]), int(raw["held"])
        seconds = float(raw["seconds"])
        self._reading = SamplerReading(
            held=held / samples if samples else 0.0,
            held_ci=wilson(held, samples),
            samples=samples,
            seconds=seconds,
            handoffs=int(raw["switches"]),
            handoffs_per_s=raw["switches"] / seconds if seconds > 0 else 0.0,
            holders={int(k): int(v) for k, v in raw["holders"].items()},
        )
        return self._reading

    def _pin(self) -> int | None:
        """Put this thread on one CPU, so that the sampler's thread, started
        next, inherits it; returns that CPU (None where the OS does not let
        a thread choose, or there is only one)."""
        try:
            tid = threading.get_native_id()
            before = set(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return None
        if len(before) < 2:
            return None
        cpu = max(before)
        if not _set_cpus(tid, {cpu}):
            return None
        self._pinned = (tid, before)
        return cpu

    def reading(self) -> SamplerReading:
        """The reading of a stopped sampler (stop it first, or leave the
        ``with`` block)."""
        if self._reading is None:
            raise RuntimeError("stop the GILSampler (or leave its with block) before reading it")
        return self._reading

    def __repr__(self) -> str:
        if self._reading is not None:
            return f"<GILSampler stopped: {self._reading.short()}>"
        state = "running" if self._started else "not started"
        return f"<GILSampler {state}, mean interval {self.interval * 1e6:g} us>"


# ------------------------------------------------------------------ hand-offs


@dataclass(frozen=True)
class Handoffs:
    """The GIL's changes of holder over ``seconds``, read from CPython's
    switch counter when counting started and stopped: no thread, no samples,
    no cost to the work."""

    handoffs: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.handoffs / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def pooled(cls, counts: list[Handoffs]) -> Handoffs:
        """Several counts (one per round) as one."""
        return cls(sum(c.handoffs for c in counts), sum(c.seconds for c in counts))

    def to_dict(self) -> dict[str, Any]:
        return {"handoffs": self.handoffs, "seconds": self.seconds, "per_s": self.per_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Handoffs:
        return cls(int(data["handoffs"]), float(data["seconds"]))


class HandoffCounter(StartStop):
    """Count the GIL's hand-offs while a block of code runs (``with
    HandoffCounter() as c: ...``, then ``c.reading()``, None where the
    build's GIL cannot be read or there is none).

    A sampler thread that wakes every 50 us takes a CPU from the workers when
    every CPU is busy (``bench/sampler_figures.py`` measures it); the count
    needs no thread: it is read from the GIL's switch counter at the start
    and the end."""

    def __init__(self) -> None:
        self._started = False
        self._start: tuple[int, float] | None = None
        self._reading: Handoffs | None = None
        self._stopped = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def running(self) -> bool:
        return self._started and not self._stopped

    def start(self) -> HandoffCounter:
        if self._started:
            raise RuntimeError("a HandoffCounter can be started once; create a new one")
        self._started = True
        reader, _ = _reader()
        state = reader.state() if reader is not None else None
        if state is not None:
            self._start = (state[1], time.perf_counter())
        return self

    def stop(self) -> Handoffs | None:
        if not self._started:
            raise RuntimeError("the HandoffCounter was never started")
        if not self._stopped:
            self._stopped = True
            reader, _ = _reader()
            state = reader.state() if reader is not None else None
            if self._start is not None and state is not None:
                switches, t0 = self._start
                self._reading = Handoffs(state[1] - switches, time.perf_counter() - t0)
        return self._reading

    def reading(self) -> Handoffs | None:
        if not self._stopped:
            raise RuntimeError("stop the HandoffCounter before reading it")
        return self._reading


# ------------------------------------------------------- a run's exact window

#: The sampler armed for the next run (at most one: the engine measures one
#: run at a time). A backend starts it where its workers start counting and
#: stops it where the last one ends, so that setting up and tearing down the
#: run (thread starts, a watch) does not count as the work's holding.
_armed: list[GILSampler | HandoffCounter] = []

#: Either reader, armed for one run.
Armed = TypeVar("Armed", GILSampler, HandoffCounter)


def _set_cpus(thread: int, cpus: set[int]) -> bool:
    """The CPUs ``thread`` (a native thread id) may run on; False where the
    OS refused (the thread has ended, or a container forbids it)."""
    try:
        os.sched_setaffinity(thread, cpus)
    except (AttributeError, OSError):
        return False
    return True


@contextlib.contextmanager
def armed(sampler: Armed) -> Iterator[Armed]:
    """Arm ``sampler`` for the run made inside the block: the backends that
    know where their workers' work starts and ends (serial, threads) start
    and stop it there through :func:`window_start` and :func:`window_stop`.
    It is stopped at the end of the block whatever happened; a sampler never
    started means the backend sets no window (no reading)."""
    _armed.append(sampler)
    try:
        yield sampler
    finally:
        _armed.remove(sampler)
        if sampler.running:
            sampler.stop()


def window_start() -> GILSampler | HandoffCounter | None:
    """Start the armed reader, if any (called by a backend as its workers are
    released to count), and return it for :func:`window_stop`."""
    if _armed and not _armed[-1].started:
        return _armed[-1].start()
    return None


def window_stop(reader: GILSampler | HandoffCounter | None) -> None:
    """Stop ``reader`` (what :func:`window_start` returned), if it runs: the
    one started for this run, even from a thread that ends after the run was
    given up on, when another run's reader may be armed."""
    if reader is not None and reader.running:
        reader.stop()
