"""Print gilfree.testing's verdict and evidence for each known case of
tests/test_testing.py (the README's table for extension authors).

Usage: python bench/gil_verdicts.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe
from test_testing import KNOWN

from gilfree.testing import check_gil


def main() -> None:
    print(f"Machine: {describe()}")
    print()
    columns = ["case", "expected", "verdict", "GIL contention", "probe rounds completed"]
    print("| " + " | ".join([*columns, "calls", "ms per call"]) + " |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name, fn, args, expected in KNOWN:
        e = check_gil(fn, args)
        rounds = f"{e.reading.samples} of {e.expected_rounds}"
        print(
            f"| `{name}` | {expected} | {e.verdict} | {e.contention:.1%} | {rounds} | "
            f"{e.calls} | {e.call_s * 1000:.1f} |"
        )


if __name__ == "__main__":
    main()
