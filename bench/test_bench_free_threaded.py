"""Free-threaded CPython: threads that scale, and the same interpreter with
its GIL turned back on, measured side by side in one run.

On a free-threaded build (3.13t), one ``gilfree run --python`` measures
``python`` and ``cython-gil`` on 2 threads twice: on this interpreter with
the GIL disabled, and on the same interpreter with ``PYTHON_GIL=1``; the
builds alternate and one thread's cost of each is measured against the
other in the same run. The figures the docs quote: at least 1.7x without
the GIL, at most 1.15x with it. Elsewhere it skips.

    python3.13t -m pytest bench/test_bench_free_threaded.py --benchmark-columns=median,rounds
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig

import pytest

pytestmark = pytest.mark.skipif(
    not sysconfig.get_config_var("Py_GIL_DISABLED"),
    reason="needs a free-threaded CPython (3.13t); scripts/free-threaded-python builds one",
)

#: (lowest acceptable speedup, highest) on 2 threads, by whether the GIL is on.
FIGURES = {False: (1.7, None), True: (None, 1.15)}


def _side_by_side(quick: bool) -> dict[str, object]:
    sizing = ["-n", "10**5", "--rounds", "1", "--precision", "off"] if quick else ["--seconds", "1"]
    cmd = [sys.executable, "-m", "gilfree", "run", "-k", "python,cython-gil", "-b", "threads"]
    cmd += ["-w", "2", *sizing, "--max-time", "10" if quick else "120", "--no-progress"]
    cmd += ["--python", sys.executable, "--python", f"PYTHON_GIL=1 {sys.executable}"]
    done = subprocess.run(
        [*cmd, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_threads_scale_without_the_gil_and_not_with_it(benchmark, quick: bool) -> None:  # type: ignore[no-untyped-def]
    run = benchmark.pedantic(_side_by_side, args=(quick,), rounds=1, iterations=1)
    from gilfree.results import Result

    cells = [Result.from_dict(c, run["context"]) for c in run["results"]]
    assert len(cells) == 4 and all(c.ok for c in cells), [c.reason for c in cells]
    if quick:
        return
    for c in cells:
        gil = c.context.gil_enabled
        key = f"{c.kernel} {'PYTHON_GIL=1' if gil else 'no GIL'}"
        benchmark.extra_info[key] = {"speedup": c.speedup, "ci95": list(c.speedup_ci())}
        if c.thread_cost is not None:
            benchmark.extra_info[key]["one_thread_cost"] = c.thread_cost.ratio
    for c in cells:
        low, high = FIGURES[c.context.gil_enabled]
        if low is not None:
            assert c.speedup >= low, (c.kernel, c.speedup)
        if high is not None:
            assert c.speedup <= high, (c.kernel, c.speedup)
