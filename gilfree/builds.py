"""Every build of Python side by side: ``--python PATH``, repeatable.

A *build* is an interpreter and the environment settings it runs with:
``/usr/bin/python3.13``, ``python3.13t``, or ``PYTHON_GIL=1 python3.13t``
(the same free-threaded interpreter with its GIL turned back on, a build of
its own). gilfree measures on each build in a child process, ``python -m
gilfree`` with the same command and options, reads its cells back as
:class:`~gilfree.results.Result` objects and stamps them with the build's
settings, so the report can put builds side by side
(:func:`~gilfree.results.build_label`).

Each build is checked before any work (:func:`probe`): the file exists and
runs, it is CPython 3.10 or newer, and it has the same gilfree installed.
A child that crashes mid-run fails only its own cells.

What one thread costs on each build against the first is measured apart,
by :func:`thread_costs`: one small child per build (:mod:`gilfree._timer`)
times a single-thread call of each kernel on the same ``n``, the builds back
to back in every round and their order alternating, so the host's drift
cancels in each ratio as it does in every other ratio gilfree reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from gilfree.results import (
    Context,
    Result,
    ThreadCost,
    context,
    label_of,
    median_ci,
)
from gilfree.results.serialise import _context_from

__all__ = [
    "MIN_PYTHON",
    "Build",
    "BuildError",
    "parse_build",
    "probe",
    "run_build",
    "thread_costs",
]

#: The oldest Python gilfree runs on.
MIN_PYTHON = (3, 10)
#: How long an interpreter may take to say what it is.
PROBE_TIMEOUT_S = 60.0
#: How long a child may take to stop after Ctrl-C or SIGTERM before it is killed.
STOP_GRACE_S = 10.0

# Runs in the named interpreter: plain enough for any Python to answer with
# its version, even one too old for gilfree.
_PROBE = """\
import json, sys, sysconfig
info = {"version": list(sys.version_info[:3]), "implementation": sys.implementation.name,
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED"))}
if tuple(sys.version_info[:2]) >= (3, 10):
    try:
        import gilfree
        info["gilfree"] = gilfree.__version__
    except Exception as exc:
        info["missing"] = "%s: %s" % (type(exc).__name__, exc)
    if len(sys.argv) > 1 and "gilfree" in info:
        try:
            from gilfree.checker import resolve
            resolve(sys.argv[1])
        except Exception as exc:
            info["target"] = str(exc)
print("gilfree-probe " + json.dumps(info))
"""


class BuildError(ValueError):
    """A ``--python`` that cannot be used, in one line naming it and the fix."""


@dataclass(frozen=True)
class Build:
    """One interpreter with its settings; :func:`probe` fills in what it is."""

    spec: str
    path: str
    settings: dict[str, str] = field(default_factory=dict, hash=False)
    python: str = ""
    free_threaded: bool = False

    @property
    def label(self) -> str:
        """``3.13.5t PYTHON_GIL=1``: as :func:`~gilfree.results.build_label` names it."""
        return label_of(self.python or self.path, self.free_threaded, self.settings)

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.settings}


def parse_build(text: str) -> Build:
    """``[NAME=VALUE ...] PATH`` -> a :class:`Build` (not yet probed)."""
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise BuildError(f"--python {text!r}: {exc}") from None
    settings: dict[str, str] = {}
    while tokens and re.fullmatch(r"[A-Za-z_]\w*=.*", tokens[0], re.S):
        name, value = tokens.pop(0).split("=", 1)
        settings[name] = value
    if len(tokens) != 1:
        raise BuildError(
            f"--python {text!r}: give an interpreter, optionally after NAME=VALUE settings, "
            "e.g. --python python3.13t or --python 'PYTHON_GIL=1 python3.13t'"
        )
    return Build(spec=text, path=tokens[0], settings=settings)


def _executable(build: Build) -> str:
    path = build.path
    if os.sep not in path:
        found = shutil.which(path)
        if found is None:
            raise BuildError(f"--python {build.spec}: no {path!r} on PATH; give its full path")
        return found
    if not os.path.exists(path):
        raise BuildError(f"--python {build.spec}: no such file")
    if os.path.isdir(path):
        raise BuildError(f"--python {build.spec}: a directory, not an interpreter")
    if not os.access(path, os.X_OK):
        raise BuildError(f"--python {build.spec}: not executable")
    return os.path.abspath(path)


def _install_hint(exe: str) -> str:
    """The pip command that installs this gilfree into ``exe``."""
    from gilfree._version import __version__

    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "gilfree" / "_countdown.pyx").is_file():
        return f"{shlex.quote(exe)} -m pip install {shlex.quote(str(root))}"
    return f"{shlex.quote(exe)} -m pip install gilfree=={__version__}"


def probe(build: Build, target: str | None = None) -> Build:
    """Run ``build``'s interpreter once and return the build with its version
    and kind filled in; ``target`` (``module:function``) must import there too.

    Raises :class:`BuildError`, one line naming the build and the fix, for a
    missing file, a program that is not Python, a Python older than 3.10,
    one without gilfree (or with another version of it) and a target it
    cannot import."""
    from gilfree._version import __version__

    exe = _executable(build)
    try:
        done = subprocess.run(
            [exe, "-c", _PROBE, *([target] if target else [])],
            env=build.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BuildError(
            f"--python {build.spec}: it did not answer in {PROBE_TIMEOUT_S:g} s"
        ) from None
    except OSError as exc:
        raise BuildError(f"--python {build.spec}: cannot run it ({exc.strerror})") from None
    out = done.stdout.decode(errors="replace")
    answer = next((ln for ln in out.splitlines() if ln.startswith("gilfree-probe ")), None)
    if answer is None:
        said = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()
        why = f": {said[-1][:200]}" if said else f" (exit status {done.returncode})"
        raise BuildError(f"--python {build.spec}: not a Python interpreter{why}")
    info = json.loads(answer.split(" ", 1)[1])
    version = ".".join(map(str, info["version"]))
    if tuple(info["version"][:2]) < MIN_PYTHON:
        raise BuildError(
            f"--python {build.spec}: Python {version}; gilfree needs "
            f"{'.'.join(map(str, MIN_PYTHON))} or newer"
        )
    if "gilfree" not in info:
        raise BuildError(
            f"--python {build.spec}: gilfree is not installed there ({info.get('missing')}); "
            f"install it with: {_install_hint(exe)}"
        )
    if info["gilfree"] != __version__:
        raise BuildError(
            f"--python {build.spec}: it has gilfree {info['gilfree']}, this is {__version__}; "
            f"install the same with: {_install_hint(exe)}"
        )
    if "target" in info:
        raise BuildError(f"--python {build.spec}: {info['target']}")
    return replace(build, path=exe, python=version, free_threaded=bool(info["free_threaded"]))


# ------------------------------------------------------------- child processes


@contextlib.contextmanager
def _child(build: Build, argv: Sequence[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    """``build``'s interpreter running ``argv``, in a session of its own;
    stopped however the block ends: asked to (SIGTERM), then killed after
    :data:`STOP_GRACE_S`. Linux kills it with this process too."""
    # Imported here, not in the forked child, where another thread may hold
    # the import lock.
    from gilfree.backends.processes import _die_with_parent

    proc = subprocess.Popen(
        [build.path, *argv],
        env=build.env(),
        text=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        start_new_session=True,  # Ctrl-C reaches it through this process, once
        **kwargs,
    )
    try:
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _stamp(result: Result, build: Build, costs: dict[tuple[str, str], ThreadCost]) -> Result:
    """A child's cell, with the build's settings in its context and its thread cost."""
    ctx = replace(result.context, settings=dict(build.settings))
    return replace(result, context=ctx, thread_cost=costs.get((result.kernel, build.label)))


def _failed_cell(cell: tuple[str, str, int], ctx: Context, scaling: Any, reason: str) -> Result:
    kernel, backend, workers = cell
    return Result(
        kernel=kernel,
        backend=backend,
        workers=workers,
        n=0,
        scaling=scaling,
        start_method=None,
        status="failed",
        reason=reason,
        runs=(),
        warmups=(),
        baseline_s=(),
        context=ctx,
    )


def _how_it_ended(build: Build, code: int | None, stderr: IO[bytes]) -> str:
    stderr.seek(0)
    lines = [ln for ln in stderr.read().decode(errors="replace").splitlines() if ln.strip()]
    if code is not None and code < 0:
        how = f"was killed by signal {signal.Signals(-code).name}"
    else:
        how = f"exited with status {code}"
    last = f": {lines[-1].strip()[:300]}" if lines else ""
    return f"the {build.label} interpreter {how} before it measured this cell{last}"


def run_build(
    build: Build,
    argv: Sequence[str],
    expected: Sequence[tuple[str, str, int]],
    *,
    scaling: Any = "strong",
    costs: dict[tuple[str, str], ThreadCost] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> tuple[list[Result], dict[str, Any]]:
    """Run ``gilfree ARGV --format jsonl`` on ``build`` and return its cells
    (stamped with the build) and its end line.

    ``expected`` names the cells, (kernel, backend, workers), the command
    measures: those the child never sent, because it crashed or was killed,
    come back ``failed`` with the reason. Ctrl-C (or SIGTERM) here is passed
    on to the child as Ctrl-C; the cells it sends while it stops are kept,
    then KeyboardInterrupt is raised again."""
    costs = costs or {}
    results: list[Result] = []
    start: dict[str, Any] = {}
    end: dict[str, Any] = {}

    def take(line: str) -> None:
        nonlocal start, end
        try:
            record = json.loads(line)
            kind = record.pop("record")
        except (ValueError, AttributeError, KeyError, TypeError):
            return  # not a record: something the user's code printed
        if kind == "start":
            start = record
        elif kind == "cell":
            cell = _stamp(Result.from_dict(record, start.get("context")), build, costs)
            results.append(cell)
            if on_result:
                on_result(cell)
        elif kind == "end":
            end = record

    with tempfile.TemporaryFile() as stderr:
        with _child(
            build,
            # The stream options right after the command: ARGV may end in
            # "--" and positional arguments.
            ["-m", "gilfree", argv[0], "--format", "jsonl", "-o", "-", "--no-progress", *argv[1:]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
        ) as proc:
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    take(line)
            except KeyboardInterrupt:
                # Its own session kept it from the terminal's Ctrl-C: pass it
                # on, keep what it reports as it stops, and stop too.
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGINT)
                killer = threading.Timer(STOP_GRACE_S, proc.kill)
                killer.start()
                try:
                    for line in proc.stdout:
                        take(line)
                finally:
                    killer.cancel()
                raise
            code = proc.wait()
        if end.get("status") in (None, "interrupted"):
            seen = {(r.kernel, r.backend, r.workers) for r in results}
            ctx = _context_of(build, start)
            why = _how_it_ended(build, code, stderr)
            for cell in expected:
                if cell not in seen:
                    lost = _failed_cell(cell, ctx, scaling, why)
                    results.append(lost)
                    if on_result:
                        on_result(lost)
    return results, end


def _context_of(build: Build, start: dict[str, Any]) -> Context:
    """The child's context from its start line, or, where it never wrote one,
    this process's with the build's version and kind."""
    if isinstance(start.get("context"), dict):
        ctx = _context_from(start["context"])
    else:
        ctx = replace(
            context(),
            python=build.python,
            free_threaded_build=build.free_threaded,
            gil_enabled=not build.free_threaded or build.settings.get("PYTHON_GIL") == "1",
        )
    return replace(ctx, settings=dict(build.settings))


# ------------------------------------------------------------- one thread's cost


class _Timer:
    """A :mod:`gilfree._timer` child: one request, one answer."""

    def __init__(self, proc: subprocess.Popen[str], timeout: float | None) -> None:
        self.proc, self.timeout = proc, timeout

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        if self.timeout is not None:
            ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
            if not ready:
                raise TimeoutError(f"no answer in {self.timeout:g} s")
        line = self.proc.stdout.readline()
        if not line:
            raise EOFError(f"it exited with status {self.proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer


_ASKING = (OSError, ValueError, RuntimeError, EOFError)


def _start_timers(
    stack: contextlib.ExitStack,
    builds: Sequence[Build],
    setup: dict[str, Any],
    timeout: float | None,
    notes: list[str],
) -> tuple[dict[int, _Timer], list[str]]:
    """A timer child on each build (by index) that could start, and the
    kernels they will time; a note for each build that could not."""
    timers: dict[int, _Timer] = {}
    names: list[str] = []
    for i, build in enumerate(builds):
        proc = stack.enter_context(
            _child(
                build,
                ["-m", "gilfree._timer"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        )
        timer = _Timer(proc, timeout)
        try:
            names = timer.ask(setup)["ready"]
            timers[i] = timer
        except _ASKING as exc:
            notes.append(f"one thread's cost on {build.label} is unknown: {exc}")
    return timers, names


def _sizes(
    first: _Timer, names: list[str], n: int | None, seconds: float, label: str, notes: list[str]
) -> dict[int, int]:
    """Each kernel's n (by index): ``n``, or what takes ``seconds`` on the
    first build; a note for each that could not be sized."""
    sizes: dict[int, int] = {}
    for k, name in enumerate(names):
        try:
            sizes[k] = (
                n if n is not None else int(first.ask({"calibrate": k, "seconds": seconds})["n"])
            )
        except _ASKING as exc:
            notes.append(f"one thread of {name} could not be timed on {label}: {exc}")
    return sizes


def _costs(
    ratios: dict[tuple[int, int], list[float]], names: list[str], builds: Sequence[Build]
) -> dict[tuple[str, str], ThreadCost]:
    """Each (kernel, build) ratio's median and interval, against the first build."""
    costs: dict[tuple[str, str], ThreadCost] = {}
    for (k, i), values in ratios.items():
        if not values:
            continue
        low, high = median_ci(values)
        costs[(names[k], builds[i].label)] = ThreadCost(
            against=builds[0].label,
            ratio=statistics.median(values),
            low=low,
            high=high,
            rounds=len(values),
        )
    return costs


def thread_costs(
    builds: Sequence[Build],
    setup: dict[str, Any],
    *,
    n: int | None,
    seconds: float,
    rounds: int,
    precision: float | None,
    max_time: float,
    max_rounds: int,
    timeout: float | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> tuple[dict[tuple[str, str], ThreadCost], list[str]]:
    """One thread of each kernel on every build against the first build.

    ``setup`` says what to time (``{"kernels": [...]}`` or ``{"check":
    {...}}``, see :mod:`gilfree._timer`). Each kernel runs on ``n`` (or the
    ``n`` that takes ``seconds`` on the first build) on every build in every
    round, builds back to back, their order alternating. Rounds go on until
    every ratio's 95% interval is within ``precision`` of it (at least
    ``rounds``), ``max_time`` seconds or ``max_rounds`` rounds.

    Returns {(kernel, build label): ThreadCost} for every build but the
    first, and notes on what could not be timed."""
    notes: list[str] = []
    if len(builds) < 2:
        return {}, notes
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        timers, names = _start_timers(stack, builds, setup, timeout, notes)
        if 0 not in timers:
            return {}, notes
        sizes = _sizes(timers[0], names, n, seconds, builds[0].label, notes)
        ratios: dict[tuple[int, int], list[float]] = {
            (k, i): [] for k in sizes for i in timers if i != 0
        }
        done_rounds = 0
        for r in range(max_rounds):
            if progress:
                progress(f"one thread on each build: round {r + 1}", max_rounds)
            order = sorted(timers) if r % 2 == 0 else sorted(timers, reverse=True)
            for k in sizes:
                times: dict[int, float] = {}
                for i in order:
                    if i not in timers:
                        continue
                    try:
                        times[i] = timers[i].ask({"time": k, "n": sizes[k]})["seconds"]
                    except _ASKING as exc:
                        notes.append(f"one thread's cost on {builds[i].label} is unknown: {exc}")
                        del timers[i]
                        ratios = {key: v for key, v in ratios.items() if key[1] != i}
                if 0 not in times:
                    continue
                for i, t in times.items():
                    if i != 0 and (k, i) in ratios:
                        ratios[(k, i)].append(t / times[0])
            done_rounds = r + 1
            if 0 not in timers:
                break
            if done_rounds >= rounds and (
                time.monotonic() - started >= max_time or _settled(ratios, precision)
            ):
                break
    return _costs(ratios, names, builds), notes


def _settled(ratios: dict[Any, list[float]], precision: float | None) -> bool:
    if precision is None:
        return True
    for values in ratios.values():
        if len(values) < 2:
            return False
        low, high = median_ci(values)
        if (high - low) / 2 > precision * statistics.median(values):
            return False
    return True
