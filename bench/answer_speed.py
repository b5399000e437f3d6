"""How fast gilfree answers, and whether its words hold: `gilfree demo` and
`gilfree check` on functions of about 10 ms, timed end to end as a user runs
them, each word compared with what the code does to the GIL.

    python bench/answer_speed.py --demo-runs 10 --check-runs 3
    python bench/answer_speed.py --demo-runs 3 --check-runs 3 --noise

Every run is a fresh ``python -m gilfree`` process with the defaults; its
wall time includes start-up. A word is *decisive* unless it is
``inconclusive``; it is *wrong* when it contradicts the code (the demo's
kernels and the check's functions below: a GIL-holding loop read anything
but GIL-bound, a GIL-free one read GIL-bound or holding the GIL). With
``--noise``, another process takes a CPU for a second and gives it back for
a second throughout (tests/noise.py), and ``inconclusive`` is allowed.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _machine import describe  # noqa: E402
from noise import noise  # noqa: E402

from gilfree.measure import calibrate  # noqa: E402
from gilfree.report import verdict_word  # noqa: E402
from gilfree.results import load  # noqa: E402

#: The words each demo kernel may read (numpy's share is its own: any word
#: but inconclusive is decisive, none is wrong).
DEMO_RIGHT: dict[str, set[str] | None] = {
    "python": {"GIL-bound"},
    "cython-object": {"GIL-bound"},
    "cython-gil": {"GIL-bound"},
    "cython-nogil": {"threads help"},
    "numpy": None,
}
#: A warning that asks for more time: the demo must not need one.
MORE_TIME = "give it more time"


def _gilfree(args: list[str], cwd: Path) -> tuple[float, list]:  # type: ignore[type-arg]
    """Run ``gilfree ARGS`` as a user would; its wall time and its results."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        cmd = [sys.executable, "-m", "gilfree", *args, "--no-progress"]
        cmd += ["--format", "json", "-o", str(out)]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        took = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        return took, list(load(str(out)).results)


def _judge(word: str, right: set[str] | None) -> str:
    if word == "inconclusive":
        return "inconclusive"
    return "right" if right is None or word in right else "WRONG"


def demo(runs: int) -> tuple[list[float], int, int, int]:
    times, undecided, wrong, warned = [], 0, 0, 0
    for i in range(runs):
        took, results = _gilfree(["demo"], HERE)
        times.append(took)
        words = {k: verdict_word(results, k) for k in DEMO_RIGHT}
        judged = {k: _judge(w, DEMO_RIGHT[k]) for k, w in words.items()}
        more = sum(MORE_TIME in w for r in results for w in r.warnings)
        undecided += sum(j == "inconclusive" for j in judged.values())
        wrong += sum(j == "WRONG" for j in judged.values())
        warned += more
        shown = ", ".join(f"{k} {w}" + ("" if judged[k] == "right" else f" ({judged[k]})")
                          for k, w in words.items())  # fmt: skip
        print(f"demo run {i + 1}: {took:5.1f} s; {shown}; 'more time' warnings: {more}")
    return times, undecided, wrong, warned


#: check targets of about 10 ms a call: (module:function, argument, right words).
def _targets() -> list[tuple[str, str, set[str]]]:
    n_spin = calibrate("python", 0.01)
    n_mixed = calibrate("mixed", 0.01)
    return [
        ("userfuncs:spin", str(n_spin), {"GIL-bound"}),
        ("userfuncs:nap", "0.01", {"threads help"}),
        ("userfuncs:count_nogil", str(calibrate("cython-nogil", 0.01)), {"threads help"}),
        ("userfuncs:mixed_half", str(n_mixed), {"holds the GIL"}),
    ]


def check(runs: int) -> tuple[list[float], int, int]:
    times, undecided, wrong = [], 0, 0
    for target, arg, right in _targets():
        for i in range(runs):
            took, results = _gilfree(["check", target, arg], HERE.parent / "tests")
            times.append(took)
            word = verdict_word(results, results[0].kernel)
            judged = _judge(word, right)
            undecided += judged == "inconclusive"
            wrong += judged == "WRONG"
            mark = "" if judged == "right" else f" ({judged})"
            print(f"check {target} {arg} run {i + 1}: {took:4.1f} s; {word}{mark}")
    return times, undecided, wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-runs", type=int, default=10)
    parser.add_argument("--check-runs", type=int, default=3)
    parser.add_argument("--noise", action="store_true", help="a CPU hog, 1 s on, 1 s off")
    args = parser.parse_args()
    print(f"Machine: {describe()}")
    hog = "with a CPU hog on one core, 1 s on, 1 s off" if args.noise else "quiet"
    print(f"gilfree demo and gilfree check (10 ms calls), defaults, {hog}:")
    with noise(1.0, 1.0) if args.noise else contextlib.nullcontext():
        d_times, d_undecided, d_wrong, d_warned = demo(args.demo_runs)
        c_times, c_undecided, c_wrong = check(args.check_runs)
    print(
        f"demo: median {statistics.median(d_times):.1f} s, slowest {max(d_times):.1f} s "
        f"(target <= 15 s); words: {d_wrong} wrong, {d_undecided} inconclusive of "
        f"{len(d_times) * len(DEMO_RIGHT)}; 'give it more time' warnings: {d_warned}"
    )
    print(
        f"check: median {statistics.median(c_times):.1f} s, slowest {max(c_times):.1f} s "
        f"(target <= 5 s); words: {c_wrong} wrong, {c_undecided} inconclusive of {len(c_times)}"
    )


if __name__ == "__main__":
    main()
