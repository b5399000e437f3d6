"""The measurement engine: a :class:`~gilfree.plan.Plan` in, :class:`Result` cells out.

Every cell (a kernel on a backend with N workers) is compared with the serial
run of the same kernel doing the same total work in one thread: the classic
single-threaded script. The host's speed drifts over seconds, so the two
sides of every ratio are measured back to back, in *rounds*:

- one round holds, for each kernel, its serial run and its run on every
  backend, plus a *capacity* pair (the ``cython-nogil`` kernel in one thread
  and split over N processes: what this host delivers to N independent
  workers right now). Blocks and the runs within them rotate from round to
  round, and the serial run goes first in one round and last in the next;
- a cell's speedup is the median of its per-round ratios, with a bootstrap
  95% interval over rounds; its *share* of the capacity likewise, from the
  per-round ratio of ratios;
- a round whose speedup is larger than its busy CPUs allow did not measure
  parallelism (the host changed speed between the two runs): it is kept in
  the raw data and left out of the figures;
- rounds are added until every cell's interval is within ``precision`` of its
  speedup, or the plan's time budget or round limit is reached.

``run()`` measures one cell, ``sweep()`` a grid; both build a plan and call
:func:`measure`.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from gilfree._engine import (
    OnError,
    _Group,
    _HostClock,
    _Track,
    calibrate,
    chunks_for,
    time_call,
)
from gilfree.backends import (
    Backend,
    get_backend,
)
from gilfree.kernels import MAX_N, Kernel
from gilfree.plan import (
    DEFAULT_MAX_TIME,
    DEFAULT_PRECISION,
    DEFAULT_ROUNDS,
    MAX_WORKERS,
    Plan,
    Scaling,
)
from gilfree.results import (
    CapacityRound,
    Context,
    HostLoad,
    Result,
    consistent,
    context,
    median_ci,
)

__all__ = [
    "MAX_WORKERS",
    "CapacityRound",
    "Context",
    "HostLoad",
    "Plan",
    "Result",
    "calibrate",
    "chunks_for",
    "consistent",
    "context",
    "measure",
    "median_ci",
    "run",
    "sweep",
    "time_call",
]


# -------------------------------------------------------------------- the engine


#: Called before each round with a label and the most rounds there can be.
ProgressHook = Callable[[str, int], None]
#: Called with each cell's :class:`Result` as soon as it is measured.
ResultHook = Callable[[Result], None]


def measure(
    plan: Plan,
    *,
    progress: ProgressHook | None = None,
    on_result: ResultHook | None = None,
    errors: OnError = "record",
) -> list[Result]:
    """Measure every cell of ``plan``; one :class:`Result` per kernel x
    worker count x backend, in that order.

    Worker counts are measured one after another, each in its own rounds,
    sharing what is left of ``plan.max_time``. ``progress``, if given, is
    called before each round with a label and the most rounds there can be.
    ``on_result`` is called with each cell's result as soon as its worker
    count is done, and, on Ctrl-C, with the rounds measured so far: nothing
    measured is lost. With ``errors="raise"`` the first failed run raises
    (:class:`~gilfree.backends.WorkerError`, :class:`~gilfree.backends.RunTimeout`).
    """
    if errors not in ("record", "raise"):
        raise ValueError(f"errors must be 'record' or 'raise', got {errors!r}")
    started = time.monotonic()
    end_by = started + plan.max_time
    ctx = context()
    sizes = {
        k.name: plan.n if plan.n is not None else calibrate(k, plan.seconds) for k in plan.kernels
    }
    for name, size in sizes.items():
        most = size * (max(plan.workers) if plan.scaling == "weak" else 1)
        if most > MAX_N:  # the serial baseline counts it all in one call
            raise OverflowError(
                f"weak scaling: {max(plan.workers)} workers x n={size} of {name} = {most} "
                f"iterations, more than the largest n ({MAX_N}); use a smaller n"
            )
    steps = len(plan.workers) * plan.max_rounds
    done: dict[tuple[str, str, int], Result] = {}
    for g, count in enumerate(plan.workers):
        group = _Group(plan, count, sizes, ctx, errors)
        group_end = time.monotonic() + (end_by - time.monotonic()) / (len(plan.workers) - g)
        clock = _HostClock()
        try:
            with contextlib.ExitStack() as stack:
                group.warm_up(stack)
                while group.round < plan.max_rounds:
                    pending = group.pending()
                    if not pending:
                        break
                    if progress:
                        progress(_round_label(group, pending), steps)
                    group.measure_round()
                    if group.round >= plan.rounds and time.monotonic() >= group_end:
                        group.stopped = "time budget"
                        break
                else:
                    group.stopped = "round limit"
        except KeyboardInterrupt:
            group.host = clock.reading()
            if on_result:
                for r in group.results("interrupted"):
                    if r.runs:
                        on_result(r)
            raise
        group.host = clock.reading()
        for r in group.results():
            done[(r.kernel, r.backend, r.workers)] = r
            if on_result:
                on_result(r)
    return [
        done[(k.name, b.name, c)] for k in plan.kernels for c in plan.workers for b in plan.backends
    ]


def _round_label(group: _Group, pending: list[_Track]) -> str:
    names = list(dict.fromkeys(c.kernel.name for c in pending))
    what = names[0] if len(names) == 1 else f"{len(names)} kernels"
    return f"{what} x{group.count}: round {group.round + 1}, {len(pending)} cell(s) measuring"


def sweep(
    kernels: Iterable[str | Kernel] = ("python", "cython-nogil"),
    backends: Iterable[str | Backend | concurrent.futures.Executor] = ("threads", "processes"),
    workers: Iterable[int] = (2,),
    n: int | None = None,
    *,
    seconds: float = 0.25,
    scaling: Scaling = "strong",
    repeats: int = DEFAULT_ROUNDS,
    warmups: int = 1,
    precision: float | None = DEFAULT_PRECISION,
    max_time: float = DEFAULT_MAX_TIME,
    max_rounds: int | None = None,
    capacity: bool = True,
    start_method: str | None = None,
    scheduler: Any = None,
    progress: ProgressHook | None = None,
    timeout: float | None = None,
    errors: OnError = "record",
    on_result: ResultHook | None = None,
) -> list[Result]:
    """Measure every kernel x backend x worker count.

    ``n`` is the total work (strong scaling) or the work per worker (weak);
    ``None`` sizes it per kernel so the serial run takes about ``seconds``.
    Each cell runs at least ``repeats`` rounds (one serial and one parallel
    run back to back), then more until its speedup's 95% interval is within
    ``precision`` of it (None: exactly ``repeats`` rounds), within
    ``max_time`` seconds for the whole sweep and ``max_rounds`` rounds
    (default 30, or ``repeats`` if more).
    ``capacity`` measures, in the same rounds, what independent processes
    get on this host (:attr:`Result.share`).
    Cells that cannot run (a backend unavailable here, a kernel a backend
    cannot host) come back with ``status="unsupported"`` and the reason.
    The ``start_method`` applies to the backends that take one (processes);
    ``scheduler`` (an address or a ``distributed.Client``) to dask.

    Failures: a cell whose worker raises or dies comes back with
    ``status="failed"``, and one with a run longer than ``timeout`` seconds
    with ``status="timeout"``, its workers stopped; the sweep goes on with the
    other cells. With ``errors="raise"`` the first such
    failure raises instead (:class:`~gilfree.backends.WorkerError`,
    :class:`~gilfree.backends.RunTimeout`). A serial baseline that fails fails
    every cell that needs it. ``on_result``, if given, is called with each
    cell's :class:`Result` as soon as it is measured, so nothing measured is
    lost when a later cell, or Ctrl-C, stops the sweep.
    """
    plan = Plan.build(
        kernels,
        backends,
        workers,
        n,
        seconds=seconds,
        scaling=scaling,
        rounds=repeats,
        precision=precision,
        max_time=max_time,
        max_rounds=max_rounds,
        warmups=warmups,
        capacity=capacity,
        start_method=start_method,
        scheduler=scheduler,
        timeout=timeout,
    )
    return measure(plan, progress=progress, on_result=on_result, errors=errors)


def run(
    kernel: str | Kernel = "cython-nogil",
    backend: str | Backend | concurrent.futures.Executor = "threads",
    workers: int = 2,
    n: int | None = None,
    *,
    seconds: float = 0.25,
    scaling: Scaling = "strong",
    repeats: int = DEFAULT_ROUNDS,
    warmups: int = 1,
    precision: float | None = DEFAULT_PRECISION,
    max_time: float = DEFAULT_MAX_TIME,
    max_rounds: int | None = None,
    capacity: bool = True,
    start_method: str | None = None,
    scheduler: Any = None,
    timeout: float | None = None,
) -> Result:
    """Measure one kernel on one backend with ``workers`` workers.

    Returns a :class:`Result` whose ``speedup`` compares it with the serial run
    of the same kernel and total work, round by round, measured in the same
    call (see :func:`sweep` for the rounds, ``precision`` and ``max_time``). A
    worker that raises or dies raises :class:`~gilfree.backends.WorkerError`;
    a run (parallel or serial) past ``timeout`` seconds has its workers
    stopped and raises :class:`~gilfree.backends.RunTimeout`.

    >>> from gilfree import run
    >>> r = run("cython-nogil", "threads", workers=2, n=10**7, repeats=3)
    >>> r.ok, r.workers, r.runs[0].iterations, r.rounds >= 3
    (True, 2, 10000000, True)
    """
    b = get_backend(backend)
    if start_method is not None and "start_method" not in b.options:
        raise ValueError(f"backend {b.name!r} does not take a start method; only 'processes' does")
    if scheduler is not None and "scheduler" not in b.options:
        raise ValueError(f"backend {b.name!r} does not take a scheduler; only 'dask' does")
    (result,) = sweep(
        [kernel],
        [b],
        [workers],
        n,
        seconds=seconds,
        scaling=scaling,
        repeats=repeats,
        warmups=warmups,
        precision=precision,
        max_time=max_time,
        max_rounds=max_rounds,
        capacity=capacity,
        start_method=start_method,
        scheduler=scheduler,
        timeout=timeout,
        errors="raise",
    )
    return result
