from __future__ import annotations

import signal

import pytest

from gilfree import KERNELS, Kernel

# A suite started as a background job of a non-interactive shell inherits
# SIGINT ignored, and Python then installs no handler: the Ctrl-C tests, which
# send SIGINT to this process and to the gilfree processes they start, would
# see nothing and wait. Restore what a terminal start gives; the processes
# started from here then get SIGINT's default across exec, where Python
# installs its own handler.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: Parametrized cases that go to the slow tier, by test name and the
#: parameters that move it: each behaviour keeps a quick case. A Dask cell
#: starts a local cluster (about half a second): one worker count of each
#: kernel stays quick (2, where the workers run side by side), 1 and 3 are slow.
SLOW_CASES = {"test_every_kernel_on_every_backend": {"backend": "dask", "workers": (1, 3)}}


@pytest.hookimpl(tryfirst=True)  # before -m selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        moved = SLOW_CASES.get(getattr(item, "originalname", ""))
        spec = getattr(item, "callspec", None)
        if not moved or spec is None:
            continue
        params = spec.params
        backend = params.get("backend")
        if (
            getattr(backend, "name", backend) == moved["backend"]
            and params.get("workers") in moved["workers"]
        ):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``needs_gil`` tests check what the GIL does: where it is off (a
    free-threaded build), they skip, saying how to run them there."""
    from gilfree.meter import gil_enabled

    if item.get_closest_marker("needs_gil") and not gil_enabled():
        pytest.skip(
            "needs a GIL, and this free-threaded build runs without one: run it with "
            "PYTHON_GIL=1 (tests/test_free_threaded.py covers the build as it is)"
        )


@pytest.fixture(params=list(KERNELS), ids=list(KERNELS))
def kernel(request: pytest.FixtureRequest) -> Kernel:
    """Every registered kernel: a new entry in the registry is tested automatically."""
    return KERNELS[request.param]


def live_children() -> list[object]:
    """Child processes of this process that are still running."""
    import multiprocessing

    return list(multiprocessing.active_children())


def interpreter_count() -> int:
    """Number of interpreters alive in this process (1 where there are none)."""
    import importlib

    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            return len(importlib.import_module(name).list_all())
        except ImportError:
            continue
    return 1


def our_threads() -> list[object]:
    """Live threads, less distributed's "Dask-Offload" pool: distributed (the
    dask backend) creates it as a module global and keeps it, idle, for the
    life of the process. It is not gilfree's to stop."""
    import threading

    return [t for t in threading.enumerate() if not t.name.startswith("Dask-Offload")]


def threads_settle_to(count: int, timeout: float = 10.0) -> list[object]:
    """Wait until no more than ``count`` of :func:`our_threads` are alive, and
    return them. Threads a backend stopped may take a moment to end (a closed
    Dask cluster's event loop ends asynchronously); one that never ends fails
    the caller's assertion."""
    import time

    deadline = time.monotonic() + timeout
    while len(alive := our_threads()) > count and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@pytest.fixture(autouse=True)
def fewer_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most 5 rounds a cell by default (the minimum), in every test of
    this process: the tests check what a command or a check reports, not how
    precise it is, and a cell the host's noise keeps from its precision
    target would run all 30 (a 2 x 12 ms cell took 2.8 s). The rules that add
    rounds are tested with exact timings and explicit limits
    (tests/test_engine_rules.py). Every round of an
    interpreters cell also creates subinterpreters, whose memory CPython 3.12
    and 3.13 never give back (python/cpython#110411)."""
    import gilfree.plan

    monkeypatch.setattr(gilfree.plan, "DEFAULT_MAX_ROUNDS", gilfree.plan.DEFAULT_ROUNDS)
