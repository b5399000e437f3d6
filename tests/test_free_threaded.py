"""On a free-threaded CPython (3.13t), for real: no simulated answers.

These run only on such a build (``.ci/run`` builds one from Debian's
python3.13 source with ``scripts/free-threaded-python`` and runs the suite
on it). Each property is also checked with ``PYTHON_GIL=1`` on the same
interpreter, in a child process: then gilfree must work as on a GIL build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from gilfree import KERNELS, GILMeter, countdown, run
from gilfree.backends import BACKENDS
from gilfree.measure import calibrate
from gilfree.report import verdict
from gilfree.testing import assert_holds_gil, check_gil

pytestmark = pytest.mark.skipif(
    not sysconfig.get_config_var("Py_GIL_DISABLED"),
    reason="needs a free-threaded CPython (3.13t); scripts/free-threaded-python builds one",
)
HERE = Path(__file__).resolve().parent


def _python(code: str, gil: str | None = None) -> str:
    """Run ``code`` in a fresh interpreter of this build (``gil``: PYTHON_GIL)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    if gil is not None:
        env["PYTHON_GIL"] = gil
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_importing_gilfree_and_running_every_kernel_leaves_the_gil_off() -> None:
    out = _python(
        "import sys, warnings\n"
        "warnings.simplefilter('error')\n"  # a module turning the GIL on warns
        "import gilfree\n"
        "for k in gilfree.KERNELS.values():\n"
        "    assert k(10**5) == 10**5, k.name\n"
        "print(sys._is_gil_enabled())\n"
    )
    assert out.strip() == "False"


def test_info_says_free_threaded_and_gil_off() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gilfree", "info"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "free-threaded (Py_GIL_DISABLED)" in done.stdout
    assert "disabled right now" in done.stdout


def test_the_meter_reads_no_gil() -> None:
    with GILMeter() as meter:
        countdown(10**7, "python")
    reading = meter.reading()
    assert reading.gil is False and reading.contention is None
    assert reading.short() == "no GIL"


@pytest.mark.parametrize("kernel", ["python", "cython-gil"])
def test_threads_are_measured_and_judged_without_a_gil(kernel: str) -> None:
    # Sized in time, not iterations: 4 * 10**6 of the C loop took 0.9 ms on a
    # fast core, under the 1 ms a serial run needs to be judged at all.
    n = calibrate(kernel, 0.02)
    # 5 rounds: a round the host put out still leaves the 3 an interval
    # needs (of 3, one out left 2, and "a point alone decides nothing").
    r = run(kernel, "threads", workers=2, n=n, repeats=5, precision=None)
    assert r.ok and not r.context.gil_enabled and r.context.free_threaded_build
    assert r.gil is not None and r.gil.short() == "no GIL"
    said = verdict([r], kernel)
    # Judged without a GIL; rounds the host's changing speed put out (all of
    # them, or more than half) are named, and make the verdict inconclusive,
    # as on any build.
    if r.flagged:
        assert said.startswith("inconclusive: no GIL, threads "), said
        assert "faster than their busy CPUs allow" in said
    else:
        assert said.startswith("no GIL: threads "), said


def test_gilfree_testing_refuses_to_judge_at_once() -> None:
    with pytest.raises(RuntimeError, match=r"no GIL to check.*PYTHON_GIL=1"):
        check_gil(countdown, 10**9, min_seconds=60)  # refused before it runs


def test_with_python_gil_1_it_works_as_on_a_gil_build() -> None:
    out = _python(
        "import json, sys\n"
        "from gilfree import GILMeter, countdown, run\n"
        "from gilfree.report import verdict\n"
        "from gilfree.testing import assert_holds_gil, assert_releases_gil\n"
        "assert sys._is_gil_enabled()\n"
        "assert_holds_gil(countdown, 3 * 10**6, 'python')\n"
        "assert_releases_gil(countdown, 10**8, 'cython-nogil')\n"
        "r = run('python', 'threads', workers=2, n=4 * 10**6, repeats=3, precision=None)\n"
        "print(json.dumps({'gil': r.context.gil_enabled, 'wait': r.gil.short(),\n"
        "                  'verdict': verdict([r], 'python')}))\n",
        gil="1",
    )
    seen = json.loads(out)
    assert seen["gil"] is True and seen["wait"].endswith("%")
    assert not seen["verdict"].startswith("no GIL")


def test_subinterpreters_work_or_say_why() -> None:
    backend = BACKENDS["interpreters"]
    reason = backend.availability()
    if reason is None:
        r = run("cython-nogil", "interpreters", workers=2, n=10**6, repeats=2, precision=None)
        assert r.ok, r.reason
    else:
        assert "interpreter" in reason.lower() or "3.12" in reason, reason


def test_every_kernel_runs_on_threads_in_parallel_without_errors() -> None:
    for kernel in KERNELS:
        r = run(kernel, "threads", workers=2, n=10**6, repeats=2, precision=None)
        assert r.ok and r.runs[0].iterations == 10**6, kernel


def test_assert_holds_gil_is_refused_too() -> None:
    with pytest.raises(RuntimeError, match="no GIL to check"):
        assert_holds_gil(countdown, 10**6, "python")
