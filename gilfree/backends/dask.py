"""The ``dask`` backend: N Dask worker processes, on a local cluster or a real one.

- No scheduler given: gilfree starts a local cluster with one worker process
  per requested worker, one thread each, for the whole cell (its warm-ups and
  repeats), and shuts it down after the cell.
- ``scheduler="tcp://host:port"``, or an existing ``distributed.Client``: the
  tasks go to that cluster, which is left running.

Measurement is the same as for the other backends. Every task is pinned to
its own worker and warmed up there (gilfree imported, kernel resolved) before
the clock starts. Each task stamps its own start and end. Start-up (cluster,
connection, warm-up) is reported apart from the work span.

On a local cluster all the workers share this host's monotonic clock, so they
get a start time, as with any executor, and the span is first start to last
end. The workers of a remote cluster run on other hosts, whose clocks are not
comparable with this one. There the tasks start as soon as they arrive, the
span is the longest per-worker duration, and the timing says so
(``RunTiming.span_from``).

``pip install "gilfree[dask]"`` installs what it needs; without it the backend
is listed as unavailable, with that command.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from gilfree._worker import WorkerStamp, cancel_soon, ready, timed_at
from gilfree.backends._base import (
    Backend,
    RunTimeout,
    RunTiming,
    UnsupportedError,
    WorkerError,
    _describe,
    _overran,
    _ref,
    _timing,
)
from gilfree.kernels import Kernel

__all__ = [
    "CONNECT_TIMEOUT_S",
    "NO_PROFILER",
    "DaskBackend",
    "SchedulerUnreachable",
    "check_scheduler",
    "connect",
    "local_cluster",
    "reachable",
]

#: Seconds to wait for a scheduler given by address before giving up.
CONNECT_TIMEOUT_S = 5.0
#: Seconds to wait for a scheduler's handshake once connected: it sends one at once.
HANDSHAKE_TIMEOUT_S = 2.0


#: Seconds between checks, while a run waits on its tasks, that every worker
#: they are pinned to is still in the cluster.
WORKER_CHECK_S = 1.0
#: Dask config for gilfree's local clusters: no statistical profiler. Every
#: 10 ms it samples the stacks of every thread in each worker and in the
#: scheduler's process, a thread of work beside the kernel being timed; on a
#: free-threaded build, reading the frames of threads that are running can
#: crash the process (a segfault in distributed.profile).
NO_PROFILER = {"distributed.worker.profile.enabled": False}


class SchedulerUnreachable(ConnectionError):
    """The Dask scheduler at the given address did not answer in time."""


def _distributed() -> Any:
    import distributed

    return distributed


def reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`SchedulerUnreachable` (or ValueError for a malformed
    address) unless a TCP connection to ``address`` opens within ``timeout``.

    Checked before a ``distributed.Client`` is made: a Client that fails to
    connect leaves its event-loop thread running for the life of the process."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = url.hostname, url.port
    except ValueError:
        host = port = None
    if url.scheme not in ("tcp", "tls") or not host or not port:
        raise ValueError(
            f"{address!r} is not a scheduler address; write tcp://host:port, "
            "e.g. tcp://10.0.0.5:8786"
        )
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise SchedulerUnreachable(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
            f"({exc.strerror or type(exc).__name__}); is it running, and is the address "
            "right? Leave --scheduler out to start a local cluster"
        ) from None
    with sock:
        if url.scheme == "tcp" and not _speaks_dask(sock, min(timeout, HANDSHAKE_TIMEOUT_S)):
            raise SchedulerUnreachable(
                f"{address!r} answers, but not as a Dask scheduler (no Dask handshake within "
                f"{min(timeout, HANDSHAKE_TIMEOUT_S):g} s): is the port right? A scheduler "
                "prints its address when it starts (tcp://host:8786 by default). Leave "
                "--scheduler out to start a local cluster"
            )


def _speaks_dask(sock: Any, timeout: float) -> bool:
    """Whether the server on ``sock`` opens with a Dask comm handshake.

    A Dask server writes its handshake as soon as it accepts a connection,
    framed as distributed's TCP comm frames every message: the message's
    length in bytes, the number of frames, then each frame's length (all
    little-endian uint64). Any other server (a web server waits for a
    request) sends nothing, or something that does not add up."""
    import struct

    sock.settimeout(timeout)
    header = b""
    end = time.monotonic() + timeout
    try:
        while len(header) < 16 and time.monotonic() < end:
            chunk = sock.recv(16 - len(header))
            if not chunk:
                return False
            header += chunk
    except OSError:  # the timeout, or the server reset the connection
        return False
    if len(header) < 16:
        return False
    total, frames = struct.unpack("<QQ", header)
    return bool(0 < frames <= 64 and 8 * (1 + frames) < total <= 2**24)


def connect(address: str, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """A ``distributed.Client`` for the scheduler at ``address``, or
    :class:`SchedulerUnreachable` within ``timeout`` seconds."""
    reachable(address, timeout)
    distributed = _distributed()
    try:
        client = distributed.Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachable(
            f"cannot reach the Dask scheduler at {address!r} within {timeout:g} s "
            f"({type(exc).__name__}); is it running, and is the address right? "
            "Leave --scheduler out to start a local cluster"
        ) from None
    _quiet_abandoned_gathers(client)
    return client


def local_cluster(workers: int) -> Any:
    """A ``distributed.LocalCluster`` of ``workers`` worker processes, one
    thread each: the shape every gilfree measurement on Dask uses. The
    dashboard takes a free port (``None`` would still try 8787, warn when it is
    taken and leak the probe socket); logs below ERROR stay quiet; Dask's
    statistical profiler is off (:data:`NO_PROFILER`).

    Interrupted while it starts (Ctrl-C), the half-started cluster's worker
    processes are terminated and it is taken off distributed's list of
    clusters to close at exit, whose attempt on a cluster that never finished
    starting prints a long traceback."""
    import dask
    from distributed.deploy.spec import SpecCluster

    before = set(SpecCluster._instances)
    try:
        # The config is read as the scheduler and the nannies are made here;
        # a nanny hands it on to its worker process, restarts included.
        with dask.config.set(NO_PROFILER):
            return _distributed().LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=40,  # logging.ERROR: the table is the output
            )
    except BaseException:
        for half in set(SpecCluster._instances) - before:
            _abandon(half)
        raise


def _abandon(cluster: Any) -> None:
    """Terminate ``cluster``'s worker processes and take it off distributed's
    exit hook, which would otherwise try to close it again, for up to 10 s,
    or print a traceback for one that never finished starting."""
    from distributed.deploy.spec import SpecCluster

    _terminate_workers(cluster)
    cluster.shutdown_on_close = False  # skipped by distributed's exit hook
    SpecCluster._instances.discard(cluster)


def _quiet_abandoned_gathers(client: Any) -> None:
    """Drop asyncio's "Task exception was never retrieved ... AllExit" for
    this client's loop: the ``AllExit`` of a gather that gilfree abandoned
    (Ctrl-C, a timeout, a failed task) after cancelling its futures on
    purpose. Every other exception is reported as before."""
    all_exit = getattr(importlib.import_module("distributed.client"), "AllExit", None)
    loop = getattr(getattr(client, "loop", None), "asyncio_loop", None)
    if all_exit is None or loop is None:
        return
    previous = loop.get_exception_handler()

    def handler(loop: Any, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), all_exit):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def check_scheduler(scheduler: Any) -> Any:
    """``scheduler`` itself if it is None, an address or a client-like object
    (one with ``submit``); TypeError naming what it is otherwise."""
    is_client = callable(getattr(scheduler, "submit", None))
    if scheduler is not None and not isinstance(scheduler, str) and not is_client:
        raise TypeError(
            "scheduler must be an address such as 'tcp://host:8786' or a "
            f"distributed.Client, not {type(scheduler).__name__}"
        )
    return scheduler


class DaskBackend(Backend):
    name = "dask"
    description = "N Dask worker processes: a local cluster, or the one at --scheduler"
    options = frozenset({"scheduler"})

    def __init__(self, scheduler: Any = None) -> None:
        """``scheduler``: an address (``tcp://host:8786``) or a
        ``distributed.Client``; None starts a local cluster per cell."""
        super().__init__(scheduler=check_scheduler(scheduler))

    def availability(self) -> str | None:
        try:
            _distributed()
        except ImportError:
            return 'needs dask.distributed: pip install "gilfree[dask]"'
        return None

    @contextlib.contextmanager
    def cell(self, workers: int, options: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """One client for all the runs of a cell: a local cluster of
        ``workers`` processes when no scheduler is given (shut down after),
        a connection to the given address, or the caller's own client."""
        options = {**self.defaults, **options}
        scheduler = options.get("scheduler")
        if scheduler is not None and not isinstance(scheduler, str):
            yield dict(options)  # the caller's Client: theirs to close
            return
        if isinstance(scheduler, str):
            client = connect(scheduler)
            try:
                yield {**options, "scheduler": client}
            finally:
                client.close()  # our connection; the cluster is theirs and runs on
            return
        distributed = _distributed()
        cluster = local_cluster(workers)
        logger = logging.getLogger("distributed")
        level = logger.level
        try:
            client = distributed.Client(cluster, set_as_default=False)
            _quiet_abandoned_gathers(client)
            try:
                yield {**options, "scheduler": client}
            finally:
                client.close()
        except BaseException:
            # Ctrl-C, a timeout or a failure may leave a task running, and a
            # worker busy in Python answers the shutdown request only after
            # seconds: terminate the worker processes first. The scheduler
            # then logs each stream they cut (CommClosedError, with its
            # traceback) while it closes: expected, so not shown.
            logger.setLevel(logging.CRITICAL)
            _terminate_workers(cluster)
            raise
        finally:
            try:
                cluster.close()
            except BaseException:  # Ctrl-C while it closes
                _abandon(cluster)
                raise
            finally:
                logger.setLevel(level)

    def _run(
        self,
        kernel: Kernel,
        chunks: list[int],
        deadline: float | None,
        scheduler: Any = None,
        **_: Any,
    ) -> RunTiming:
        if scheduler is None or isinstance(scheduler, str):
            # A bare run() call: a cluster (or connection) for this run alone.
            with self.cell(len(chunks), {"scheduler": scheduler} if scheduler else {}) as opts:
                return self._run(kernel, chunks, deadline, **opts)
        client = scheduler
        t0 = time.perf_counter_ns()
        workers = _workers(client)
        if len(workers) < len(chunks):
            raise UnsupportedError(
                f"the Dask cluster has {len(workers)} worker(s), fewer than the "
                f"{len(chunks)} asked for"
            )
        local = _same_host(workers)
        ref = _ref(kernel)
        placed = workers[: len(chunks)]

        def submit(fn: Any, *args: Any, on: str) -> Any:
            return client.submit(fn, *args, workers=[on], allow_other_workers=False, pure=False)

        _gather(client, [submit(ready, ref, on=w) for w in placed], deadline, placed)
        t_ready = time.perf_counter_ns()
        # Local: a start time on the shared clock, as for any executor. Remote:
        # other hosts' clocks are not comparable, so each starts on arrival.
        go_ns = time.perf_counter_ns() + max(20_000_000, 2 * (t_ready - t0)) if local else 0
        futures = [
            submit(timed_at, ref, n, go_ns, None, on=w) for n, w in zip(chunks, placed, strict=True)
        ]
        stamps = [WorkerStamp(*s) for s in _gather(client, futures, deadline, placed)]
        t_done = time.perf_counter_ns()
        timing = _timing(t0, t_ready, t_done, stamps)
        if local:
            return timing
        longest = max((s.end_ns - s.start_ns for s in stamps), default=0) / 1e9
        return replace(timing, span_s=longest, span_from="per-worker durations")


def _terminate_workers(cluster: Any) -> None:
    """Terminate a local cluster's worker processes (their nannies stay to be
    closed); best effort, as it reaches into the nannies.

    A running nanny starts a new worker process when its worker exits. One
    started now would be spawned while the cluster closes, or, for a cluster
    abandoned half-started, outlive it (holding the parent's stdout and
    stderr open). So each nanny is first marked ``failed``, the one status in
    which it neither restarts its worker nor refuses to be closed later."""
    from distributed.core import Status

    for nanny in list(getattr(cluster, "workers", {}).values()):
        with contextlib.suppress(Exception):
            nanny.status = Status.failed
            nanny.process.process.terminate()


def _workers(client: Any) -> list[str]:
    """The cluster's worker addresses, asked of the scheduler now.

    Not ``client.scheduler_info()["workers"]``: that returns the client's
    cached identity, which its periodic refresh overwrites with one that lists
    no workers at all; a refresh landing between the call's own update and its
    return reads as an empty cluster (tests/test_dask.py provokes it with a
    1 ms refresh)."""
    return sorted(client.nthreads())


def _same_host(workers: list[str]) -> bool:
    """Whether every worker (by address) runs on this host, and so shares its clock."""
    import socket
    from urllib.parse import urlsplit

    here = {"127.0.0.1", "localhost", "::1", socket.gethostname()}
    with contextlib.suppress(OSError):
        here.add(socket.gethostbyname(socket.gethostname()))
    return all(urlsplit(w).hostname in here for w in workers)


def _gather(
    client: Any, futures: list[Any], deadline: float | None, workers: list[str]
) -> list[Any]:
    """Results in order; the first task that fails stops the others. Past the
    ``deadline``, the tasks are cancelled (a task already running on a worker
    runs on: Dask cannot stop it, but a local cluster is closed after its cell).

    Every task is pinned to its worker (``futures[i]`` to ``workers[i]``), so
    one whose worker dies would wait for it for ever (a local cluster's nanny
    restarts the worker under another address). A :class:`_Watch` cancels the
    tasks then, and the run fails naming the worker."""
    watch = _Watch(client, futures, workers)
    try:
        with watch:
            if deadline is not None:
                try:
                    for f in futures:  # a task that fails raises here, as in gather
                        # Not 0: Dask reads a zero timeout as none at all.
                        f.result(timeout=max(0.001, deadline - time.monotonic()))
                except (TimeoutError, asyncio.TimeoutError):  # distinct classes on 3.10
                    raise RunTimeout("") from None
            return list(client.gather(futures))
    except BaseException as exc:
        # Which task failed: read before cancelling, which changes the statuses.
        failed = next((i for i, f in enumerate(futures) if f.status == "error"), 0)
        client.cancel(futures)
        # Cancelling does not stop a task already running. A compiled
        # countdown stops on the cancel generation of its worker process,
        # bumped from the worker's event loop (best effort: a loop starved by a
        # kernel that holds the GIL answers late; an interpreted one runs on).
        # Not to a worker known to be gone: the scheduler would spend its 30 s
        # connect timeout on it, and this call would wait that long.
        with contextlib.suppress(Exception):
            if alive := [w for i, w in enumerate(workers) if i not in watch.gone]:
                client.run(cancel_soon, workers=alive, wait=False)
        if watch.gone:
            i = watch.gone[0]
            raise WorkerError(
                f"Dask worker {i} ({workers[i]}) left the cluster before its task "
                "finished: its process died (killed, crashed, or out of memory), and a "
                "task pinned to its worker cannot run on another",
                i,
            ) from None
        if isinstance(exc, RunTimeout):
            raise _overran(deadline) from None
        if isinstance(exc, (KeyboardInterrupt, UnsupportedError)):
            raise
        raise WorkerError(f"Dask task {failed} raised {_describe(exc)}", failed) from exc


class _Watch:
    """While a run waits on its tasks, a thread asks the scheduler every
    :data:`WORKER_CHECK_S` seconds which workers it has. If a worker that an
    unfinished task is pinned to is gone, its index goes in ``gone`` and the
    tasks are cancelled, which ends the wait.

    The question is asked on a thread of its own because its answer can take
    seconds while the workers keep the host's CPUs busy (up to 2.7 s was seen
    on a free-threaded build): the wait itself, its deadline and a task's
    failure are never held up by it."""

    def __init__(self, client: Any, futures: list[Any], workers: list[str]) -> None:
        self.client, self.futures, self.workers = client, futures, workers
        self.gone: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="gilfree-dask-watch", daemon=True)

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # the thread ends at once, or when its question is answered

    def _watch(self) -> None:
        while not self._stop.wait(WORKER_CHECK_S):
            try:
                present = set(_workers(self.client))
            except Exception:  # the client closed: the run is over
                return
            if self._stop.is_set():
                return
            pinned = enumerate(zip(self.futures, self.workers, strict=True))
            gone = [i for i, (f, w) in pinned if w not in present and f.status != "finished"]
            if gone:
                self.gone[:] = gone
                with contextlib.suppress(Exception):
                    self.client.cancel(self.futures)
                return
