"""Print the README's kernel table: ns per iteration of every kernel, measured
side by side (rounds interleaved, so drift hits all kernels alike).

Usage: python bench/kernel_table.py [--rounds 7] [--seconds 0.3]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _machine import describe

from gilfree import (
    KERNELS,
    _countdown,
)
from gilfree.measure import calibrate


def timed(fn: Callable[[], int], n: int) -> float:
    """Seconds for one prepared call; ``fn`` must report ``n`` iterations."""
    start = time.perf_counter()
    done = fn()
    elapsed = time.perf_counter() - start
    assert done == n
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per kernel")
    parser.add_argument("--seconds", type=float, default=0.3, help="target seconds per call")
    args = parser.parse_args()

    sizes = {name: calibrate(k, args.seconds) for name, k in KERNELS.items()}
    times: dict[str, list[float]] = {name: [] for name in KERNELS}
    check = {"checked": [], "unchecked": []}  # type: dict[str, list[float]]
    check_n = sizes["cython-nogil"]
    for _ in range(args.rounds):
        for name, k in KERNELS.items():
            times[name].append(timed(k.prepare(sizes[name]), sizes[name]) / sizes[name] * 1e9)
        checked = functools.partial(_countdown.countdown_nogil, check_n)
        unchecked = functools.partial(_countdown.spin_unchecked, check_n)
        check["checked"].append(timed(checked, check_n))
        check["unchecked"].append(timed(unchecked, check_n))

    print(f"Machine: {describe()}")
    print(f"Command: python bench/kernel_table.py --rounds {args.rounds} --seconds {args.seconds}")
    print()
    python_ns = statistics.median(times["python"])
    columns = [
        "kernel",
        "GIL while counting",
        "n per call",
        "median ns/iteration",
        "spread (max-min)/median",
        "speed vs `python`",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---:|---:|---:|---:|")
    for name, k in KERNELS.items():
        med = statistics.median(times[name])
        spread = (max(times[name]) - min(times[name])) / med
        ratio = python_ns / med
        shown = f"{ratio:.2f}x" if ratio < 10 else f"{ratio:,.0f}x"
        print(f"| `{name}` | {k.gil} | {sizes[name]:.2e} | {med:.3f} | {spread:.1%} | {shown} |")
    cost = statistics.median(check["checked"]) / statistics.median(check["unchecked"]) - 1
    print()
    print(
        f"Signal/cancel checks every {_countdown.CHUNK} iterations: cython-nogil vs the same "
        f"loop in one nogil block, n={check_n:.2e}: {cost:+.2%} (median of {args.rounds})"
    )


if __name__ == "__main__":
    main()
