"""The GIL contention meter: its readings on known workloads, its API, and its
"no GIL" answer on a free-threaded build.

The readings are properties of the GIL, not of the machine's speed, so they
are asserted, with the wide margins the issue gives (high > 0.5, low < 0.1).
"""

from __future__ import annotations

import math
import threading
import time

import pytest

import gilfree
from gilfree import GILMeter, GILReading, countdown
from gilfree import meter as meter_module
from gilfree.backends import BACKENDS
from gilfree.measure import run

# Work of roughly 0.3 s per thread on this machine, whatever the kernel: long
# enough for dozens of samples at the default 2 ms interval.
WORK = {"python": 6_000_000, "cython-object": 4_000_000, "cython-gil": 10**9, "cython-nogil": 10**9}


def two_threads(kernel: str) -> GILReading:
    threads = [threading.Thread(target=countdown, args=(WORK[kernel], kernel)) for _ in range(2)]
    with GILMeter() as meter:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return meter.reading()


@pytest.mark.needs_gil
@pytest.mark.parametrize("kernel", ["python", "cython-object", "cython-gil"])
def test_two_gil_holding_threads_read_high(kernel: str) -> None:
    reading = two_threads(kernel)
    assert reading.samples >= 1
    assert reading.contention is not None
    assert reading.contention > 0.5, reading  # in practice about 0.9 and up


@pytest.mark.needs_gil
def test_two_nogil_threads_read_low() -> None:
    reading = two_threads("cython-nogil")
    assert reading.samples >= 20  # the GIL is free: the probe gets it at once, every time
    assert reading.contention is not None
    assert reading.contention < 0.3, reading  # a probe may also wait for a busy CPU


@pytest.mark.needs_gil
def test_an_idle_program_reads_near_zero() -> None:
    with GILMeter() as meter:
        time.sleep(0.3)
    reading = meter.reading()
    assert reading.samples >= 20
    assert reading.contention is not None
    assert reading.contention < 0.05, reading
    assert reading.max_wait_s < 0.05


@pytest.mark.needs_gil
def test_readings_are_cumulative_and_readable_while_running() -> None:
    meter = GILMeter(interval=0.0005).start()
    try:
        time.sleep(0.05)
        first = meter.reading()
        countdown(WORK["python"], "python")  # holds the GIL: the probe waits
        second = meter.reading()
    finally:
        final = meter.stop()
    assert 0 < first.samples <= second.samples <= final.samples
    assert first.probed_s <= second.probed_s <= final.probed_s
    assert 0 <= second.waited_s <= second.probed_s
    window = second.since(first)  # no reset needed: differences of cumulative counters
    assert window.samples == second.samples - first.samples
    assert math.isclose(window.waited_s, second.waited_s - first.waited_s)
    assert window.contention is not None
    assert first.contention is not None
    assert window.contention > first.contention  # the busy window waited more


def test_start_stop_form_and_repr() -> None:
    meter = GILMeter()
    assert "not started" in repr(meter)
    assert meter.start() is meter
    assert meter.running
    assert "running" in repr(meter)
    time.sleep(0.01)
    reading = meter.stop()
    assert not meter.running
    assert "stopped" in repr(meter)
    assert meter.stop() == reading  # stop is idempotent; the probe has ended
    assert not any(t.name == "gilfree-gil-meter" for t in threading.enumerate())


def test_a_meter_starts_once() -> None:
    meter = GILMeter().start()
    meter.stop()
    with pytest.raises(RuntimeError, match="started once"):
        meter.start()
    with pytest.raises(RuntimeError, match="never started"):
        GILMeter().stop()


def test_the_probe_thread_ends_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), GILMeter():
        1 / 0  # noqa: B018
    assert not any(t.name == "gilfree-gil-meter" for t in threading.enumerate())


@pytest.mark.parametrize(
    ("interval", "error", "match"),
    [
        (0, ValueError, "between 1e-05 and 1 second"),
        (-1, ValueError, "between"),
        (5.0, ValueError, "between"),
        ("1ms", TypeError, "number of seconds"),
        (True, TypeError, "number of seconds"),
    ],
)
def test_bad_intervals_are_refused(interval: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        GILMeter(interval)  # type: ignore[arg-type]


@pytest.mark.needs_gil
def test_no_samples_reads_nan_not_zero() -> None:
    reading = GILMeter().reading()  # never started
    assert reading.samples == 0
    assert reading.contention is not None and math.isnan(reading.contention)
    assert reading.short() == "-"
    assert "no samples" in str(reading)


def test_without_a_gil_the_meter_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # A free-threaded build with the GIL disabled, simulated: sys._is_gil_enabled()
    # answers False there. The meter must not report a number.
    monkeypatch.setattr(meter_module.sys, "_is_gil_enabled", lambda: False, raising=False)
    assert not meter_module.gil_enabled()
    with GILMeter() as meter:
        countdown(10**6, "python")
    reading = meter.reading()
    assert reading.gil is False
    assert reading.contention is None
    assert reading.samples == 0  # no probe thread was started
    assert reading.short() == "no GIL"
    assert "no GIL" in str(reading)


@pytest.mark.needs_gil
def test_gil_enabled_on_this_build() -> None:
    # Every interpreter this suite runs on (3.10-3.13 with the GIL) has one.
    assert meter_module.gil_enabled()


def test_pooled_readings_are_time_weighted() -> None:
    a = GILReading(True, 10, 0.9, 1.0, 0.2, 0.001)
    b = GILReading(True, 30, 0.0, 3.0, 0.0, 0.001)
    pooled = GILReading.pooled([a, b])
    assert pooled.samples == 40
    assert pooled.contention == pytest.approx(0.9 / 4.0)
    assert pooled.max_wait_s == 0.2
    with pytest.raises(ValueError, match="no readings"):
        GILReading.pooled([])


@pytest.mark.needs_gil
def test_threads_cells_carry_their_contention() -> None:
    held = run("python", "threads", workers=2, n=WORK["python"], repeats=1, precision=None)
    free = run(
        "cython-nogil", "threads", workers=2, n=WORK["cython-nogil"], repeats=1, precision=None
    )
    assert held.contention is not None and held.contention > 0.5
    assert free.contention is not None and free.contention < 0.3
    assert held.gil is not None and held.gil.samples > 0
    # Metered in the warm-up only: timed runs never carry the probe.
    assert all(r.gil is None for r in held.runs)
    assert held.to_dict()["derived"]["contention"] == held.contention


@pytest.mark.needs_gil
def test_metered_without_warmups_takes_an_extra_untimed_run() -> None:
    r = run("python", "threads", workers=2, n=WORK["python"], repeats=1, warmups=0, precision=None)
    assert r.warmups == ()
    assert r.contention is not None and r.contention > 0.5


def test_process_and_serial_cells_are_not_metered() -> None:
    # Each worker process has its own GIL, untouched by the others: nothing to read.
    for backend in ("processes", "serial"):
        r = run("python", backend, workers=2, n=100_000, repeats=1, precision=None)
        assert r.gil is None and r.contention is None


@pytest.mark.needs_gil
def test_thread_pool_executor_cells_are_metered() -> None:
    import concurrent.futures

    # The point is that an executor's threads cell carries a reading at all;
    # what the meter reads on GIL-holding threads is
    # test_two_gil_holding_threads_read_high's (one short run under a CPU hog
    # read below 0.5 here).
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        r = run("python", pool, workers=2, n=WORK["python"], repeats=1, precision=None)
    assert r.gil is not None and r.gil.samples >= 1
    assert r.contention is not None and 0 <= r.contention <= 1


@pytest.mark.skipif(
    BACKENDS["interpreters"].availability() is not None, reason="needs CPython 3.12+"
)
@pytest.mark.needs_gil
def test_interpreter_cells_pool_one_meter_per_interpreter() -> None:
    # Each subinterpreter has its own GIL and its own meter. A nogil loop leaves
    # each GIL free; a Python loop keeps its interpreter's GIL busy (the probe
    # in that interpreter waits), though the workers never wait on each other.
    # One busy thread per GIL reads about 0.7 at the 2 ms default interval.
    free = run(
        "cython-nogil", "interpreters", workers=2, n=WORK["cython-nogil"], repeats=1, precision=None
    )
    busy = run("python", "interpreters", workers=2, n=WORK["python"], repeats=1, precision=None)
    assert free.gil is not None and busy.gil is not None
    assert free.gil.samples >= 20 and busy.gil.samples >= 2
    assert free.contention is not None and free.contention < 0.3
    assert busy.contention is not None and busy.contention > 0.3


def test_meter_is_public() -> None:
    assert gilfree.GILMeter is GILMeter
    assert "GILMeter" in gilfree.__all__ and "GILReading" in gilfree.__all__
