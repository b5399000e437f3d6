"""Print the README's "really releases the GIL" and Ctrl-C figures, per kernel.

Usage: python bench/honesty_figures.py

share: the main thread's Python loop speed while the kernel counts in a
background thread, relative to its speed beside a sleeping thread (1.0: the
kernel took nothing from it; 0.5: they took turns; ~0: starved).
sigint: milliseconds from SIGINT to KeyboardInterrupt inside countdown(10**13).
Both come from the functions tests/test_honesty.py asserts on.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe
from test_honesty import main_thread_share, sigint_latency

from gilfree import KERNELS
from gilfree._pykernels import NUMPY_LANES
from gilfree.measure import calibrate


def main() -> None:
    print(f"Machine: {describe()}")
    for kernel in KERNELS.values():
        n = 20 * NUMPY_LANES if kernel.gil == "between-calls" else calibrate(kernel, 0.25)
        share = main_thread_share(kernel, n)
        latency = sigint_latency(kernel.name)
        print(f"{kernel.name} {kernel.gil} share {share:.3f} sigint {latency * 1000:.2f} ms")


if __name__ == "__main__":
    main()
