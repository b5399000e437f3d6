"""`gilfree check` and gilfree.check(): the user's own function on every backend.

The verdicts are asserted on functions whose GIL behaviour is not in doubt
(time.sleep releases it; a Python loop holds it), with the issue's wide
margins; a 2-CPU machine is enough for both.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import userfuncs
from conftest import live_children

import gilfree
from gilfree import check, check_call
from gilfree.backends import BACKENDS
from gilfree.checker import Calls, ResolveError, as_kernel, resolve
from gilfree.cli import main, parse_call_args
from gilfree.measure import calibrate
from gilfree.report import read_json

pytestmark = pytest.mark.usefixtures("fewer_rounds")


HAS_INTERPRETERS = BACKENDS["interpreters"].availability() is None
TESTS = Path(__file__).resolve().parent


def test_calls_runs_the_function_n_times() -> None:
    seen: list[int] = []
    calls = Calls(seen.append, (7,))
    assert calls(3) == 3
    assert seen == [7, 7, 7]
    assert Calls(dict, (), {"a": 1})(2) == 2


def test_as_kernel_names_the_function_and_refuses_non_callables() -> None:
    kernel = as_kernel(userfuncs.spin, (10,))
    assert kernel.name == "userfuncs:spin"
    assert kernel.gil == "unknown" and not kernel.cancellable
    assert kernel(4) == 4  # four calls
    with pytest.raises(TypeError, match="must be callable"):
        as_kernel(42)  # type: ignore[arg-type]


@pytest.mark.needs_gil
def test_a_function_that_releases_the_gil_gets_threads_help() -> None:
    # Rounds are added while the interval is wide (as outside the tests): a
    # sleep keeps no CPU busy, so only the speedup shows threads helping, and
    # over 5 rounds or fewer one round the host delayed spans the interval.
    report = check_call(
        userfuncs.nap, (0.04,), repeats=3, max_rounds=12, backends=["threads", "processes"]
    )
    assert report.function == "userfuncs:nap"
    threads = next(r for r in report.results if r.backend == "threads")
    assert threads.ok and threads.speedup > 1.6
    assert threads.contention is not None and threads.contention < 0.3
    assert report.verdict.startswith("threads help: ")
    # Read from the GIL state: a sleep holds it only to enter and leave the
    # call, which a busy CI host can stretch to 1% or 2%, never near half.
    assert threads.gil_held is not None and threads.gil_held < 0.05
    assert f"it holds the GIL {threads.gil_held:.0%}" in report.verdict
    assert 0.035 < report.serial_call_s < 0.1


@pytest.mark.slow  # a verdict from the default rounds: up to the 30 s budget
def test_a_gil_bound_function_is_called_gil_bound_with_what_helps() -> None:
    # About 0.25 s of pure Python per call, 5 repeats: shorter calls let the
    # noise of a shared 2-CPU machine decide between "GIL-bound" and "partly".
    n = calibrate("python", 0.25)
    report = check_call(userfuncs.spin, (n,), repeats=5, backends=["threads", "processes"])
    threads = next(r for r in report.results if r.backend == "threads")
    assert threads.contention is not None and threads.contention > 0.5
    # The word follows the share of its time one call holds the GIL (read from
    # the GIL's state), not the speedup, which a noisy host moves: a GIL-bound
    # pair of threads has read 1.15-1.2x when the serial baseline ran slow.
    assert threads.gil_held is not None and threads.gil_held >= 0.9
    assert report.verdict.startswith("GIL-bound: it holds the GIL "), report.verdict
    assert "processes give" in report.verdict
    assert "; or release the GIL in the hot loop; py-spy record --gil" in report.verdict


def test_check_passes_every_argument_to_the_function() -> None:
    report = check(userfuncs.count_nogil, 1000, kernel="cython-gil")
    assert len(report.results) == len(("threads", "processes", "interpreters"))
    assert report.calls == 1
    assert all(r.n == 1 for r in report.results)


def test_weak_scaling_counts_every_call() -> None:
    report = check_call(userfuncs.count_nogil, (10,), workers=3, calls=4, repeats=1)
    for r in report.results:
        if r.ok:
            assert r.scaling == "weak"
            assert [w.iterations for w in r.runs[0].workers] == [4, 4, 4]


def test_a_function_that_raises_stops_the_check_with_its_traceback() -> None:
    with pytest.raises(ValueError, match="boom") as info:
        check(userfuncs.boom, 1, x=2)
    frames = [f.name for f in info.traceback]
    assert "boom" in frames  # the function's own frame is in the traceback
    assert live_children() == []


def test_an_unpicklable_callable_gets_an_unsupported_cell_and_the_rest_runs() -> None:
    backends = ["threads", "processes", "interpreters"]
    report = check_call(lambda: None, repeats=1, backends=backends, start_method="spawn")
    by = {r.backend: r for r in report.results}
    assert by["threads"].ok
    assert not by["processes"].ok and "cannot be pickled" in by["processes"].reason
    assert not by["interpreters"].ok  # unpicklable, or no subinterpreters before 3.12
    assert live_children() == []


@pytest.mark.skipif(not HAS_INTERPRETERS, reason="needs CPython 3.12+ subinterpreters")
def test_a_function_that_cannot_run_in_a_subinterpreter_gets_a_cell_saying_so() -> None:
    report = check_call(userfuncs.needs_numpy, (1000,), repeats=1)
    by = {r.backend: r for r in report.results}
    assert by["threads"].ok and by["processes"].ok
    assert not by["interpreters"].ok
    assert "cannot run in a subinterpreter" in by["interpreters"].reason
    assert "ImportError" in by["interpreters"].reason or "numpy" in by["interpreters"].reason


@pytest.mark.skipif(not HAS_INTERPRETERS, reason="needs CPython 3.12+ subinterpreters")
def test_an_importable_function_runs_in_subinterpreters() -> None:
    import glob
    import tempfile

    pattern = os.path.join(tempfile.gettempdir(), "gilfree-kernel-*.pickle")
    before = set(glob.glob(pattern))
    # A large argument travels through a temporary file, not the source code.
    report = check_call(userfuncs.nap, (0.01,), {}, repeats=1, backends=["interpreters"])
    big = check_call(len, (b"x" * 2**25,), repeats=1, backends=["interpreters"], calls=1000)
    for cell in (*report.results, *big.results):
        assert cell.ok, cell.reason
        assert cell.gil is not None  # one meter per subinterpreter
    assert big.results[0].setup_median_s < 5
    assert set(glob.glob(pattern)) == before  # the temporary files are gone


def test_too_short_calls_are_flagged() -> None:
    report = check_call(userfuncs.count_nogil, (10,), repeats=1, backends=["threads"])
    assert "too short to judge" in report.warnings[0]
    assert "calls=N" in report.warnings[0]


def test_report_prints_table_and_verdict_and_serialises() -> None:
    report = check_call(userfuncs.nap, (0.02,), repeats=1, backends=["threads"])
    text = str(report)
    assert "check: userfuncs:nap" in text
    assert text.splitlines()[-1] == f"userfuncs:nap: {report.verdict}"
    data = report.to_dict()
    json.dumps(data, default=str)
    assert data["verdict"] == report.verdict and data["calls"] == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("userfuncs", "not of the form module:function"),
        ("userfuncs:", "not of the form"),
        ("no_such_module_xyz:f", "no module named 'no_such_module_xyz'"),
        ("userfuncs:nope", "'userfuncs' has no attribute 'nope'"),
        ("userfuncs:spin.deeper", "'userfuncs:spin' has no attribute 'deeper'"),
        ("userfuncs:NOT_CALLABLE", "is an int, not a callable"),
    ],
)
def test_resolve_errors_say_what_is_wrong(target: str, message: str) -> None:
    with pytest.raises(ResolveError, match=message):
        resolve(target)


def test_resolve_finds_dotted_attributes() -> None:
    assert resolve("os.path:join") is os.path.join
    assert resolve("userfuncs:spin") is userfuncs.spin


def test_command_line_arguments_are_python_values_or_strings() -> None:
    args, kwargs = parse_call_args(["10**3", "b'x'*3", "[1, 2]", "data.csv", "k='v'", "m=2"])
    assert args == (1000, b"xxx", [1, 2], "data.csv")
    assert kwargs == {"k": "v", "m": 2}
    assert parse_call_args(["list(range(3))"]) == (([0, 1, 2],), {})
    assert parse_call_args(["open"]) == (("open",), {})  # not a value builder: a string
    assert parse_call_args(["__import__('os')"]) == (("__import__('os')",), {})


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nosuchmod_abc:f", "no module named 'nosuchmod_abc'"),
        ("os:nope", "'os' has no attribute 'nope'"),
        ("os:sep", "is a str, not a callable"),
        ("os", "not of the form module:function"),
    ],
)
def test_cli_resolution_errors_are_one_line_and_exit_2(
    target: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", target])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


@pytest.mark.needs_gil
def test_cli_check_prints_a_verdict_and_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "check.json"
    argv = ["check", "userfuncs:nap", "0.05", "-b", "threads", "--repeats", "2"]
    code = main([*argv, "--max-rounds", "12", "--json", str(out)])  # (see the test above)
    assert code == 0
    text = capsys.readouterr().out
    assert "userfuncs:nap: threads help:" in text
    data = read_json(str(out))
    assert data["end"]["check"]["function"] == "userfuncs:nap"
    assert data["end"]["check"]["verdict"].startswith("threads help")
    assert data["results"][0]["derived"]["contention"] is not None


def test_cli_check_of_a_raising_function_exits_1_with_its_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "userfuncs:boom", "1", "-b", "threads"]) == 1
    err = capsys.readouterr().err
    assert "userfuncs:boom raised" in err
    assert "Traceback" in err and "ValueError: boom" in err


@pytest.mark.parametrize("backend", ["threads", "processes"])
def test_a_keyboardinterrupt_the_function_raises_fails_its_cell_not_the_run(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Raised by the function in its workers: the cell fails (exit 1), the
    # log ends "failed", and nothing reads as Ctrl-C.
    path = tmp_path / "out.jsonl"
    argv = ["check", "userfuncs:interrupt_in_workers", "-b", backend, "--repeats", "1"]
    code = main([*argv, "--precision", "off", "--json", str(path)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "interrupted" not in err
    data = read_json(str(path))
    assert data["status"] == "failed"
    (cell,) = data["results"]
    assert cell["status"] == "failed"
    assert "KeyboardInterrupt" in cell["reason"]


def test_sys_exit_in_the_function_is_its_traceback_not_gilfrees_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "out.jsonl"
    code = main(["check", "userfuncs:exit_now", "3", "-b", "threads", "--json", str(path)])
    err = capsys.readouterr().err
    assert code == 1, err  # not gilfree ending silently with the function's 3
    assert "userfuncs:exit_now raised; the check stopped." in err
    assert "Traceback" in err and "SystemExit: 3" in err
    assert "FunctionExit: userfuncs:exit_now raised SystemExit(3) itself" in err
    assert read_json(str(path))["status"] == "failed"


def test_a_module_that_exits_at_import_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "exits_at_import.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit) as info:
        main(["check", "exits_at_import:f"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "importing 'exits_at_import' failed: it raised SystemExit(3) at import" in err


def test_a_real_sigint_still_interrupts_where_the_function_raised_one_counts_as_its_own() -> None:
    # The same exception type, told apart by whether a SIGINT arrived: the
    # serial baseline runs in the main thread, where Ctrl-C lands.
    from gilfree._watch import counting_sigints
    from gilfree.checker import FunctionExit

    with counting_sigints():
        with pytest.raises(KeyboardInterrupt):
            Calls(userfuncs.sigint_self)(1)
        with pytest.raises(FunctionExit, match="raised KeyboardInterrupt"):
            Calls(_raise_keyboard_interrupt)(1)


def _raise_keyboard_interrupt() -> None:
    raise KeyboardInterrupt


def test_cli_check_in_a_subprocess_from_the_users_folder() -> None:
    # As a user runs it: the module sits in the current folder.
    proc = subprocess.run(
        [sys.executable, "-m", "gilfree", "check", "userfuncs:spin", "10**5", "--repeats", "1"],
        cwd=TESTS,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert "userfuncs:spin: " in proc.stdout


def test_check_is_public() -> None:
    assert gilfree.check is check and callable(gilfree.check)
    assert {"check", "check_call", "CheckReport"} <= set(gilfree.__all__)


# ----------------------------------------------------------- context, BLAS, py-spy


def test_results_record_the_build_numpy_and_thread_pools() -> None:
    import numpy as np

    r = gilfree.run("cython-nogil", "threads", n=10**5, repeats=1, precision=None)
    assert re.fullmatch(r"\d+\.\d+\.\d+", r.context.build["cython"])
    assert r.context.build["compiler"] not in ("", "unknown")
    assert r.context.numpy == np.__version__
    np.ones((8, 8)) @ np.ones((8, 8))  # BLAS loaded now
    pools = gilfree.run("cython-nogil", "threads", n=10**5, repeats=1).context.thread_pools
    assert any(p["user_api"] == "blas" and p["num_threads"] >= 1 for p in pools)


def test_blas_threads_limits_the_pools_while_measuring_and_restores_them() -> None:
    from threadpoolctl import threadpool_info

    userfuncs.BLAS_SEEN.clear()
    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    env = os.environ.get("OPENBLAS_NUM_THREADS")
    report = check_call(
        userfuncs.blas_threads_seen,
        backends=["threads"],
        repeats=1,
        precision=None,
        blas_threads=1,
    )
    assert userfuncs.BLAS_SEEN and all(seen == [1] * len(seen) for seen in userfuncs.BLAS_SEEN)
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before
    assert os.environ.get("OPENBLAS_NUM_THREADS") == env
    assert report.blas_threads == 1 and not any("thread pools" in w for w in report.warnings)


def test_an_unlimited_multithreaded_blas_pool_is_warned_about() -> None:
    from threadpoolctl import threadpool_info

    report = check_call(userfuncs.blas_threads_seen, backends=["threads"], repeats=1)
    if not any(p["num_threads"] > 1 for p in threadpool_info()):
        pytest.skip("BLAS runs one thread here: nothing to warn about")
    assert any("--blas-threads 1" in w for w in report.warnings)


def test_a_gil_bound_check_points_to_py_spy() -> None:
    from test_measure import fake

    from gilfree.checker import CheckReport

    cells = (
        fake("f", "threads", [0.98, 1.0, 1.01], contention=0.9, busy=1.0, capacity=1.9),
        fake("f", "processes", [1.9, 1.95, 2.0]),
    )
    report = CheckReport("f", 1, cells)
    assert report.verdict.startswith("GIL-bound")
    assert "py-spy record --gil --native" in report.verdict


def test_cli_blas_threads_is_checked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["check", "userfuncs:spin", "10", "--blas-threads", "0"])
    assert info.value.code == 2
    assert "--blas-threads takes a whole number from 1 to 4096" in capsys.readouterr().err
