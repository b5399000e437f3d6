"""gilfree.testing: the releases/holds check on known cases, its evidence and
errors, the pytest plugin (markers, fixture), the pytest-benchmark helper and
the IPython magic.

The known cases are functions whose GIL use is certain. The check watches GIL
waits, not CPU speed, so the verdicts hold on any number of cores.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from gilfree import countdown, meter
from gilfree.testing import (
    GILCheckTimeout,
    GILEvidence,
    TooShortToJudge,
    assert_holds_gil,
    assert_releases_gil,
    benchmark_threads,
    check_gil,
    gil_evidence,
    holds_gil,
    releases_gil,
)


def python_loop(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


_A = np.ones(2**22)
_B = np.ones(2**22)
_OUT = np.empty(2**22)
_BLOCK = b"x" * 2**23

# (id, function, args, expected verdict): each call takes 5-40 ms here.
KNOWN: list[tuple[str, Callable[..., Any], tuple[Any, ...], str]] = [
    ("cython-nogil", countdown, (10**8, "cython-nogil"), "releases"),
    ("cython-gil", countdown, (10**8, "cython-gil"), "holds"),
    ("cython-object", countdown, (10**6, "cython-object"), "holds"),
    ("python-kernel", countdown, (10**6, "python"), "holds"),
    ("time.sleep", time.sleep, (0.01,), "releases"),
    ("sha256", hashlib.sha256, (_BLOCK,), "releases"),
    ("numpy-add", np.add, (_A, _B, _OUT), "releases"),
    ("numpy-sort", np.sort, (np.random.default_rng(0).random(2**20),), "releases"),
    ("python-loop", python_loop, (10**6,), "holds"),
]


OPPOSITE = {"holds": "releases", "releases": "holds"}


@pytest.mark.parametrize(
    ("fn", "args", "expected"), [k[1:] for k in KNOWN], ids=[k[0] for k in KNOWN]
)
@pytest.mark.needs_gil
def test_known_cases(fn: Callable[..., Any], args: tuple[Any, ...], expected: str) -> None:
    # A reading runs 50 ms. On a busy shared host the OS can keep the probe
    # thread waiting for a CPU inside that window, which dilutes the reading
    # into "partly": undecided, and measured again (three readings at most).
    # The opposite verdict is never accepted.
    readings = []
    for _ in range(3):
        readings.append(check_gil(fn, args))
        assert readings[-1].verdict != OPPOSITE[expected], str(readings[-1])
        if readings[-1].verdict == expected:
            return
    pytest.fail("never decided: " + "; ".join(map(str, readings)))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fn", "args", "expected"), [k[1:] for k in KNOWN], ids=[k[0] for k in KNOWN]
)
def test_no_false_verdict_in_50_runs(
    fn: Callable[..., Any], args: tuple[Any, ...], expected: str
) -> None:
    # Never the opposite verdict; "partly" (undecided, see test_known_cases)
    # in at most 2 of 50 readings, which a busy host was seen to cause.
    readings = [check_gil(fn, args) for _ in range(50)]
    opposite = [str(e) for e in readings if e.verdict == OPPOSITE[expected]]
    undecided = [str(e) for e in readings if e.verdict == "partly"]
    assert not opposite, opposite
    assert len(undecided) <= 2, undecided


@pytest.mark.needs_gil
def test_bool_and_assert_forms() -> None:
    assert releases_gil(countdown, 10**8)
    assert not releases_gil(countdown, 10**8, kernel="cython-gil")
    assert holds_gil(countdown, 10**8, kernel="cython-gil")
    evidence = assert_releases_gil(time.sleep, 0.01)
    assert isinstance(evidence, GILEvidence)
    assert_holds_gil(python_loop, 10**6)


@pytest.mark.needs_gil
def test_a_failed_assertion_shows_the_evidence() -> None:
    with pytest.raises(AssertionError) as info:
        assert_releases_gil(countdown, 10**8, kernel="cython-gil")
    message = str(info.value)
    assert "expected gilfree.kernels:countdown to release the GIL" in message
    assert "holds the GIL: GIL contention" in message
    assert "probe rounds" in message  # how far the calling thread got
    assert "call(s) ran for" in message and "ms each" in message
    with pytest.raises(AssertionError, match=r"to hold the GIL, but .* releases the GIL"):
        assert_holds_gil(time.sleep, 0.01)


@pytest.mark.needs_gil
def test_evidence_counts_rounds_and_calls() -> None:
    free = gil_evidence(time.sleep, 0.01)
    assert free.calls >= 5  # repeated until min_seconds (0.05 s)
    assert free.elapsed_s >= 0.05
    assert 0.009 < free.call_s < 0.05
    # The GIL was free: the calling thread completed about every round it could.
    assert free.reading.samples >= 0.5 * free.expected_rounds
    held = gil_evidence(countdown, 10**8, kernel="cython-gil")
    assert held.reading.samples < 0.5 * held.expected_rounds


@pytest.mark.needs_gil
def test_too_short_to_judge_asks_for_a_larger_input() -> None:
    with pytest.raises(TooShortToJudge, match=r"too short to judge.*pass a larger input"):
        gil_evidence(countdown, 1000)


@pytest.mark.needs_gil
def test_the_functions_exception_reaches_the_caller() -> None:
    def fails() -> None:
        raise KeyError("inner")

    with pytest.raises(KeyError, match="inner"):
        gil_evidence(fails)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="callable"):
        check_gil(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_seconds"):
        check_gil(time.sleep, (0.01,), min_seconds=0)
    for bad in (0, -1, float("nan"), 1e12):
        with pytest.raises(ValueError, match="timeout must be seconds"):
            check_gil(time.sleep, (0.01,), timeout=bad)


@pytest.mark.needs_gil
def test_a_function_that_never_returns_fails_the_check_at_its_timeout() -> None:
    # An interpreted loop that never ends is stopped at the deadline.
    def spins_for_ever() -> None:
        while True:
            pass

    t0 = time.monotonic()
    with pytest.raises(GILCheckTimeout, match=r"did not return within 0.5 s .*it was stopped"):
        check_gil(spins_for_ever, timeout=0.5)
    assert time.monotonic() - t0 < 5


@pytest.mark.needs_gil
def test_a_deadlocked_function_fails_the_check_and_is_left_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A wait on a lock nobody releases cannot be interrupted: the check fails
    # after the timeout and the grace, saying so, instead of waiting for ever.
    # (A 1 s grace here: the 5 s one only lengthens the wait.)
    import gilfree.testing

    monkeypatch.setattr(gilfree.testing, "STOP_GRACE_S", 1.0)
    lock = threading.Lock()
    lock.acquire()
    try:
        t0 = time.monotonic()
        with pytest.raises(GILCheckTimeout, match=r"blocked .* left running"):
            check_gil(lock.acquire, timeout=0.5)
        assert time.monotonic() - t0 < 6  # the timeout and the 1 s grace
    finally:
        lock.release()  # the abandoned thread takes it, meets its stop request, ends
        for thread in threading.enumerate():
            if thread.name == "gilfree-gil-check":
                thread.join(10)  # gone before the next test counts threads
                assert not thread.is_alive()


def test_without_a_gil_it_refuses_to_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    # A free-threaded build with the GIL disabled, simulated.
    monkeypatch.setattr(meter.sys, "_is_gil_enabled", lambda: False, raising=False)
    with pytest.raises(RuntimeError, match="no GIL to check"):
        gil_evidence(time.sleep, 0.01)


# ----------------------------------------------------------------- pytest plugin

PLUGIN_TESTS = """
import time
import pytest
from gilfree import countdown

@pytest.mark.releases_gil
def test_nogil_passes():
    countdown(10**8)

@pytest.mark.releases_gil
def test_gil_fails():
    countdown(10**8, "cython-gil")

@pytest.mark.holds_gil(min_seconds=0.02)
def test_holds_passes(tmp_path):
    assert tmp_path.exists()   # fixtures reach the checked body
    countdown(10**8, "cython-gil")

@pytest.mark.releases_gil
def test_body_failure_is_reported():
    assert 1 == 2

def test_fixture(gil):
    gil.assert_releases(time.sleep, 0.01)
    gil.assert_holds(countdown, 10**8, kernel="cython-gil")
    assert gil.evidence(time.sleep, 0.01).verdict == "releases"

def test_fixture_failure(gil):
    gil.assert_releases(countdown, 10**8, kernel="cython-gil")
"""


@pytest.mark.needs_gil
def test_plugin_markers_and_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plugin_use=PLUGIN_TESTS)
    result = pytester.runpytest_subprocess("--strict-markers")  # the entry point loads it
    result.assert_outcomes(passed=3, failed=3)
    out = result.stdout.str()
    assert "FAILED test_plugin_use.py::test_gil_fails - AssertionError: expected" in out
    assert "FAILED test_plugin_use.py::test_body_failure_is_reported - assert 1 == 2" in out
    assert "test_fixture_failure - AssertionError: expected" in out
    assert "holds the GIL: GIL contention" in out


@pytest.mark.needs_gil
def test_plugin_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    # No -p: the pytest11 entry point of the installed package loads it.
    pytester.makepyfile(
        "import pytest, time\n@pytest.mark.releases_gil\ndef test_sleep():\n    time.sleep(0.06)\n"
    )
    result = pytester.runpytest_subprocess("--strict-markers")
    result.assert_outcomes(passed=1)


def test_plugin_refuses_both_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        "import pytest, time\n"
        "@pytest.mark.releases_gil\n"
        "@pytest.mark.holds_gil\n"
        "def test_both():\n"
        "    time.sleep(0.06)\n"
    )
    result = pytester.runpytest_subprocess()
    assert "marked both releases_gil and holds_gil" in result.stdout.str() + result.stderr.str()
    assert result.ret != 0


# ------------------------------------------------------------- pytest-benchmark

BENCH_TESTS = """
import os
from gilfree import countdown
from gilfree.testing import benchmark_threads

N = 4 * 10**8

def test_threads(benchmark):
    kernel = os.environ["KERNEL"]
    benchmark_threads(benchmark, countdown, (N, kernel))
    assert benchmark.extra_info["gilfree_threads"] == 2
    assert benchmark.extra_info["gilfree_verdict"]

def test_one_call(benchmark):
    # One thread making one of the calls, seconds after test_threads' rounds:
    # the yardstick that says whether the host let those rounds run in parallel.
    benchmark(countdown, N, os.environ["KERNEL"])
"""


def _fastest(report: dict[str, Any]) -> dict[str, float]:
    """The fastest round of each benchmark in a pytest-benchmark JSON report."""
    return {b["name"]: b["stats"]["min"] for b in report["benchmarks"]}


class _FakeBenchmark:
    """pytest-benchmark's fixture, reduced to what benchmark_threads uses: it
    keeps the function it is given to time instead of timing it."""

    def __init__(self) -> None:
        self.extra_info: dict[str, Any] = {}
        self.timed: list[Callable[[], Any]] = []

    def __call__(self, fn: Callable[[], Any]) -> str:
        self.timed.append(fn)
        return "timed"


def test_benchmark_threads_times_one_call_in_each_of_its_threads() -> None:
    # Thread objects, not idents: a thread that ends before the next starts
    # hands its ident on to it.
    calls: list[tuple[threading.Thread, tuple[Any, ...], dict[str, Any]]] = []

    def work(*args: Any, **kwargs: Any) -> None:
        calls.append((threading.current_thread(), args, kwargs))
        time.sleep(0.002)

    fake = _FakeBenchmark()
    assert benchmark_threads(fake, work, ("x",), {"k": 1}, threads=3, repeats=1) == "timed"
    assert {"gilfree_speedup", "gilfree_contention", "gilfree_verdict"} <= set(fake.extra_info)
    assert fake.extra_info["gilfree_threads"] == 3
    (threaded_round,) = fake.timed
    calls.clear()  # the check's own calls
    threaded_round()
    assert [(args, kwargs) for _, args, kwargs in calls] == [(("x",), {"k": 1})] * 3
    threads = {id(thread) for thread, _, _ in calls}  # the list keeps them alive
    assert len(threads) == 3 and id(threading.main_thread()) not in threads


@pytest.mark.slow  # up to three pairs of inner pytest-benchmark sessions
def test_benchmark_threads_records_and_compare_catches_a_lost_release(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_bench_gil=BENCH_TESTS)
    unclean: list[str] = []
    # A pair is a saved baseline of two cython-nogil threads and a session of
    # two cython-gil threads (the "refactor" that drops the nogil block)
    # compared against it, as docs/extension-authors.md shows. Whether the 25%
    # check can fire depends on the host: on a shared 2-vCPU host a neighbour
    # can take a CPU, or halve the speed, during either session. So each pair
    # is judged by its own fastest rounds, against one thread making one call
    # in the same session (test_one_call). A pair is clean when
    # - the baseline's threads ran in parallel: round <= 1.2 x one call;
    # - the lost release's threads took turns: round >= 1.7 x one call;
    # - the host kept its speed between the sessions: one call within 10%.
    # In a clean pair the lost release's round is at least
    # 1.7 x 0.9 / 1.2 = 1.27 times the baseline's, so the comparison must
    # fail it. A pair caught is a pass; a pair that is not clean and not caught
    # says nothing about gilfree and is measured again, three pairs at most.
    # (That the benchmarked round is two threads each making one call is
    # checked exactly, without timing, by the test above.)
    for attempt in range(3):
        store = pytester.path / f"store{attempt}"
        common = [
            *("-p", "no:randomly", f"--benchmark-storage=file://{store}"),
            "--benchmark-min-rounds=5",
        ]
        monkeypatch.setenv("KERNEL", "cython-nogil")
        first = pytester.runpytest_subprocess(*common, "--benchmark-save=before")
        first.assert_outcomes(passed=2)
        saved = json.loads(next(store.rglob("*before.json")).read_text())
        extra = next(b for b in saved["benchmarks"] if b["name"] == "test_threads")["extra_info"]
        assert {"gilfree_speedup", "gilfree_contention", "gilfree_verdict"} <= set(extra)
        before = _fastest(saved)
        monkeypatch.setenv("KERNEL", "cython-gil")
        after_json = pytester.path / f"after{attempt}.json"
        second = pytester.runpytest_subprocess(
            *common,
            "--benchmark-compare=0001",
            "--benchmark-compare-fail=min:25%",
            f"--benchmark-json={after_json}",
        )
        output = second.stdout.str() + second.stderr.str()
        if second.ret != 0 and re.search(r"test_threads.*Field 'min' has failed", output):
            assert "Performance has regressed" in output
            return
        after = _fastest(json.loads(after_json.read_text()))
        clean = (
            before["test_threads"] <= 1.2 * before["test_one_call"]
            and after["test_threads"] >= 1.7 * after["test_one_call"]
            and abs(after["test_one_call"] / before["test_one_call"] - 1) <= 0.1
        )
        assert not clean, (
            f"a clean pair missed the lost release: {before} then {after}\n{output[-1500:]}"
        )
        unclean.append(f"{before} then {after}")
    pytest.skip(f"three pairs uncaught, none clean on this host (fastest rounds, s): {unclean}")


# ----------------------------------------------------------------- IPython magic


def test_the_magic_takes_the_round_options_of_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gilfree.checker
    from gilfree._magic import gilcheck

    seen: dict[str, object] = {}

    def check_call(run: object, **options: object) -> str:
        seen.update(options)
        return "report"

    monkeypatch.setattr(gilfree.checker, "check_call", check_call)
    line = "-w 3 --rounds 4 --precision 10% --max-time 9 --max-rounds 12 len('ab')"
    assert gilcheck({}, line) == "report"
    assert seen == {
        "workers": 3,
        "calls": 1,
        "repeats": 4,
        "precision": 0.1,
        "max_time": 9.0,
        "max_rounds": 12,
    }


@pytest.mark.needs_gil
def test_ipython_magic_prints_the_check_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    shell_module = pytest.importorskip("IPython.core.interactiveshell")
    shell = shell_module.InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "gilfree")
        shell.user_ns["time"] = time
        shell.user_ns["python_loop"] = python_loop
        # A sleep keeps no CPU busy, so only its speedup can show threads
        # helping, and the median's interval over 5 rounds or fewer spans them
        # all: a round the host delayed (0.27x) would leave it undecided.
        # Rounds are added while the interval is wide, as outside the tests.
        line = "--max-time 8 --repeats 3 --max-rounds 12 time.sleep(0.02)"
        report = shell.run_line_magic("gilcheck", line)
        out = capsys.readouterr().out
        assert "time.sleep(0.02): threads help:" in out
        assert report.verdict.startswith("threads help")
        cell = shell.run_cell_magic(
            "gilcheck", "-w 2 --repeats 2 --precision off", "python_loop(2 * 10**6)\n"
        )
        # The speedup of 2 short repeats is at the mercy of a noisy host; the
        # contention reading is not (the verdict rules are tested exactly in
        # test_measure.py).
        threads = next(r for r in cell.results if r.backend == "threads")
        assert threads.workers == 2 and threads.contention > 0.5
        assert "%gilcheck:cell: " in capsys.readouterr().out
        with pytest.raises(ValueError, match="needs an expression"):
            shell.run_line_magic("gilcheck", "")
    finally:
        shell_module.InteractiveShell.clear_instance()
