"""A fake clock and scripted backends: the engine's rules fed exact timings.

The engine (:func:`gilfree.measure.measure`) decides how many rounds a cell
gets, which rounds it leaves out, when the time budget is spent and what a
failure does to the other cells. Those rules are checked here without running
anything: each backend's run of a kernel takes the next step of its script on
a clock the test owns, so the outcome is the same on a quiet host and on a
loaded one, and a test takes milliseconds.

    clock, engine = scripted(monkeypatch, serial={"python": [1.0] * 9})
    cell = engine("threads", {"python": [(0.5, 2.0)] * 9})
    (result,) = sweep(["python"], [cell], [2], n=1000, warmups=0, capacity=False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

import gilfree._engine
import gilfree.measure
from gilfree._worker import WorkerStamp
from gilfree.backends import Backend, RunTimeout, RunTiming, WorkerError
from gilfree.kernels import Kernel

#: One step of a script: seconds, or (seconds, CPUs busy during them), or an
#: exception to raise instead of running.
Step = float | tuple[float, float] | BaseException


@dataclass
class FakeClock:
    """``time.monotonic`` and ``time.perf_counter`` of the engine: only runs move it."""

    now: float = 1000.0
    #: Every run, in order: (backend name, kernel name, seconds).
    log: list[tuple[str, str, float]] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    perf_counter = monotonic


class Scripted(Backend):
    """Runs nothing: each run of a kernel takes the next step of its script.

    A run whose step is longer than its deadline allows moves the clock to
    the deadline and raises :class:`RunTimeout`, as a real backend does."""

    def __init__(self, name: str, clock: FakeClock, script: dict[str, Iterable[Step]]) -> None:
        super().__init__()
        self.name = name
        self.clock = clock
        self.script = {kernel: iter(steps) for kernel, steps in script.items()}

    def _run(
        self, kernel: Kernel, chunks: list[int], deadline: float | None, **options: Any
    ) -> RunTiming:
        try:
            step = next(self.script[kernel.name])
        except (KeyError, StopIteration):
            raise AssertionError(f"{self.name} has no step left for {kernel.name}") from None
        if isinstance(step, BaseException):
            raise step
        seconds, busy = step if isinstance(step, tuple) else (step, float(len(chunks)))
        if deadline is not None and self.clock.now + seconds > deadline:
            self.clock.now = deadline
            raise RunTimeout(f"{kernel.name} on {self.name}: still running at its deadline")
        start = round(self.clock.now * 1e9)
        self.clock.now += seconds
        self.clock.log.append((self.name, kernel.name, seconds))
        end = round(self.clock.now * 1e9)
        cpu = busy * seconds / len(chunks)
        return RunTiming(
            0.0, seconds, seconds, tuple(WorkerStamp(start, end, cpu, n) for n in chunks)
        )


def scripted(
    monkeypatch: pytest.MonkeyPatch, serial: dict[str, Iterable[Step]]
) -> tuple[FakeClock, Callable[[str, dict[str, Iterable[Step]]], Scripted]]:
    """Give the engine a fake clock and a scripted serial baseline; returns
    the clock and a maker of scripted backends on that clock."""
    clock = FakeClock()
    monkeypatch.setattr(gilfree.measure, "time", clock)
    monkeypatch.setattr(gilfree._engine, "time", clock)
    monkeypatch.setattr(gilfree._engine, "_SERIAL", Scripted("serial", clock, serial))

    def backend(name: str, script: dict[str, Iterable[Step]]) -> Scripted:
        return Scripted(name, clock, script)

    return clock, backend


def dies(worker: int = 1) -> WorkerError:
    """A step whose run fails as a dead worker's does."""
    return WorkerError(f"worker {worker} died (exit code -9)", worker)
