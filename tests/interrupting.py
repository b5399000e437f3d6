"""Ctrl-C a real ``gilfree`` process while its workers run, and time its exit.

Shared by ``tests/test_robustness.py`` (which asserts on it) and
``bench/sigint_latency.py`` (which measures it for the README).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Backends whose workers are threads of the CLI process (the rest are child processes).
THREADED = ("threads", "interpreters")


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (zombies count as gone)."""
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


@dataclass
class Interrupted:
    returncode: int
    #: Seconds from SIGINT to the process's exit.
    latency_s: float
    #: Seconds the workers had been running when SIGINT was sent.
    ran_s: float
    stdout: str
    stderr: str
    #: Descendant processes seen while it ran that were still alive after.
    leftovers: set[int]


#: Iterations per second of each kernel here, timed once per test session:
#: every kernel's time is linear in n, and timing one for a full second in
#: each test cost more than many of the tests themselves.
_RATES: dict[str, float] = {}


def _n_for(kernel: str, seconds: float) -> int:
    """Iterations of ``kernel`` that take about ``seconds`` in a fresh process.

    Timed in a child, as the CLI's workers run: in the test process a thread
    left by an earlier test (a cancelled C loop finishing its count on the
    free-threaded build) shares the CPU and makes the rate read low, and a
    cell sized from it ends before the interrupt it was sized for."""
    if kernel not in _RATES:
        code = (
            "import sys; from gilfree.measure import calibrate; "
            "print(max(calibrate(sys.argv[1], 0.05) / 0.05 for _ in range(3)))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, kernel], capture_output=True, text=True, check=True
        )
        _RATES[kernel] = float(out.stdout)
    return max(1, round(_RATES[kernel] * seconds))


def cli_command(command: str, backend: str, kernel: str, seconds: float = 0.5) -> list[str]:
    """``gilfree COMMAND ...`` arguments whose serial baseline takes about
    ``2 * seconds`` and whose cell on ``backend`` at least as long again.

    Weak scaling with 2 workers: each worker counts what one call does in
    ``seconds`` (:func:`gilfree.calibrate`), the baseline counts it twice in
    one thread. One round (``--precision off``) and an untimed run per cell
    where the backend is metered: the cell runs for at
    least ``2 * seconds`` on any backend, so an interrupt sent early in it has
    most of its work still ahead."""
    n = str(_n_for("python" if command == "check" else kernel, seconds))
    once = ["--warmups", "0", "--repeats", "1", "--precision", "off", "--no-progress"]
    if command == "check":  # a pure-Python loop of the user's: tests/userfuncs.py
        return ["check", "userfuncs:spin", n, "-b", backend, "-w", "2", *once]
    sizing = ["-n", n, "--scaling", "weak", *once]
    if command == "demo":  # every kernel; the first cell after the first baseline is threads
        return ["demo", *sizing]
    option = "-k" if command == "run" else "--kernels"
    backends = "-b" if command == "run" else "--backends"
    return [command, option, kernel, backends, backend, "-w", "2", *sizing]


def interrupt_cli(
    args: list[str],
    backend: str,
    json_path: str | os.PathLike[str],
    python: str = sys.executable,
    after_s: float = 0.25,
    workers: int = 2,
    cwd: str | os.PathLike[str] | None = None,
    sig: int = signal.SIGINT,
) -> Interrupted:
    """Run ``gilfree ARGS --json JSON_PATH``, wait until its workers on
    ``backend`` exist (threads or child processes) and have run ``after_s``,
    send SIGINT (or ``sig``), and time the exit.

    The serial baseline runs in the CLI's main thread and starts nothing, so
    the counts rise only when the backend's cell starts its workers."""
    cmd = [python, "-m", "gilfree", *args, "--json", os.fspath(json_path)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
    )
    seen: set[int] = set()
    started = None
    give_up = time.monotonic() + 120
    while time.monotonic() < give_up and proc.poll() is None:
        kids = _children(proc.pid)
        seen |= kids
        running = _threads(proc.pid) > workers if backend in THREADED else len(kids) >= workers
        if running and started is None:
            started = time.monotonic()
        if started is not None and time.monotonic() - started >= after_s:
            break
        time.sleep(0.01)
    if proc.poll() is not None or started is None:
        out, err = proc.communicate()
        raise AssertionError(f"the run ended or never started its workers:\n{out}\n{err}")
    seen |= _children(proc.pid)
    sent = time.monotonic()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"no exit within 60 s of {sig!r}:\n{out}\n{err}") from None
    latency = time.monotonic() - sent
    time.sleep(0.2)  # a child killed by the parent's clean-up needs a moment to be reaped
    return Interrupted(proc.returncode, latency, sent - started, out, err, alive(seen) - {proc.pid})
