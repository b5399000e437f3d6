"""Failures leave nothing behind: Ctrl-C, dying workers, timeouts, odd input,
repeated use, and many threads at once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import live_children, our_threads, threads_settle_to
from interrupting import alive, cli_command, interrupt_cli

from gilfree import KERNELS, Cancelled, run, sweep
from gilfree._watch import Running
from gilfree.backends import BACKENDS, RunTimeout, WorkerError
from gilfree.report import read_json

HERE = Path(__file__).resolve().parent
NEW_INTERPRETERS = sys.version_info >= (3, 12)
needs_interpreters = pytest.mark.skipif(
    not NEW_INTERPRETERS, reason="subinterpreters with their own GIL need CPython 3.12+"
)
#: The issue's bound: Ctrl-C ends the process within a second.
SIGINT_EXIT_S = 1.0


def _assert_clean_interrupt(  # type: ignore[no-untyped-def]
    result, json_path: Path, code: int = 130, said: str = "interrupted"
) -> dict:  # type: ignore[type-arg]
    assert result.returncode == code, result.stderr
    assert f"gilfree: {said}" in result.stderr
    # Dask too: the AllExit of the gather it abandons is not logged.
    assert "Traceback" not in result.stderr and "AllExit" not in result.stderr
    assert result.leftovers == set(), "worker processes outlived the CLI"
    assert result.latency_s < SIGINT_EXIT_S, f"took {result.latency_s:.2f} s to exit"
    data = read_json(str(json_path))
    assert data["status"] == "interrupted"
    return data


# ------------------------------------------------------------------ Ctrl-C


@pytest.mark.parametrize(
    ("backend", "kernel"),
    [
        # Threads and interpreters in the default run, the rest of the matrix in -m slow.
        pytest.param("threads", "python", marks=pytest.mark.slow),
        ("threads", "cython-gil"),  # holds the GIL: the main thread cannot run Python
        pytest.param("threads", "cython-object", marks=pytest.mark.slow),
        pytest.param("threads", "cython-nogil", marks=pytest.mark.slow),
        pytest.param("processes", "python", marks=pytest.mark.slow),
        # Quick: test_sigterm_stops_a_run_as_ctrl_c_does[processes-cython-nogil]
        # stops a processes cell through the same handler.
        pytest.param("processes", "cython-gil", marks=pytest.mark.slow),
        pytest.param("interpreters", "python", marks=needs_interpreters),
        pytest.param("interpreters", "cython-gil", marks=[needs_interpreters, pytest.mark.slow]),
        pytest.param("dask", "python", marks=pytest.mark.slow),
    ],
)
def test_ctrl_c_stops_run_within_a_second(backend: str, kernel: str, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    # A Dask cell starts a cluster (its worker processes) before it runs
    # anything: wait longer, on longer work.
    # Elsewhere: half a second of work per worker, Ctrl-C a quarter second after
    # the workers appear, so that the cell is still running on a loaded host
    # (in a round, the capacity pair's processes come after the cell's).
    after, seconds = (2.0, 3.0) if backend == "dask" else (0.25, 0.5)
    args = cli_command("run", backend, kernel, seconds)
    result = interrupt_cli(args, backend, path, after_s=after)
    _assert_clean_interrupt(result, path)
    assert "interrupted before any cell was measured" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("demo", marks=pytest.mark.slow),
        pytest.param("sweep", marks=pytest.mark.slow),
        "check",
    ],
)
def test_ctrl_c_stops_every_measuring_command(command: str, tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    args = cli_command(command, "threads", "python")
    result = interrupt_cli(args, "threads", path, cwd=tmp_path)
    _assert_clean_interrupt(result, path)


@pytest.mark.slow  # interrupts a sweep after its first worker count
def test_ctrl_c_prints_and_keeps_the_cells_already_measured(tmp_path: Path) -> None:
    # Two worker counts: the cell x1 completes, Ctrl-C lands in the cell x2.
    path = tmp_path / "out.jsonl"
    args = cli_command("sweep", "processes", "cython-nogil")
    args[args.index("-w") + 1] = "1,2"
    # Processes: "2 children" appear only in the x2 cell.
    result = interrupt_cli(args, "processes", path)
    data = _assert_clean_interrupt(result, path)
    assert [(c["backend"], c["workers"], c["status"]) for c in data["results"]] == [
        ("processes", 1, "ok")
    ]
    assert data["end"]["cells"] == 1
    assert "interrupted: the cells measured before Ctrl-C" in result.stdout
    assert "processes" in result.stdout


@pytest.mark.parametrize(
    ("backend", "kernel"), [("threads", "python"), ("processes", "cython-nogil")]
)
def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path: Path, backend: str, kernel: str) -> None:
    # A service manager or `timeout` sends SIGTERM: the workers stop, the
    # cells so far are printed, the log ends "interrupted", and the status
    # says which signal it was (128 + 15).
    path = tmp_path / "out.jsonl"
    # Threads: a sweep, stopped in its second cell. Processes: one cell (the
    # processes appear only once it starts, after the serial baseline).
    args = cli_command("sweep" if backend == "threads" else "run", backend, kernel)
    if backend == "threads":
        args[args.index("-w") + 1] = "1,2"
    result = interrupt_cli(args, backend, path, sig=signal.SIGTERM)
    data = _assert_clean_interrupt(result, path, code=143, said="terminated (SIGTERM)")
    assert data["end"]["cells"] == len(data["results"])


def test_sigterm_before_the_first_cell_leaves_a_log_that_says_so(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "gilfree", *cli_command("run", "threads", "python", 2.0)]
    proc = subprocess.Popen(
        [*cmd, "--json", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (path.exists() and path.read_text()):
            time.sleep(0.02)
        time.sleep(0.3)  # in the serial baseline, which runs for 4 s
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "before any cell was measured" in err and "Traceback" not in err
    data = read_json(str(path))
    assert data["status"] == "interrupted" and data["results"] == []


@pytest.mark.slow  # kills a sweep after its first cell
def test_a_killed_run_keeps_its_cells_and_reads_as_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "gilfree", *cli_command("sweep", "threads", "cython-nogil")]
    cmd[cmd.index("-w") + 1] = "1,2"
    proc = subprocess.Popen([*cmd, "--json", str(path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            not path.exists() or path.read_text().count('"record": "cell"') < 1
        ):
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no clean-up runs, no end line is written
    finally:
        proc.wait()
    data = read_json(str(path))
    assert data["status"] == "cut off" and data["end"] is None
    assert len(data["results"]) >= 1 and data["results"][0]["status"] == "ok"


@pytest.mark.slow  # kills a parent mid-run and waits for its workers to notice
def test_orphaned_worker_processes_do_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    # SIGKILL runs no clean-up in the parent: the workers must notice alone.
    path = tmp_path / "out.jsonl"
    args = cli_command("run", "processes", "cython-nogil")
    cmd = [sys.executable, "-m", "gilfree", *args, "--json", str(path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left = _kill_once_it_has_workers(proc, within_s=5)
    assert left == set(), "worker processes outlived the killed CLI"


def _kill_once_it_has_workers(
    proc: subprocess.Popen,  # type: ignore[type-arg]
    within_s: float,
    settle_s: float = 0.0,
) -> set[int]:
    """SIGKILL ``proc`` once it has two live descendants (and ``settle_s``
    more), then wait up to ``within_s`` for every descendant it had to end;
    the ones still alive, killed so that a failure leaves nothing running."""
    from interrupting import _children

    try:
        deadline = time.monotonic() + 120
        kids: set[int] = set()
        while time.monotonic() < deadline and len(alive(kids)) < 2:
            kids = _children(proc.pid)
            time.sleep(0.02)
        time.sleep(settle_s)
        kids = alive(_children(proc.pid))
        assert len(kids) >= 2, "the workers never started"
        proc.kill()
    finally:
        proc.wait()
    gone_by = time.monotonic() + within_s
    while alive(kids) and time.monotonic() < gone_by:
        time.sleep(0.02)
    left = alive(kids)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


KILLED_PARENT_SCRIPT = """
import sys
from gilfree.backends import ProcessesBackend
from gilfree.kernels import KERNELS

if __name__ == "__main__":
    ProcessesBackend(start_method=sys.argv[1]).run(KERNELS["cython-nogil"], [10**12, 10**12])
"""


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_no_worker_outlives_a_killed_parent_by_a_second(tmp_path: Path, method: str) -> None:
    # A forkserver worker's parent is the fork server, not gilfree: the
    # parent-death signal alone left such workers (and the fork server and
    # resource tracker with them) running for 15-30 s. Every process started
    # for the run must be gone within a second of the gilfree process.
    script = tmp_path / "run_processes.py"
    script.write_text(KILLED_PARENT_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), method])
    # settle: the workers are past start-up, counting
    left = _kill_once_it_has_workers(proc, within_s=1.0, settle_s=0.5)
    assert left == set(), f"{method}: {len(left)} process(es) outlived the killed parent by 1 s"


def test_a_worker_waiting_at_the_start_line_leaves_when_orphaned() -> None:
    """Where PR_SET_PDEATHSIG is missing (not Linux), a ready worker whose
    parent is gone must not wait for a go that never comes: it polls its
    parent. Here the death signal is switched off (a fork child inherits the
    patch), the parent exits without saying go, and the worker must end."""
    script = """
import multiprocessing, os
import gilfree.backends.processes as b
b._die_with_parent = lambda: None
ctx = multiprocessing.get_context("fork")
go = ctx.Event()
recv, send = ctx.Pipe(duplex=False)
args = (send, go, "cython-nogil", 10, os.getpid())
p = ctx.Process(target=b._process_main, args=args, daemon=True)
p.start()
assert recv.recv() == ("ready", None)
print(p.pid, flush=True)
os._exit(0)  # no clean-up: the worker is left at the start line
"""
    parent = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert parent.returncode == 0, parent.stderr
    worker = {int(parent.stdout)}
    give_up = time.monotonic() + 5  # it polls every 0.5 s
    while alive(worker) and time.monotonic() < give_up:
        time.sleep(0.05)
    left = alive(worker)
    for pid in left:  # a failure must not leave it waiting for ever
        os.kill(pid, signal.SIGKILL)
    assert left == set(), "an orphaned worker kept waiting at the start line"


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gilfree.backends.processes
    from gilfree.checker import as_kernel

    sys.path.insert(0, str(HERE))
    try:
        import userfuncs
    finally:
        sys.path.remove(str(HERE))
    grace = 0.5
    monkeypatch.setattr(gilfree.backends.processes, "STOP_GRACE_S", grace)
    kernel = as_kernel(userfuncs.ignore_sigterm, (60.0,))
    t0 = time.monotonic()
    with pytest.raises(RunTimeout):
        BACKENDS["processes"].run(kernel, [1, 1], deadline=t0 + 0.5)
    took = time.monotonic() - t0
    # SIGTERM was ignored (the grace passed), then SIGKILL ended it: not the 60 s.
    assert 0.5 + grace <= took < 0.5 + grace + 5
    assert live_children() == []


def test_keyboard_interrupt_in_a_library_call_stops_every_thread() -> None:
    # The process sends itself SIGINT from outside (a GIL-holding kernel keeps
    # any Python thread here from doing it) while two threads count.
    before = len(our_threads())
    killer = subprocess.Popen(["sh", "-c", f"sleep 1; kill -INT {os.getpid()}"])
    try:
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            BACKENDS["threads"].run(KERNELS["cython-gil"], [10**12, 10**12])
        assert time.monotonic() - t0 < 1 + SIGINT_EXIT_S
    finally:
        killer.wait()
    assert len(threads_settle_to(before)) == before


# ------------------------------------------------------------ failing workers


@pytest.mark.parametrize(
    ("how", "why"),
    [("exit", "exit code 3"), ("kill", "killed by SIGKILL"), ("segfault", "killed by SIGSEGV")],
)
def test_a_dying_worker_process_fails_its_cell_and_the_others_run(how: str, why: str) -> None:
    from gilfree.checker import check_call

    sys.path.insert(0, str(HERE))
    try:
        import userfuncs
    finally:
        sys.path.remove(str(HERE))
    report = check_call(
        userfuncs.die_in_worker, (how,), backends=["threads", "processes"], repeats=1, warmups=0
    )
    cells = {r.backend: r for r in report.results}
    assert cells["threads"].status == "ok"
    assert cells["processes"].status == "failed"
    assert why in cells["processes"].reason and "died without a result" in cells["processes"].reason
    assert live_children() == []


def test_a_dying_worker_exits_1_with_the_table(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "gilfree", "check", "userfuncs:die_in_worker", "'exit'"),
            *("-b", "processes,threads", "--repeats", "1", "--json", str(path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,
    )
    assert proc.returncode == 1, proc.stderr
    assert "failed (1)" in proc.stdout and "died without a result (exit code 3)" in proc.stdout
    data = read_json(str(path))
    assert data["status"] == "failed" and data["end"]["failed_cells"] == 1
    assert [c["status"] for c in data["results"]] == ["failed", "ok"]


# ------------------------------------------------------------------ timeouts


@pytest.mark.parametrize(
    ("backend", "kernel"),
    [
        ("serial", "python"),
        ("serial", "cython-gil"),
        ("threads", "python"),
        ("threads", "cython-gil"),
        ("threads", "cython-object"),
        ("threads", "numpy"),
        ("processes", "python"),
        ("processes", "cython-nogil"),
        pytest.param("interpreters", "python", marks=needs_interpreters),
        pytest.param("interpreters", "cython-gil", marks=needs_interpreters),
    ],
)
def test_a_run_past_its_deadline_is_stopped(backend: str, kernel: str) -> None:
    before = len(our_threads())
    t0 = time.monotonic()
    with pytest.raises(RunTimeout, match="overran its deadline"):
        BACKENDS[backend].run(KERNELS[kernel], [10**12] * 2, deadline=t0 + 0.3)
    assert time.monotonic() - t0 < 1.3  # stopped promptly, not run to the end
    assert len(threads_settle_to(before)) == before
    assert live_children() == []


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The threads that stops raise an exception in, as they are raised."""
    import gilfree._watch

    idents: list[int] = []
    real = gilfree._watch.raise_in_thread

    def recording(ident: int, exc_type: object) -> int:
        if exc_type is not None:
            idents.append(ident)
        return real(ident, exc_type)  # type: ignore[no-any-return]

    monkeypatch.setattr(gilfree._watch, "raise_in_thread", recording)
    return idents


def _in_kernel_of(interrupt: bool, stops: int = 1) -> list[str]:
    """A thread enters ``Running.kernel(interrupt)`` and blocks in C while
    ``stops`` stops are made, then runs Python code for a while: what reached
    it (an exception raised from outside waits for the return to Python)."""
    running, entered, stopped, seen = Running(), threading.Event(), threading.Event(), []

    def work() -> None:
        try:
            with running.kernel(interrupt=interrupt):
                entered.set()
                stopped.wait()
                end = time.monotonic() + 0.2  # bytecode after the stop
                while time.monotonic() < end:
                    pass
            seen.append("returned")
        except BaseException as exc:
            seen.append(type(exc).__name__)

    t = threading.Thread(target=work)
    t.start()
    assert entered.wait(10)
    for _ in range(stops):
        running.stop()
    stopped.set()
    t.join(10)
    assert not t.is_alive()
    return seen


def test_a_stop_interrupts_an_interpreted_loop() -> None:
    assert _in_kernel_of(interrupt=True) == ["Cancelled"]


def test_a_stop_never_reaches_a_kernel_the_cancel_generation_stops(sent: list[int]) -> None:
    # An exception raised from outside lands in the next Python code the
    # thread runs (a weakref callback included, where it is unraisable), so
    # compiled kernels are never sent one.
    assert (_in_kernel_of(interrupt=False), sent) == (["returned"], [])


def test_a_second_stop_is_not_sent_to_a_thread_told_once(sent: list[int]) -> None:
    # The deadline, then Ctrl-C: the second must not land in a thread already
    # unwinding from the first.
    assert (_in_kernel_of(interrupt=True, stops=2), len(sent)) == (["Cancelled"], 1)


@pytest.mark.parametrize("backend", ["serial", "threads"])
@pytest.mark.parametrize(
    ("kernel", "raised"), [("cython-gil", False), ("cython-nogil", False), ("python", True)]
)
def test_a_deadline_raises_into_interpreted_loops_only(
    backend: str, kernel: str, raised: bool, sent: list[int]
) -> None:
    with pytest.raises(RunTimeout):
        BACKENDS[backend].run(KERNELS[kernel], [10**12] * 2, deadline=time.monotonic() + 0.2)
    assert bool(sent) == raised, sent


def test_a_loop_that_starts_after_a_stop_is_refused() -> None:
    running = Running()
    running.stop()
    with pytest.raises(Cancelled), running.kernel():
        pytest.fail("a loop entered after the stop would run unstopped")
    with running.kernel(interrupt=False):  # the cancel generation stops these
        pass


@pytest.mark.slow  # waits out the 5 s grace
def test_a_thread_blocked_in_c_is_reported_not_waited_for_forever() -> None:
    from gilfree.checker import as_kernel

    sys.path.insert(0, str(HERE))
    try:
        import userfuncs
    finally:
        sys.path.remove(str(HERE))
    kernel = as_kernel(userfuncs.blocked_in_c, (8.0,))
    t0 = time.monotonic()
    with pytest.raises(WorkerError, match="did not stop within"):
        BACKENDS["threads"].run(kernel, [1], deadline=t0 + 0.2)
    assert time.monotonic() - t0 < 7  # the deadline plus the grace, not the 8 s sleep
    threads_settle_to(len(our_threads()) - 1, timeout=10)  # let the sleeper end


@needs_interpreters
def test_a_subinterpreter_left_blocked_in_c_does_not_keep_the_process_alive(
    tmp_path: Path,
) -> None:
    # CPython's shutdown waits for a subinterpreter's threads for ever: after
    # "did not stop" the CLI wrote its table and end line and then hung.
    path = tmp_path / "out.jsonl"
    argv = ["check", "userfuncs:sleep_in_subinterpreters", "3600", "-b", "interpreters"]
    argv += ["--timeout", "2", "--repeats", "1", "--precision", "off", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gilfree", *argv, "--json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 1, proc.stderr
    assert "did not stop" in proc.stdout
    assert "ending the process at once: 2 subinterpreter worker(s)" in proc.stderr
    assert read_json(str(path))["status"] == "failed"
    # The API: the caller's script runs to its end, then the process ends (1).
    script = (
        "import gilfree, userfuncs\n"
        "r = gilfree.check_call(userfuncs.sleep_in_subinterpreters, (3600,),\n"
        "    backends=['interpreters'], repeats=1, precision=None, timeout=2)\n"
        "print('done', r.results[0].status, flush=True)\n"
    )
    api = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert api.stdout.strip() == "done failed", api.stderr
    assert api.returncode == 1 and "ending the process at once" in api.stderr


@pytest.mark.slow  # quick: test_engine_rules (the rule, exactly) and test_run_with_timeout_raises
def test_timeout_fails_one_cell_and_the_sweep_goes_on() -> None:
    seen = []
    n = 10**9
    results = sweep(
        ["python", "cython-nogil"],
        ["threads"],
        [2],
        n=n,
        repeats=1,
        warmups=0,
        precision=None,
        timeout=1.0,
        on_result=seen.append,
    )
    # python: a serial count of 10**9 takes tens of seconds; the C loop counts
    # it in about 0.3 s, and the threads cell's two runs take as long again.
    python, nogil = results
    assert python.status == "timeout" and "serial baseline" in python.reason
    assert nogil.status == "ok" and nogil.runs[0].iterations == n
    assert seen == results


def test_run_with_timeout_raises() -> None:
    with pytest.raises(RunTimeout):
        run("python", "threads", n=10**10, repeats=1, warmups=0, timeout=0.3)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", True])
def test_bad_timeouts_are_refused(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="timeout"):
        sweep(["cython-nogil"], ["threads"], [1], n=10, timeout=bad)  # type: ignore[arg-type]


def test_cli_timeout_reports_the_cell_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "gilfree", "sweep", "-k", "cython-gil"),
            *("-b", "threads,processes", "-w", "2", "-n", "10**12", "--timeout", "0.5"),
            *("--repeats", "1", "--json", str(path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 1, proc.stderr
    assert "timed out (1)" in proc.stdout and "0.5 s timeout" in proc.stdout
    data = read_json(str(path))
    assert data["status"] == "failed"
    assert [c["status"] for c in data["results"]] == ["timeout", "timeout"]


def test_a_serial_baseline_blocked_in_c_is_given_up_on_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In process, with a short grace: the same path as the command-line test
    # below (slow tier, the 5 s grace), on a sleep that ends by itself soon
    # after, so that the abandoned thread leaves nothing behind.
    import gilfree.backends._base
    import gilfree.backends.serial
    from gilfree.checker import check_call

    for module in (gilfree.backends._base, gilfree.backends.serial):
        monkeypatch.setattr(module, "STOP_GRACE_S", 0.2)
    before = len(our_threads())
    t0 = time.monotonic()
    report = check_call(
        time.sleep, (1.0,), timeout=0.2, repeats=1, warmups=0, precision=None, backends=["threads"]
    )
    took = time.monotonic() - t0
    (cell,) = report.results
    assert cell.failed and "its serial baseline" in cell.reason, cell.reason
    assert "did not stop" in cell.reason
    assert took < 0.9  # the timeout and the grace, not the 1 s sleep
    assert len(threads_settle_to(before, timeout=5)) == before


@pytest.mark.slow  # the real 5 s grace; the test above covers the path in the quick suite
def test_timeout_stops_a_serial_baseline_blocked_in_c() -> None:
    # The serial baseline used to run in the calling thread, where nothing can
    # interrupt time.sleep(3600): the command ran on with no output. Now it
    # overruns, is given up on after the grace, and its cells fail (exit 1).
    argv = ["check", "time:sleep", "3600", "--timeout", "1", "-b", "threads", "--repeats", "1"]
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gilfree", *argv, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr
    assert "its serial baseline" in proc.stdout and "did not stop" in proc.stdout
    assert took < 60  # the timeout, the 5 s grace, start-up: never the hour


@needs_interpreters
def test_a_subinterpreter_leaves_signals_alone(tmp_path: Path) -> None:
    """Signals belong to the main interpreter: on 3.12, a subinterpreter
    reading the SIGINT handler (``signal.getsignal``) touched the main
    interpreter's object under its own GIL, and ``gilfree check`` on the
    interpreters backend died of a double free in about half its runs."""
    import importlib

    out = tmp_path / "seen.txt"
    module = next(
        importlib.import_module(name)
        for name in ("_interpreters", "_xxsubinterpreters")
        if importlib.util.find_spec(name)
    )
    interp = module.create()
    try:
        module.run_string(
            interp,
            "import gilfree._watch as w\n"
            f"open({str(out)!r}, 'w').write(repr((w.in_main_interpreter(), w.sigint_count(), "
            "w._can_watch_sigint())))\n",
        )
    finally:
        module.destroy(interp)
    assert out.read_text() == "(False, None, False)"
    from gilfree._watch import in_main_interpreter

    assert in_main_interpreter()


@pytest.mark.slow
@needs_interpreters
def test_check_on_subinterpreters_never_crashes_the_process() -> None:
    """The user's function on the interpreters backend, five times over: on
    3.12 the SIGINT-handler read above killed about two runs in three."""
    cmd = [sys.executable, "-m", "gilfree", "check", "userfuncs:spin", "10**5"]
    cmd += ["-b", "interpreters", "--repeats", "1", "--no-progress"]
    for _ in range(5):
        done = subprocess.run(
            cmd,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONPATH": ""},
        )
        assert done.returncode == 0, done.stderr[-2000:]
