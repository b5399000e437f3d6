"""Would threads help my function?

:func:`check` runs the user's callable the way :func:`gilfree.sweep` runs a
countdown kernel: serially, then on threads, processes and (CPython 3.12+)
subinterpreters, with the GIL contention meter on the threads. Scaling is
weak: each worker calls the function ``calls`` times per round (once by
default), and the serial baseline makes all those calls in one thread, so the
speedup answers "how much faster do N calls finish on N workers?".

>>> import hashlib
>>> from gilfree import check
>>> report = check(hashlib.sha256, b"x" * 2**24, repeats=2)  # doctest: +SKIP
>>> print(report.verdict)  # doctest: +SKIP
threads help: 1.96x at 2 workers, GIL contention 0%

A callable that cannot be sent to a backend (not picklable for processes,
not importable in a subinterpreter) gets an ``unsupported`` cell saying why;
the other backends still run. A callable that raises in the serial baseline
stops the check: the exception propagates, with the function's own traceback.
One that raises in its workers fails that cell. ``KeyboardInterrupt`` or
``SystemExit`` raised by the function itself come as :class:`FunctionExit`,
so they never pass for Ctrl-C or end the caller.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import inspect
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from gilfree._watch import is_ctrl_c, sigint_count
from gilfree.backends import DEFAULT_BACKENDS, Backend
from gilfree.kernels import Kernel, check_count
from gilfree.measure import MAX_WORKERS, ProgressHook, Result, ResultHook, sweep
from gilfree.plan import DEFAULT_MAX_TIME, DEFAULT_PRECISION, DEFAULT_ROUNDS

__all__ = [
    "Calls",
    "CheckReport",
    "FunctionExit",
    "ResolveError",
    "as_kernel",
    "callable_name",
    "check",
    "check_call",
    "resolve",
]

#: Below this serial time per call, start-up noise and the harness itself
#: weigh on the figures: the report says so.
SHORT_CALL_S = 0.005


class ResolveError(ValueError):
    """A ``module:function`` target that cannot be resolved; the message says
    which part failed and how to fix it."""


def resolve(target: str) -> Callable[..., Any]:
    """The callable named by ``module:function`` (``function`` may be dotted,
    as in ``package.module:Class.method``).

    The current folder is searched first, as ``python -m`` does.

    Raises
    ------
    ResolveError
        Not of the form ``module:function``, no such module, no such
        attribute, the module failed to import, or the object is not callable.
    """
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise ResolveError(
            f"{target!r} is not of the form module:function, e.g. mypackage.work:crunch"
        )
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        dotted = os.path.splitext(os.path.normpath(module_name))[0].replace(os.sep, ".")
        raise ResolveError(
            f"{module_name!r} is a file path; name the module as Python imports it, from the "
            f"folder it is found from (here: {dotted.lstrip('.')}:{attr_path}), adding its "
            "folder to PYTHONPATH if need be"
        )
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current folder, like python -m
    sigints = sigint_count()
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ResolveError(
                f"no module named {module_name!r}: is it installed, or in the current "
                "folder or on PYTHONPATH?"
            ) from None
        raise ResolveError(f"importing {module_name!r} failed: {_one_line(exc)}") from None
    except Exception as exc:
        raise ResolveError(f"importing {module_name!r} failed: {_one_line(exc)}") from None
    except (KeyboardInterrupt, SystemExit) as exc:  # the module's own, at import
        if is_ctrl_c(exc, sigints):
            raise
        raise ResolveError(
            f"importing {module_name!r} failed: it raised {type(exc).__name__}"
            f"{_exit_args(exc)} at import"
        ) from None
    walked = module_name
    for part in attr_path.split("."):
        if not hasattr(obj, part):
            raise ResolveError(f"{walked!r} has no attribute {part!r} (looking for {target!r})")
        obj = getattr(obj, part)
        walked += (":" if walked == module_name else ".") + part
    if not callable(obj):
        raise ResolveError(f"{target!r} is {_a(type(obj).__name__)}, not a callable")
    why = _body_not_run(obj)
    if why:
        raise ResolveError(f"{target!r} {why}")
    return obj  # type: ignore[no-any-return]


def _a(noun: str) -> str:
    """``an int``, ``a str``: the article a type's name takes."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


#: What to write instead of a function whose call does not run its body.
_RUN_IT = (
    "; gilfree times calls, so give it a plain function that does the work, e.g. def run(): {}"
)


def _body_not_run(fn: Any) -> str | None:
    """Why calling ``fn`` would not run its body (a generator or coroutine
    function: the call only creates the object), or None."""
    if inspect.isasyncgenfunction(fn):
        how = "async for _ in f(...): pass, run with asyncio.run"
        return "is an async generator function: calling it runs none of its body" + (
            _RUN_IT.format(how)
        )
    if inspect.iscoroutinefunction(fn):
        return "is a coroutine function (async def): calling it runs none of its body" + (
            _RUN_IT.format("asyncio.run(f(...))")
        )
    if inspect.isgeneratorfunction(fn):
        return "is a generator function: calling it runs none of its body" + _RUN_IT.format(
            "collections.deque(f(...), maxlen=0)"
        )
    return None


def _not_run_result(fn: Any, value: Any) -> None:
    """Refuse a call that returned a generator or coroutine: its body did not
    run, so timing the call would measure nothing. The object is closed, so
    a coroutine does not warn that it was never awaited."""
    if inspect.isgenerator(value) or inspect.iscoroutine(value) or inspect.isasyncgen(value):
        kind = type(value).__name__
        if not inspect.isasyncgen(value):  # an async generator closes only when awaited
            value.close()
        raise TypeError(
            f"{callable_name(fn)} returned {_a(kind)}: its body did not run, so there is "
            "nothing to measure"
            + _RUN_IT.format("collections.deque(f(...), maxlen=0) or asyncio.run(f(...))")
        )


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__


class FunctionExit(Exception):
    """The user's function raised :class:`KeyboardInterrupt` or
    :class:`SystemExit` (``sys.exit(3)``) itself. It is carried as an
    ordinary exception, chained to the original, so that it fails the cell
    (or, in the serial baseline, the check, with its traceback) like any other
    error, instead of stopping gilfree as a real Ctrl-C or an exit would."""


@dataclass(frozen=True)
class Calls:
    """``Calls(fn, args, kwargs)(n)`` calls ``fn(*args, **kwargs)`` n times and
    returns n: a user's function in the shape of a countdown kernel, so every
    backend and the result checks work on it unchanged. Picklable when ``fn``
    and its arguments are."""

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None

    def __call__(self, n: int) -> int:
        fn, args, kwargs = self.fn, self.args, self.kwargs or {}
        if fn is _REAL_EXIT:  # os:_exit itself, resolved before _exit_refused replaced it
            fn = os._exit
        sigints = sigint_count()
        _calling.fn = self.fn  # os._exit in this thread is the function's own (_exit_refused)
        try:
            for _ in range(n):
                value = fn(*args, **kwargs)
            if n:
                _not_run_result(fn, value)
        except (KeyboardInterrupt, SystemExit) as exc:
            if is_ctrl_c(exc, sigints):
                raise
            raise FunctionExit(
                f"{callable_name(fn)} raised {type(exc).__name__}{_exit_args(exc)} itself"
            ) from exc
        finally:
            _calling.fn = None
        return n


_REAL_EXIT = os._exit

#: The user's function a thread is calling now (``fn``), if any.
_calling = threading.local()


@contextlib.contextmanager
def _exit_refused() -> Iterator[None]:
    """While the block runs, ``os._exit`` called by the user's function in
    this process raises :class:`FunctionExit` instead of ending it. An
    ``os._exit(0)`` would end gilfree with status 0, no report and a JSON log
    holding only its start line: a check that never finished would look
    like success. Called anywhere else (a forked worker process, gilfree
    itself) it exits as always."""
    real, owner = os._exit, os.getpid()

    def refused(status: int) -> NoReturn:
        fn = getattr(_calling, "fn", None)
        if fn is None or os.getpid() != owner:
            real(status)
        raise FunctionExit(
            f"{callable_name(fn)} called os._exit({status!r}), which would end gilfree at "
            "once with no result; the call was stopped there instead"
        )

    os._exit = refused
    try:
        yield
    finally:
        os._exit = real


def _exit_args(exc: BaseException) -> str:
    return f"({', '.join(map(repr, exc.args))})" if exc.args else ""


def callable_name(fn: Callable[..., Any]) -> str:
    """``module:qualname`` of a function (or of a callable object's type)."""
    module = getattr(fn, "__module__", None) or type(fn).__module__
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    return f"{module}:{qualname}"


def as_kernel(
    fn: Callable[..., Any], args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> Kernel:
    """``fn(*args, **kwargs)`` as a :class:`Kernel` whose ``n`` counts calls."""
    if not callable(fn):
        raise TypeError(f"fn must be callable, not {type(fn).__name__}")
    why = _body_not_run(fn)
    if why:
        raise TypeError(f"{callable_name(fn)} {why}")
    return Kernel(
        name=callable_name(fn),
        func=Calls(fn, tuple(args), dict(kwargs) if kwargs else None),
        compiled=False,
        releases_gil=False,
        gil="unknown",
        description="a user's function: n is the number of calls",
        cancellable=False,
    )


@dataclass(frozen=True)
class CheckReport:
    """The outcome of :func:`check`: one :class:`Result` per backend (each
    compared with the serial run of all the calls), and a verdict."""

    function: str
    calls: int
    results: tuple[Result, ...]
    #: The BLAS/OpenMP thread limit it was measured under (None: none set).
    blas_threads: int | None = None

    @property
    def serial_call_s(self) -> float:
        """Median seconds one call takes in one thread (from the baseline)."""
        ran = [r for r in self.results if r.baseline_s]
        if not ran:
            return float("nan")
        return ran[0].baseline_median_s / (ran[0].workers * self.calls)

    @property
    def verdict(self) -> str:
        """One line a person can act on, such as ``threads help: 1.90x ...``
        or ``GIL-bound: threads 1.00x ...; processes give 1.90x``; the rules
        are those of :func:`gilfree.report.verdict`."""
        from gilfree.report import verdict

        line = verdict(self.results, self.function)
        if line.startswith("GIL-bound"):
            line += (
                "; py-spy record --gil --native -o gil.svg -- python your_program.py shows "
                "where the GIL is held"
            )
        return line

    @property
    def warnings(self) -> list[str]:
        """Reasons to distrust the figures: calls too short, repeats that vary."""
        notes = [w for r in self.results for w in r.warnings]
        call = self.serial_call_s
        if not math.isnan(call) and call * self.calls < SHORT_CALL_S:
            # This note says it for a function, in its terms: drop the cells' own.
            notes = [n for n in notes if "too short to measure parallelism" not in n]
            notes.insert(
                0,
                f"one round takes {call * self.calls * 1000:.2f} ms per worker: too short to "
                "judge reliably; pass a larger input or more calls (calls=N, --calls N)",
            )
        if self.blas_threads is None:
            pools = [
                p
                for r in self.results[:1]
                for p in r.context.thread_pools
                if (p.get("num_threads") or 1) > 1
            ]
            if pools:
                named = ", ".join(
                    f"{p['internal_api']} ({p['num_threads']} threads)" for p in pools
                )
                notes.append(
                    f"thread pools are loaded: {named}; a function that calls them runs "
                    "threads of its own even in the serial run, and its workers compete for "
                    "CPUs. blas_threads=1 (--blas-threads 1) keeps each to one thread"
                )
        return notes

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "calls": self.calls,
            "serial_call_s": self.serial_call_s,
            "verdict": self.verdict,
            "warnings": self.warnings,
            "blas_threads": self.blas_threads,
            "results": [r.to_dict() for r in self.results],
        }

    def __str__(self) -> str:
        from io import StringIO

        from gilfree._text import console as plain_console
        from gilfree._text import shown
        from gilfree.report import table, unsupported_notes

        out = StringIO()
        console = plain_console(file=out, width=200, color_system=None)
        console.print(table(self.results, title=f"check: {self.function}"))
        for i, reason in enumerate(unsupported_notes(self.results), 1):
            console.print(shown(f"  ({i}) {reason}"))
        for note in self.warnings:
            console.print(shown(f"warning: {note}"))
        console.print(shown(f"{self.function}: {self.verdict}"))
        return out.getvalue().rstrip("\n")


def check(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> CheckReport:
    """Would threads help ``fn(*args, **kwargs)``? Measured with the defaults
    of :func:`check_call` (2 workers, each calling it once per round, 5
    repeats); every argument after ``fn`` goes to ``fn``.

    Raises whatever ``fn`` raises in the serial baseline (the check stops
    there); :class:`FunctionExit` where that is :class:`KeyboardInterrupt`
    or :class:`SystemExit` of its own, and not a real Ctrl-C.
    """
    return check_call(fn, args, kwargs)


def check_call(
    fn: Callable[..., Any],
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    workers: int = 2,
    calls: int = 1,
    repeats: int = DEFAULT_ROUNDS,
    warmups: int = 1,
    precision: float | None = DEFAULT_PRECISION,
    max_time: float = DEFAULT_MAX_TIME,
    max_rounds: int | None = None,
    backends: Iterable[str | Backend | concurrent.futures.Executor] = DEFAULT_BACKENDS,
    start_method: str | None = None,
    scheduler: Any = None,
    progress: ProgressHook | None = None,
    timeout: float | None = None,
    on_result: ResultHook | None = None,
    blas_threads: int | None = None,
) -> CheckReport:
    """:func:`check` with every setting.

    Parameters
    ----------
    fn, args, kwargs
        What to measure: ``fn(*args, **kwargs)``.
    workers
        How many workers call it at once (the serial baseline makes
        ``workers * calls`` calls in one thread).
    calls
        Calls per worker per round (default 1). Raise it for a fast function.
    repeats, warmups, precision, max_time, max_rounds
        The rounds, as in :func:`gilfree.sweep`.
    start_method, scheduler, progress, timeout, on_result
        As in :func:`gilfree.sweep`: a cell whose worker raises or dies, or
        that overruns ``timeout``, comes back failed (the function raising in
        the serial baseline, which runs first in this thread, raises here).
    backends
        Where to run it (default threads, processes, interpreters; those
        unavailable here come back as unsupported cells with the reason).
    blas_threads
        Keep BLAS and OpenMP thread pools to this many threads while it is
        measured (threadpoolctl's ``threadpool_limits``, and the
        ``OMP_NUM_THREADS``-style variables for worker processes started
        fresh), so a function that calls BLAS does not run threads of its own
        inside a "serial" run, or oversubscribe the workers. None: as they are.
    """
    kernel = as_kernel(fn, args, kwargs)
    count = check_count(workers, "workers", minimum=1, maximum=MAX_WORKERS)
    n = check_count(calls, "calls", minimum=1, maximum=10**9)
    if blas_threads is not None:
        check_count(blas_threads, "blas_threads", minimum=1, maximum=4096)
    with _blas_limited(blas_threads), _exit_refused():
        results = sweep(
            [kernel],
            backends,
            [count],
            n,
            scaling="weak",
            repeats=repeats,
            warmups=warmups,
            precision=precision,
            max_time=max_time,
            max_rounds=max_rounds,
            start_method=start_method,
            scheduler=scheduler,
            progress=progress,
            timeout=timeout,
            on_result=on_result,
        )
    return CheckReport(kernel.name, n, tuple(results), blas_threads)


#: The variables BLAS and OpenMP libraries read when they load (in worker
#: processes started fresh, which threadpool_limits in this one cannot reach).
BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _blas_limited(threads: int | None) -> Iterator[None]:
    """BLAS/OpenMP pools limited to ``threads`` while the block runs (nothing
    when None), the environment restored after."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    saved = {name: os.environ.get(name) for name in BLAS_VARIABLES}
    os.environ.update(dict.fromkeys(BLAS_VARIABLES, str(threads)))
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
