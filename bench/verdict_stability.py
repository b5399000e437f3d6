"""Do verdicts hold, run after run, on a noisy host? The figures of the docs' "Trustworthy
speedups" page.

    python bench/verdict_stability.py --runs 10           # back to back, defaults
    python bench/verdict_stability.py --noise --cells 42  # with the noise maker

Without ``--noise``: ``--runs`` back-to-back ``gilfree.run(kernel, "threads",
workers=2)`` calls with the defaults for each of ``python``, ``cython-gil`` and
``cython-nogil``, one line per call (speedup, interval, share of capacity,
rounds, verdict), then a summary against the targets: every ``python`` and
``cython-gil`` cell GIL-bound, every ``cython-nogil`` cell "threads help"
(with the highest speedup and the lowest share of capacity beside them).

With ``--noise``: a process takes a CPU for a second and gives it back for a
second, over and over, while sweeps of the three kernels on 2 threads run until
``--cells`` cells are measured; a cell is wrong when its word is neither the
right one nor "inconclusive".
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time

from gilfree.measure import Result, context, run, sweep
from gilfree.report import verdict, verdict_word

KERNELS = ["python", "cython-gil", "cython-nogil"]
#: The word each kernel must read; any other but "inconclusive" is wrong.
RIGHT = {"python": "GIL-bound", "cython-gil": "GIL-bound", "cython-nogil": "threads help"}
NOISE = """
import sys, time
while True:
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        pass
    time.sleep(1.0)
"""


def line(r: Result, word: str, seconds: float) -> str:
    low, high = r.speedup_ci()
    share = "-" if math.isnan(r.share) else f"{r.share:.0%}"
    flag = " flagged" if r.flagged else ""
    return (
        f"{r.kernel:<13}{r.speedup:6.2f}x [{low:.2f}, {high:.2f}]  capacity "
        f"{r.capacity_speedup:4.2f}x  share {share:>5}  rounds {r.rounds:>2} "
        f"({r.excluded_rounds} out, {r.stopped}){flag}  {seconds:5.1f} s  {word}"
    )


def back_to_back(runs: int) -> int:
    cells: dict[str, list[tuple[Result, str]]] = {k: [] for k in KERNELS}
    for kernel in KERNELS:
        for _ in range(runs):
            t0 = time.perf_counter()
            r = run(kernel, "threads", workers=2)
            word = verdict_word([r], kernel)
            cells[kernel].append((r, word))
            print(line(r, word, time.perf_counter() - t0), flush=True)
    print()
    missed = 0
    for kernel in ("python", "cython-gil"):
        top = max(r.speedup for r, _ in cells[kernel])
        bound = sum(w == "GIL-bound" for _, w in cells[kernel])
        ok = bound == runs
        missed += not ok
        print(
            f"{kernel}: GIL-bound {bound}/{runs} (target {runs}/{runs}), highest speedup "
            f"{top:.2f}x{'' if ok else '  MISSED'}"
        )
    nogil = cells["cython-nogil"]
    low_share = min(r.share for r, _ in nogil)
    helps = sum(w == "threads help" for _, w in nogil)
    ok = helps == runs
    missed += not ok
    print(
        f"cython-nogil: threads help {helps}/{runs} (target {runs}/{runs}), lowest share of "
        f"capacity {low_share:.0%}{'' if ok else '  MISSED'}"
    )
    return missed


def with_noise(cells: int) -> int:
    noise = subprocess.Popen([sys.executable, "-c", NOISE])
    measured: list[tuple[Result, str]] = []
    try:
        time.sleep(0.5)
        while len(measured) < cells:
            t0 = time.perf_counter()
            results = sweep(KERNELS, ["threads"], [2])
            seconds = time.perf_counter() - t0
            for r in results:
                word = verdict_word(results, r.kernel)
                measured.append((r, word))
                print(line(r, word, seconds), flush=True)
    finally:
        noise.kill()
        noise.wait()
    wrong = [(r, w) for r, w in measured if w not in (RIGHT[r.kernel], "inconclusive")]
    undecided = sum(w == "inconclusive" for _, w in measured)
    print()
    print(
        f"with the noise maker: {len(wrong)} wrong verdicts in {len(measured)} cells "
        f"(target 0); {undecided} inconclusive"
    )
    for r, _ in wrong:
        print("  wrong:", verdict([r], r.kernel))
    return len(wrong)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="back-to-back runs per kernel")
    parser.add_argument("--noise", action="store_true", help="run with the noise maker")
    parser.add_argument("--cells", type=int, default=42, help="cells to measure with noise")
    args = parser.parse_args()
    c = context()
    print(
        f"Machine: {c.processor}, {c.cpus_available} CPUs; CPython {c.python}; "
        f"gilfree {c.gilfree}; defaults (precision 5%, 30 s budget, 5 to 30 rounds)"
    )
    missed = with_noise(args.cells) if args.noise else back_to_back(args.runs)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
