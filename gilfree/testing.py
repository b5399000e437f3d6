"""Check in a test that a function releases (or holds) the GIL.

Extension authors promise that a function releases the GIL, and nothing checks
the promise: a refactor that drops a ``with nogil:`` shows up much later as lost
parallelism. These helpers turn the promise into an assertion::

    from gilfree.testing import assert_releases_gil, assert_holds_gil

    def test_hash_releases_the_gil():
        assert_releases_gil(mylib.hash_block, b"x" * 2**24)

How it decides, on any number of CPUs: ``fn`` runs in a worker thread, again
and again until it has run for ``min_seconds``, while the calling thread probes
the GIL (:class:`gilfree.GILMeter`). Each probe round releases the GIL for a
fixed interval, then asks for it back and records the wait. A thread that
waits for a CPU is stamped only once the OS has scheduled it, so only waiting
for the GIL counts. On one core as on many, a function that releases the GIL
leaves the calling thread's rounds unhindered (GIL contention near 0). One that
holds it makes each round wait for the holder to let go (contention high).

The verdict is ``"releases"`` (contention below :data:`RELEASES_BELOW`),
``"holds"`` (above :data:`HOLDS_ABOVE`), or ``"partly"`` in between. A call
shorter than :data:`MIN_CALL_S` is too short to judge: between calls the
worker runs Python code and holds the GIL, which would hide a release. It
raises :class:`TooShortToJudge` and asks for a larger input.

>>> from gilfree import countdown
>>> from gilfree.testing import gil_evidence
>>> gil_evidence(countdown, 10**8).verdict           # cython-nogil
'releases'
>>> gil_evidence(countdown, 10**8, kernel="cython-gil").verdict
'holds'
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from gilfree._countdown import cancel_running
from gilfree._watch import STOP_GRACE_S, Running
from gilfree.checker import callable_name
from gilfree.meter import DEFAULT_INTERVAL, FREE_BELOW, GILMeter, GILReading, gil_enabled

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "HOLDS_ABOVE",
    "MIN_CALL_S",
    "RELEASES_BELOW",
    "GILCheckTimeout",
    "GILEvidence",
    "TooShortToJudge",
    "assert_holds_gil",
    "assert_releases_gil",
    "benchmark_threads",
    "check_gil",
    "expect",
    "gil_evidence",
    "holds_gil",
    "releases_gil",
]

#: Contention below this: the function releases the GIL (the meter's "free").
RELEASES_BELOW = FREE_BELOW
#: Contention above this: the function holds it. One thread that holds the GIL
#: reads about 0.7 at the default probe interval (see gilfree.meter); a thread
#: that never lets go reads about 1.0.
HOLDS_ABOVE = 0.5
#: Shortest call that can be judged (seconds): below it, the Python code that
#: runs between calls would weigh on the reading.
MIN_CALL_S = 0.001
#: Default time to run the function for (seconds): 25 probe rounds at 2 ms.
MIN_SECONDS = 0.05
#: How long a check may take before the function is stopped (seconds): a
#: deadlock must fail the test, not hang it.
DEFAULT_TIMEOUT_S = 60.0

Verdict = Literal["releases", "holds", "partly"]


_NO_GIL = (
    "there is no GIL to check: this is a free-threaded build running with the GIL "
    "disabled, where every function runs in parallel (PYTHON_GIL=1 turns it on)"
)


class TooShortToJudge(ValueError):
    """One call of the function is too short for a verdict; pass a larger input."""


class GILCheckTimeout(TimeoutError):
    """The function did not return within the check's timeout (a deadlock, or
    a call far longer than a check needs)."""


@dataclass(frozen=True)
class GILEvidence:
    """What was seen while ``function`` ran, and the verdict drawn from it.

    Attributes
    ----------
    function
        ``module:qualname`` of the function checked.
    calls
        How many times it was called (until ``min_seconds`` had passed).
    elapsed_s, call_s
        Total seconds the calls took; median seconds of one call.
    reading
        The GIL contention meter's reading over the calls.
    expected_rounds
        Probe rounds the calling thread would have completed with the GIL
        free all the time (``elapsed_s / interval``); ``reading.samples`` is
        how many it did complete.
    """

    function: str
    calls: int
    elapsed_s: float
    call_s: float
    reading: GILReading
    expected_rounds: int

    @property
    def contention(self) -> float:
        value = self.reading.contention
        return float("nan") if value is None else value

    @property
    def verdict(self) -> Verdict:
        c = self.contention
        if c < RELEASES_BELOW:
            return "releases"
        if c > HOLDS_ABOVE:
            return "holds"
        return "partly"

    def __str__(self) -> str:
        r = self.reading
        rounds = r.samples
        share = rounds / self.expected_rounds if self.expected_rounds else float("nan")
        return (
            f"{self.function} {self.verdict} the GIL: GIL contention {self.contention:.1%} "
            f"(releases below {RELEASES_BELOW:.0%}, holds above {HOLDS_ABOVE:.0%}); the "
            f"calling thread completed {rounds} of {self.expected_rounds} probe rounds "
            f"({share:.0%}) while {self.calls} call(s) ran for {self.elapsed_s * 1000:.1f} ms "
            f"({self.call_s * 1000:.2f} ms each); longest wait for the GIL "
            f"{r.max_wait_s * 1000:.1f} ms"
        )


def _check_arguments(fn: Callable[..., Any], min_seconds: float, timeout: float) -> None:
    """Refuse, before any work, what :func:`check_gil` cannot run or judge."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {type(fn).__name__}")
    if not min_seconds > 0:
        raise ValueError(f"min_seconds must be > 0, got {min_seconds!r}")
    if not 0 < timeout <= 86400:  # NaN fails this too
        raise ValueError(f"timeout must be seconds between 0 and 86400, got {timeout!r}")
    if not gil_enabled():  # refused at once: there is nothing to measure
        raise RuntimeError(_NO_GIL)


def _timed_out(
    worker: threading.Thread, running: Running, late: str, durations: list[float]
) -> NoReturn:
    """Stop a check's worker that overran its time, and raise GILCheckTimeout
    saying whether it stopped."""
    cancel_running()  # compiled countdowns
    running.stop()  # interpreted loops
    worker.join(STOP_GRACE_S)
    fate = (
        f"it is blocked (a lock, or C code) and is left running in thread {worker.name}"
        if worker.is_alive()
        else "it was stopped"
    )
    raise GILCheckTimeout(
        f"{late} ({len(durations)} call(s) done): {fate}. A deadlock, or a call far longer "
        "than the check needs; pass a smaller input, or a larger timeout= to check_gil"
    )


def check_gil(
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    min_seconds: float = MIN_SECONDS,
    interval: float = DEFAULT_INTERVAL,
    max_calls: int = 100_000,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> GILEvidence:
    """Run ``fn(*args, **kwargs)`` in a worker thread, repeatedly for at least
    ``min_seconds``, while the calling thread meters the GIL.

    Raises
    ------
    TooShortToJudge
        A call takes less than :data:`MIN_CALL_S`.
    GILCheckTimeout
        The check ran longer than ``timeout`` seconds: the function is
        stopped (an interpreted loop at its next bytecode, a wait on a lock
        or in C cannot be; that thread is then left running, and the message
        says so).
    RuntimeError
        There is no GIL to check (a free-threaded build with the GIL disabled).
    BaseException
        Whatever ``fn`` raises, re-raised here with its traceback.
    """
    _check_arguments(fn, min_seconds, timeout)
    kw = dict(kwargs or {})
    name = callable_name(fn)
    durations: list[float] = []
    failure: list[BaseException] = []

    running = Running()

    def work() -> None:
        deadline = time.perf_counter() + min_seconds
        try:
            with running.kernel():
                while len(durations) < max_calls:
                    start = time.perf_counter()
                    fn(*args, **kw)
                    end = time.perf_counter()
                    durations.append(end - start)
                    if end >= deadline:
                        return
        except BaseException as exc:  # re-raised in the caller
            failure.append(exc)

    worker = threading.Thread(target=work, name="gilfree-gil-check", daemon=True)
    with GILMeter(interval) as meter:
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            _timed_out(worker, running, f"{name} did not return within {timeout:g} s", durations)
    if failure:
        raise failure[0]
    reading = meter.reading()
    if not reading.gil:  # something turned the GIL off while it ran
        raise RuntimeError(_NO_GIL)
    call_s = sorted(durations)[len(durations) // 2]
    if call_s < MIN_CALL_S or reading.probed_s <= 0:
        raise TooShortToJudge(
            f"{name}: one call takes {call_s * 1e6:.1f} us, too short to judge (at least "
            f"{MIN_CALL_S * 1000:g} ms is needed: between calls Python code holds the GIL); "
            "pass a larger input"
        )
    elapsed = sum(durations)
    expected = max(1, math.floor(reading.probed_s / interval)) if reading.probed_s else 0
    return GILEvidence(name, len(durations), elapsed, call_s, reading, expected)


def gil_evidence(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> GILEvidence:
    """:func:`check_gil` with its defaults; every argument goes to ``fn``."""
    return check_gil(fn, args, kwargs)


def releases_gil(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> bool:
    """True if ``fn(*args, **kwargs)`` releases the GIL while it runs."""
    return gil_evidence(fn, *args, **kwargs).verdict == "releases"


def holds_gil(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> bool:
    """True if ``fn(*args, **kwargs)`` holds the GIL while it runs."""
    return gil_evidence(fn, *args, **kwargs).verdict == "holds"


def expect(evidence: GILEvidence, verdict: Verdict) -> GILEvidence:
    """Return ``evidence`` if its verdict is ``verdict``; else AssertionError
    with the whole evidence in the message."""
    if evidence.verdict != verdict:
        raise AssertionError(
            f"expected {evidence.function} to {verdict[:-1]} the GIL, but {evidence}"
        )
    return evidence


def assert_releases_gil(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> GILEvidence:
    """Fail (AssertionError, with the evidence) unless ``fn`` releases the GIL."""
    return expect(gil_evidence(fn, *args, **kwargs), "releases")


def assert_holds_gil(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> GILEvidence:
    """Fail (AssertionError, with the evidence) unless ``fn`` holds the GIL."""
    return expect(gil_evidence(fn, *args, **kwargs), "holds")


def benchmark_threads(
    benchmark: Any,
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    threads: int = 2,
    repeats: int = 3,
) -> Any:
    """Benchmark ``threads`` threads each calling ``fn(*args, **kwargs)`` once,
    with pytest-benchmark's ``benchmark`` fixture, and record the thread
    speedup and GIL contention in ``benchmark.extra_info``.

    The benchmarked time is the threaded round, starting the threads
    included (about 0.1 ms each; see the harness overhead in the README). Saved runs
    (``--benchmark-autosave``) carry the speedup and contention. If ``fn``
    stops releasing the GIL, the threads take turns, the round gets about
    ``threads`` times slower, and ``--benchmark-compare`` shows it
    (``--benchmark-compare-fail=min:25%`` fails the run; the fastest round,
    because noise from other processes only slows rounds). ``extra_info``
    gets ``gilfree_threads``, ``gilfree_speedup`` (against one thread making
    the same calls, from :func:`gilfree.check_call`), ``gilfree_contention``
    and ``gilfree_verdict``. Returns what ``benchmark`` returns.
    """
    from gilfree.checker import check_call

    kw = dict(kwargs or {})
    report = check_call(fn, args, kw, workers=threads, repeats=repeats, backends=["threads"])
    (cell,) = report.results
    benchmark.extra_info.update(
        gilfree_threads=threads,
        gilfree_speedup=cell.speedup,
        gilfree_contention=cell.contention,
        gilfree_verdict=report.verdict,
    )

    def threaded_round() -> None:
        workers = [threading.Thread(target=fn, args=args, kwargs=kw) for _ in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()

    return benchmark(threaded_round)
