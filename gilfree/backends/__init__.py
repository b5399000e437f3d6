"""The backend registry: ways to run N copies of a kernel at once.

One module per backend on a shared base, as :mod:`concurrent.futures` lays
out its executors: :mod:`~gilfree.backends._base` (:class:`Backend`,
:class:`RunTiming`, the errors), then ``serial``, ``threads``, ``processes``,
``interpreters``, ``executor`` and ``dask``. The start-line protocol every
backend follows is described in :mod:`gilfree.backends._base`.

To add a backend: subclass :class:`Backend` in a module of its own, implement
``_run``, and add an instance to ``_BACKENDS`` below; the tests pick it up
from the registry.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

from gilfree._registry import Registry
from gilfree.backends._base import (
    READY_TIMEOUT_S,
    Backend,
    RunTimeout,
    RunTiming,
    UnsupportedError,
    WorkerError,
    resolve_start_method,
)
from gilfree.backends.dask import DaskBackend
from gilfree.backends.executor import ExecutorBackend
from gilfree.backends.interpreters import InterpretersBackend
from gilfree.backends.processes import ProcessesBackend
from gilfree.backends.serial import SerialBackend
from gilfree.backends.threads import ThreadsBackend

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKENDS",
    "READY_TIMEOUT_S",
    "Backend",
    "DaskBackend",
    "ExecutorBackend",
    "InterpretersBackend",
    "ProcessesBackend",
    "RunTimeout",
    "RunTiming",
    "SerialBackend",
    "ThreadsBackend",
    "UnsupportedError",
    "WorkerError",
    "get_backend",
    "iter_available",
    "resolve_start_method",
]

_BACKENDS: list[Backend] = [
    SerialBackend(),
    ThreadsBackend(),
    ProcessesBackend(),
    InterpretersBackend(),
    DaskBackend(),
]

#: name -> :class:`Backend`. Any :class:`concurrent.futures.Executor` is accepted too.
BACKENDS: Registry[Backend] = Registry("backend", {b.name: b for b in _BACKENDS})

#: Backends the demo, a sweep and a check run when none are named: not serial
#: (it is the baseline) and not dask (a cluster per cell takes seconds; name it
#: to run it).
DEFAULT_BACKENDS = tuple(b for b in BACKENDS if b not in ("serial", "dask"))


def get_backend(backend: str | Backend | concurrent.futures.Executor) -> Backend:
    """Return the :class:`Backend` for a name, a backend or an executor."""
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, concurrent.futures.Executor):
        return ExecutorBackend(backend)
    return BACKENDS[backend]


def iter_available() -> Iterator[tuple[str, str | None]]:
    """(name, reason it is unavailable or None) for every registered backend."""
    for name, b in BACKENDS.items():
        yield name, b.availability()
