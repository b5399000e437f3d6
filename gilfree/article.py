"""The classic article's three programs, as written, on this machine.

The note gilfree grew from (a summary of Real Python's "What is the Python
Global Interpreter Lock?") times three programs: a countdown of 100,000,000
in one thread (6.61 s on the author's Mac), the same split over two threads
(6.04 s), and a pool of two processes (4.29 s). :func:`replicate` runs them
here, each exactly as written, and adds the fair figure for processes: the
article's process program sets ``COUNT = 50000000``, so its two processes
count half the work of the other two programs, and its clock runs while the
pool's workers start and while the pool is closed and joined.

The programs run in a few rounds, their order rotating from round to round,
so that a drift in the host's speed does not land on one program alone; the
figures are medians, the ratios medians of per-round ratios.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from threading import Thread

__all__ = ["ARTICLE_SECONDS", "COUNT", "ArticleReport", "countdown", "replicate"]

COUNT = 100_000_000
#: The article's own times, in seconds (its author's Mac).
ARTICLE_SECONDS = {
    "one thread": 6.608175992965698,
    "two threads": 6.042619943618774,
    "two processes": 4.294095039367676,
}
#: Rounds of the four programs: enough for a median, short enough to wait for.
DEFAULT_ROUNDS = 3


def countdown(n: int) -> None:
    """The article's loop, as written."""
    while n > 0:
        n -= 1


def single_threaded(count: int = COUNT) -> float:
    """``single_threaded.py``: one countdown of ``count``."""
    start = time.time()
    countdown(count)
    end = time.time()
    return end - start


def multi_threaded(count: int = COUNT) -> float:
    """``multi_threaded.py``: two threads of ``count // 2`` each."""
    t1 = Thread(target=countdown, args=(count // 2,))
    t2 = Thread(target=countdown, args=(count // 2,))
    start = time.time()
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    end = time.time()
    return end - start


def article_processes(count: int = COUNT // 2) -> float:
    """The article's pool program, as written: ``COUNT = 50000000``, two
    tasks of ``COUNT // 2``, the clock around submitting, closing and joining."""
    pool = multiprocessing.Pool(processes=2)
    start = time.time()
    r1 = pool.apply_async(countdown, [count // 2])
    r2 = pool.apply_async(countdown, [count // 2])
    pool.close()
    pool.join()
    end = time.time()
    r1.get(), r2.get()  # a worker's exception surfaces here
    return end - start


@dataclass(frozen=True)
class FairProcesses:
    """Two processes doing the full work, start-up and shutdown apart."""

    work_s: float
    startup_s: float
    shutdown_s: float


def fair_processes(count: int = COUNT) -> FairProcesses:
    """The full ``count`` over a pool of two, with the clock on the work only:
    the pool is started and both workers have answered before it starts, and
    it stops when both results are in, before the pool is closed."""
    t0 = time.perf_counter()
    pool = multiprocessing.Pool(processes=2)
    try:
        # Both workers have answered a task: both are up and running. Each task
        # sleeps a little, so two submitted at once go to the two workers.
        pids: set[int] = set()
        while len(pids) < 2:
            pids |= {r.get() for r in [pool.apply_async(_pid) for _ in range(2)]}
        t1 = time.perf_counter()
        r1 = pool.apply_async(countdown, [count // 2])
        r2 = pool.apply_async(countdown, [count - count // 2])
        r1.get(), r2.get()
        t2 = time.perf_counter()
    finally:
        pool.close()
        pool.join()
    return FairProcesses(work_s=t2 - t1, startup_s=t1 - t0, shutdown_s=time.perf_counter() - t2)


def _pid() -> int:
    import os

    time.sleep(0.05)  # busy long enough that the other task goes to the other worker
    return os.getpid()


@dataclass(frozen=True)
class ArticleReport:
    """Seconds per program and round, as measured here."""

    one_thread: tuple[float, ...]
    two_threads: tuple[float, ...]
    two_processes: tuple[float, ...]
    fair: tuple[FairProcesses, ...]
    count: int

    @staticmethod
    def _ratio(base: tuple[float, ...], other: tuple[float, ...]) -> float:
        return statistics.median(b / o for b, o in zip(base, other, strict=True))

    def lines(self) -> list[str]:
        """The report, a line each: this machine beside the article."""
        med = statistics.median
        a = ARTICLE_SECONDS
        one, two_t, two_p = med(self.one_thread), med(self.two_threads), med(self.two_processes)
        fair = med(f.work_s for f in self.fair)
        rows = [
            ("one thread", f"countdown({self.count:,})", one, a["one thread"], None),
            (
                "two threads",
                f"2 x countdown({self.count // 2:,})",
                two_t,
                a["two threads"],
                (
                    self._ratio(self.one_thread, self.two_threads),
                    a["one thread"] / a["two threads"],
                ),
            ),
            (
                "two processes",
                f"2 x countdown({self.count // 4:,}), as written",
                two_p,
                a["two processes"],
                (
                    self._ratio(self.one_thread, self.two_processes),
                    a["one thread"] / a["two processes"],
                ),
            ),
        ]
        out = [
            f"{'program':<15}{'work':<38}{'here':>9}{'article':>10}   speedup here (article)",
        ]
        for name, work, here, theirs, ratio in rows:
            speed = "" if ratio is None else f"   {ratio[0]:.2f}x ({ratio[1]:.2f}x)"
            out.append(f"{name:<15}{work:<38}{here:>8.2f}s{theirs:>9.2f}s{speed}")
        fair_ratio = statistics.median(
            b / f.work_s for b, f in zip(self.one_thread, self.fair, strict=True)
        )
        out += [
            "",
            f"The article's process program sets COUNT = {self.count // 2} and gives each of "
            f"its two processes COUNT//2: they count {self.count // 2:,} in all, half the work "
            "of the other two programs. Its clock also runs while the pool's workers start "
            "and while the pool is closed and joined.",
            f"Fair figure: two processes counting the full {self.count:,} "
            f"({self.count // 2:,} each), start-up apart: {fair:.2f} s of work -> "
            f"{fair_ratio:.2f}x the one thread (pool start-up "
            f"{med(f.startup_s for f in self.fair):.2f} s and shutdown "
            f"{med(f.shutdown_s for f in self.fair):.2f} s, not counted).",
            f"Medians of {len(self.one_thread)} rounds, programs in rotating order; "
            "speedups are medians of per-round ratios to the one-thread time.",
        ]
        return out


def replicate(
    rounds: int = DEFAULT_ROUNDS,
    count: int = COUNT,
    progress: Callable[[str, int], None] | None = None,
) -> ArticleReport:
    """Run the article's three programs and the fair process figure,
    ``rounds`` times each, their order rotating."""
    programs: list[tuple[str, Callable[[], object]]] = [
        ("one thread", lambda: single_threaded(count)),
        ("two threads", lambda: multi_threaded(count)),
        ("two processes", lambda: article_processes(count // 2)),
        ("fair processes", lambda: fair_processes(count)),
    ]
    times: dict[str, list[object]] = {name: [] for name, _ in programs}
    for r in range(rounds):
        order = programs[r % len(programs) :] + programs[: r % len(programs)]
        for name, program in order:
            if progress:
                progress(f"article, round {r + 1}: {name}", rounds * len(programs))
            times[name].append(program())
    return ArticleReport(
        one_thread=tuple(times["one thread"]),  # type: ignore[arg-type]
        two_threads=tuple(times["two threads"]),  # type: ignore[arg-type]
        two_processes=tuple(times["two processes"]),  # type: ignore[arg-type]
        fair=tuple(times["fair processes"]),  # type: ignore[arg-type]
        count=count,
    )
