"""The dask backend on a real local cluster (no mocks): every kernel, counts,
clean shutdown, an existing client, and an unreachable scheduler."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import live_children
from interrupting import alive

from gilfree import KERNELS, Kernel
from gilfree.backends import BACKENDS, get_backend
from gilfree.dask_backend import local_cluster
from gilfree.measure import run
from gilfree.meter import gil_enabled

distributed = pytest.importorskip("distributed")

DASK = BACKENDS["dask"]


def small_n(kernel: Kernel) -> int:
    return 200_000 if kernel.name in ("python", "cython-object") else 10_000_000


@pytest.fixture(scope="module")
def client():  # type: ignore[no-untyped-def]
    """One local cluster (2 worker processes, 1 thread each) for the module."""
    with (
        local_cluster(2) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


def test_every_kernel_counts_right_on_a_cluster(client, kernel: Kernel) -> None:  # type: ignore[no-untyped-def]
    chunks = [small_n(kernel), small_n(kernel) + 1]
    timing = DASK.run(kernel, chunks, scheduler=client)
    assert timing.iterations == sum(chunks)
    assert [w.iterations for w in timing.workers] == chunks
    assert timing.span_from == "shared clock"  # a local cluster shares this host's clock
    # Pinned one task per worker: they overlap in time.
    long = DASK.run(KERNELS["cython-nogil"], [400_000_000] * 2, scheduler=client)
    assert max(w.start_ns for w in long.workers) < min(w.end_ns for w in long.workers)


def test_workers_on_other_hosts_are_timed_by_their_own_durations(
    client, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # No second host here: the local cluster is declared remote, so the real
    # remote path runs (start on arrival, span = the longest worker's duration).
    import gilfree.backends.dask as dask_impl

    monkeypatch.setattr(dask_impl, "_same_host", lambda _workers: False)
    timing = DASK.run(KERNELS["cython-nogil"], [10**8, 2 * 10**8], scheduler=client)
    assert timing.span_from == "per-worker durations"
    assert timing.span_s == max(w.end_ns - w.start_ns for w in timing.workers) / 1e9
    assert timing.iterations == 3 * 10**8


@pytest.mark.slow  # 100 runs against a client refreshing every millisecond
def test_the_worker_count_survives_the_clients_periodic_refresh(client) -> None:  # type: ignore[no-untyped-def]
    """The client's periodic refresh caches an identity that lists no
    workers; a run must never read it as an empty cluster (CI once failed a
    run so, with the default 2 s refresh). A 1 ms refresh makes the race
    likely on every call: before the fix this test failed with CI's message."""
    import dask

    with dask.config.set({"distributed.client.scheduler-info-interval": "1ms"}):
        refreshing = distributed.Client(client.scheduler.address, set_as_default=False)
    with refreshing:
        for _ in range(100):
            timing = DASK.run(KERNELS["cython-nogil"], [1000, 1000], scheduler=refreshing)
            assert timing.iterations == 2000


def test_the_public_module_imports_first_in_a_fresh_interpreter() -> None:
    """``import gilfree.dask_backend`` before anything else once hit a
    circular import (gilfree.backends imports the backend as it finishes)."""
    import subprocess
    import sys

    code = "import gilfree.dask_backend as d; print(d.DaskBackend.name, d.local_cluster.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["dask", "local_cluster"]


def test_same_host_is_read_from_the_worker_addresses() -> None:
    import socket

    from gilfree.backends.dask import _same_host

    assert _same_host(["tcp://127.0.0.1:40001", f"tcp://{socket.gethostname()}:40002"])
    assert not _same_host(["tcp://127.0.0.1:40001", "tcp://192.0.2.7:40002"])  # TEST-NET-1


def _profiler_on() -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


def test_a_local_cluster_runs_without_dasks_profiler(client) -> None:  # type: ignore[no-untyped-def]
    """The workers (their nannies pass the config on) and the scheduler's
    event loop start no statistical profiler: it samples every thread every
    10 ms, and on a free-threaded build it segfaulted processes."""
    from collections import deque

    assert client.run(_profiler_on) == {w: False for w in client.nthreads()}
    # With the profiler on, the loop's ``profile`` is the sampling thread's state.
    assert isinstance(client.cluster.loop.profile, deque)


def test_an_existing_client_is_left_running(client) -> None:  # type: ignore[no-untyped-def]
    r = run("cython-nogil", "dask", workers=2, n=10**7, repeats=1, scheduler=client)
    assert r.ok and r.runs[0].iterations == 10**7
    assert client.status == "running"
    assert len(client.nthreads()) == 2


def test_a_local_cluster_is_started_and_shut_down_per_cell() -> None:
    before = len(live_children())
    r = run("python", "dask", workers=2, n=200_000, repeats=2, precision=None)
    assert r.ok
    assert len(r.runs) == 2 and all(t.iterations == 200_000 for t in r.runs)
    assert r.setup_median_s >= 0
    deadline = time.monotonic() + 10
    while len(live_children()) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(live_children()) == before  # no worker process left behind


def test_more_workers_than_the_cluster_has_is_unsupported(client) -> None:  # type: ignore[no-untyped-def]
    r = run("cython-nogil", "dask", workers=3, n=10**6, repeats=1, scheduler=client)
    assert not r.ok and "fewer than the 3 asked for" in r.reason


def test_a_failing_task_reaches_the_caller(client) -> None:  # type: ignore[no-untyped-def]
    from gilfree.backends import WorkerError

    with pytest.raises(WorkerError, match="must be >= 0"):
        DASK.run(KERNELS["cython-nogil"], [10, -1], scheduler=client)


def test_an_unreachable_scheduler_is_a_clear_error_within_seconds() -> None:
    from gilfree.dask_backend import SchedulerUnreachable

    started = time.monotonic()
    with pytest.raises(SchedulerUnreachable, match="cannot reach the Dask scheduler"):
        run("cython-nogil", "dask", workers=2, n=1000, repeats=1, scheduler="tcp://127.0.0.1:9")
    assert time.monotonic() - started < 15


def test_cli_unreachable_scheduler_exits_2_before_any_work(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gilfree.cli import main

    started = time.monotonic()
    with pytest.raises(SystemExit) as info:
        main(["run", "-b", "dask", "--scheduler", "tcp://127.0.0.1:9", "-n", "1000"])
    assert info.value.code == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    assert time.monotonic() - started < 15


def test_cli_scheduler_at_a_live_port_that_is_not_dask_exits_2_within_seconds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A web server accepts the connection and waits for a request: a Client
    # would wait with it for minutes. (The wait for a scheduler's greeting is
    # cut to half a second: the path is the same at the real 2 s.)
    import http.server
    import threading

    import gilfree.backends.dask
    from gilfree.cli import main

    monkeypatch.setattr(gilfree.backends.dask, "HANDSHAKE_TIMEOUT_S", 0.5)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"tcp://127.0.0.1:{server.server_address[1]}"
        started = time.monotonic()
        with pytest.raises(SystemExit) as info:
            main(["run", "-b", "dask", "--scheduler", address, "-n", "1000"])
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "answers, but not as a Dask scheduler" in err and len(err.splitlines()) == 1
    assert took < 5


def test_a_real_schedulers_handshake_is_recognised() -> None:
    import dask
    from distributed import LocalCluster

    from gilfree.backends.dask import NO_PROFILER, reachable

    with (
        dask.config.set(NO_PROFILER),
        LocalCluster(
            n_workers=0,
            processes=False,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"protocol": "tcp"},  # in one process it would be inproc://
        ) as cluster,
    ):
        assert cluster.scheduler_address.startswith("tcp://")
        reachable(cluster.scheduler_address)  # no error


HALF_STARTED = """
import gilfree.backends.dask as d
from distributed.core import Status
from distributed.deploy.spec import SpecCluster

original = SpecCluster.__init__

def interrupted_init(self, *args, **kwargs):
    original(self, *args, **kwargs)
    pids = [nanny.process.process.pid for nanny in self.workers.values()]
    print(*pids, flush=True)
    self.status = Status.init  # as Ctrl-C during the start leaves it
    raise KeyboardInterrupt

SpecCluster.__init__ = interrupted_init
if __name__ == "__main__":
    import multiprocessing, time
    try:
        d.local_cluster(2)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    time.sleep(1.5)  # a nanny would have started a new worker by now
    print(len(multiprocessing.active_children()), flush=True)
"""


def test_ctrl_c_while_a_local_cluster_starts_leaves_no_traceback_or_process(
    tmp_path: Path,
) -> None:
    # distributed's exit hook used to close the half-started cluster again and
    # print 25 lines ending in "Status.init". Its nannies must not restart the
    # workers that gilfree terminates.
    script = tmp_path / "half_started.py"
    script.write_text(HALF_STARTED)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    pids, said, left = proc.stdout.splitlines()
    assert said == "interrupted" and len(pids.split()) == 2
    # No nanny started a worker in place of the terminated ones: that one would
    # outlive the script, and hold its stdout and stderr open.
    assert left == "0"
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert time.monotonic() - started < 30  # no 10 s close of a cluster never started
    assert alive({int(pid) for pid in pids.split()}) == set()  # its worker processes


def test_dask_is_listed_with_its_availability() -> None:
    assert DASK.availability() is None  # installed here
    assert get_backend("dask") is DASK


def test_without_distributed_dask_is_unavailable_and_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gilfree.backends.dask as dask_impl

    def missing() -> None:
        raise ImportError("No module named 'distributed'")

    monkeypatch.setattr(dask_impl, "_distributed", missing)
    reason = DASK.availability()
    assert reason == 'needs dask.distributed: pip install "gilfree[dask]"'
    r = run("cython-nogil", "dask", workers=2, n=1000, repeats=1)
    assert not r.ok and r.reason == reason


def test_a_timed_out_compiled_task_is_stopped_on_the_workers(client) -> None:  # type: ignore[no-untyped-def]
    from gilfree.backends import RunTimeout

    t0 = time.monotonic()
    with pytest.raises(RunTimeout):
        DASK.run(KERNELS["cython-nogil"], [10**12] * 2, scheduler=client, deadline=t0 + 0.5)
    # Cancelling takes two requests to the scheduler (cancel, then the bump on
    # the workers), and the timeout returns after them. With both CPUs busy
    # counting, they took a few ms on a GIL build, but on free-threaded 3.13t
    # up to a second each, and up to 5 s in all: distributed's latency there,
    # still far from the minutes that 10**12 would count for.
    assert time.monotonic() - t0 < (2 if gil_enabled() else 10)
    # Cancelling a future does not stop a running task; the cancel generation
    # bumped on the workers does, so they are free again at once (10**12 would
    # keep them busy for minutes).
    t1 = time.monotonic()
    assert DASK.run(KERNELS["cython-nogil"], [10**6] * 2, scheduler=client).iterations == 2 * 10**6
    assert time.monotonic() - t1 < 10


@pytest.mark.parametrize(
    "how",
    # One way to die in the quick suite; the others take the same path (a
    # worker process gone) and run in the slow tier.
    [
        "kill",
        pytest.param("segfault", marks=pytest.mark.slow),
        pytest.param("exit", marks=pytest.mark.slow),
    ],
)
def test_a_worker_that_dies_fails_its_cell_within_seconds(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every task is pinned to its worker, so a task whose worker process dies
    would wait for it for ever (the nanny restarts the worker under another
    address). The cell fails instead, naming the worker, and no process is
    left behind."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the workers import userfuncs
    import userfuncs

    from gilfree.checker import check_call

    before = len(live_children())
    t0 = time.monotonic()
    report = check_call(
        userfuncs.die_in_worker, (how,), backends=["dask"], repeats=1, warmups=0, precision=None
    )
    assert time.monotonic() - t0 < 25  # a cluster's start and close, and seconds to notice
    (cell,) = report.results
    assert cell.status == "failed", cell
    left = r"Dask worker [01] \(tcp://\S+\) left the cluster before its task finished"
    assert re.search(left, cell.reason), cell.reason
    deadline = time.monotonic() + 10
    while len(live_children()) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(live_children()) == before
