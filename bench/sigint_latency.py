"""Time from Ctrl-C (SIGINT) to exit of a real ``gilfree run``, per backend
and kernel, with the workers mid-count; plus what the cancellation check
costs the compiled loop.

Usage: python bench/sigint_latency.py [--rounds 5] [--backends threads,processes,...]

Each round starts ``gilfree run`` on work that would take seconds more, waits
until its workers have counted for half a second, sends SIGINT, and times the
exit; any worker process left alive afterwards is an error. The cancellation
check cost compares ``cython-nogil`` (leaves its nogil block every CHUNK
iterations to check the cancel generation and, in the main thread, signals)
with the same loop in one unchecked nogil block, in 101 back-to-back pairs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _machine import describe
from interrupting import cli_command, interrupt_cli

from gilfree import _countdown
from gilfree.backends import BACKENDS

KERNELS_PER_BACKEND = {
    "threads": ["python", "cython-gil", "cython-nogil"],
    "processes": ["python", "cython-gil"],
    "interpreters": ["python", "cython-gil"],
    "dask": ["python"],
}


def check_cost(pairs: int = 101, n: int = 2 * 10**8) -> tuple[float, float, float]:
    """Median of checked / unchecked - 1 over ``pairs`` back-to-back pairs,
    and its interquartile range.

    Many short pairs rather than a few long ones: on a shared host one noisy
    second lands in one pair, not in a whole round (7 rounds of 2e9 read
    medians from -0.39% to +1.02% on the same build). 101 pairs of 2e8 do the
    same total work, with the same check every CHUNK iterations. The order
    alternates, so neither loop always runs first."""

    def timed(loop: Callable[[int], object]) -> float:
        t = time.perf_counter()
        loop(n)
        return time.perf_counter() - t

    ratios = []
    for i in range(pairs):
        if i % 2:
            unchecked = timed(_countdown.spin_unchecked)
            checked = timed(_countdown.countdown_nogil)
        else:
            checked = timed(_countdown.countdown_nogil)
            unchecked = timed(_countdown.spin_unchecked)
        ratios.append(checked / unchecked - 1)
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return median, q1, q3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default=",".join(KERNELS_PER_BACKEND))
    args = parser.parse_args()
    print(f"Machine: {describe()}")
    print()
    print(f"SIGINT to exit, `gilfree run -w 2` mid-cell, {args.rounds} rounds each:")
    print()
    print("| backend | kernel | median | slowest | exit status | workers left |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            why = BACKENDS[backend].availability()
            if why:
                print(f"| {backend} | | not run: {why} | | | |")
                continue
            for kernel in KERNELS_PER_BACKEND[backend]:
                latencies, codes, left = [], set(), 0
                for i in range(args.rounds):
                    dask = backend == "dask"  # a cluster starts first: longer work, later
                    result = interrupt_cli(
                        cli_command("run", backend, kernel, 3.0 if dask else 1.0),
                        backend,
                        Path(tmp) / f"{backend}-{kernel}-{i}.jsonl",
                        after_s=2.0 if dask else 0.5,
                    )
                    latencies.append(result.latency_s)
                    codes.add(result.returncode)
                    left += len(result.leftovers)
                print(
                    f"| {backend} | {kernel} | {statistics.median(latencies) * 1000:.0f} ms "
                    f"| {max(latencies) * 1000:.0f} ms | {', '.join(map(str, sorted(codes)))} "
                    f"| {left} |",
                    flush=True,
                )
    pairs = 101
    median, q1, q3 = check_cost(pairs)
    print()
    print(
        f"Cancellation check, every {_countdown.CHUNK} iterations: cython-nogil vs the same "
        f"loop unchecked, n=2e8, {pairs} back-to-back pairs (order alternating): median "
        f"{median:+.2%} (interquartile range {q1:+.2%} to {q3:+.2%})"
    )


if __name__ == "__main__":
    main()
