"""Where and how a result was measured: the :class:`Context` of a process,
the host's capacity pair and load around a cell, and one thread's cost
against another build."""

from __future__ import annotations

import datetime
import functools
import math
import os
import platform
import sys
import sysconfig
from dataclasses import dataclass, field
from typing import Any

#: A round may read a speedup up to this much above what its busy CPUs allow
#: (unequal CPUs: a serial run on the slower of two reads up to ~1.2x over).
CONSISTENCY_SLACK = 0.15


#: The consistency check needs a serial run that keeps a CPU busy; below
#: this many busy CPUs (sleeping, waiting on I/O) there is nothing to check.
CPU_BOUND_ABOVE = 0.5


#: Other processes using this many CPUs on average during a cell: a busy host.
BUSY_HOST_CPUS = 0.3


def _busy(cpu_s: float, span_s: float) -> float:
    return cpu_s / span_s if span_s > 0 else float("nan")


def consistent(
    ratio: float, serial_s: float, serial_cpu_s: float, parallel_s: float, parallel_cpu_s: float
) -> bool:
    """Whether one round's speedup ``ratio`` is possible given its busy CPUs.

    The serial run keeps ``serial_cpu_s / serial_s`` CPUs busy (about 1), the
    parallel run ``parallel_cpu_s / parallel_s``; doing the same work at the
    same speed per CPU, the parallel run cannot be faster by more than the
    ratio of the two (plus :data:`CONSISTENCY_SLACK` for unequal CPUs). A
    larger ratio means the host ran at different speeds during the two runs.
    Work that keeps no CPU busy (sleeping, I/O) cannot be checked this way
    and passes.
    """
    busy_serial = _busy(serial_cpu_s, serial_s)
    busy_parallel = _busy(parallel_cpu_s, parallel_s)
    if not busy_serial >= CPU_BOUND_ABOVE or math.isnan(busy_parallel) or math.isnan(ratio):
        return True
    return ratio <= busy_parallel / busy_serial * (1 + CONSISTENCY_SLACK)


@dataclass(frozen=True)
class Context:
    """Where and how a result was measured."""

    python: str
    implementation: str
    free_threaded_build: bool
    gil_enabled: bool
    switch_interval_s: float
    cpu_count: int | None
    cpu_affinity: tuple[int, ...] | None
    machine: str
    processor: str
    platform: str
    gilfree: str
    timestamp: str
    #: How gilfree's compiled module was built: ``{"cython": ..., "compiler": ...}``.
    build: dict[str, str] = field(default_factory=dict, hash=False)
    #: NumPy's version, where it is installed.
    numpy: str | None = None
    #: The native thread pools loaded in this process when the result was
    #: taken (threadpoolctl's ``threadpool_info()``: BLAS, OpenMP), each with
    #: its ``num_threads``. A BLAS pool of several threads makes a "serial"
    #: run of a function that calls BLAS parallel already.
    thread_pools: tuple[dict[str, Any], ...] = field(default=(), hash=False)
    #: Environment settings the interpreter ran with when ``--python`` named
    #: them (``{"PYTHON_GIL": "1"}``): part of the build, see :func:`build_label`.
    settings: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def cpus_available(self) -> int:
        """CPUs this process may run on (its affinity), else the CPU count."""
        return len(self.cpu_affinity) if self.cpu_affinity else (self.cpu_count or 1)


def build_label(ctx: Context) -> str:
    """The build a result was measured on, as the report names it: the
    version, ``t`` for a free-threaded build, then any settings it ran with
    (``3.13.0``, ``3.13.5t``, ``3.13.5t PYTHON_GIL=1``)."""
    return label_of(ctx.python, ctx.free_threaded_build, ctx.settings)


def label_of(python: str, free_threaded: bool, settings: dict[str, str]) -> str:
    """``3.13.5t PYTHON_GIL=1`` from its parts (see :func:`build_label`)."""
    label = python + ("t" if free_threaded else "")
    return " ".join([label, *(f"{k}={v}" for k, v in settings.items())])


@dataclass(frozen=True)
class ThreadCost:
    """What one thread of a kernel costs on this result's build against
    another build (``against``, the first one named): the median of per-round
    ratios of single-thread times, the two builds run back to back in each
    round, order alternating, with its bootstrap 95% interval. Above 1: one
    thread is slower here."""

    against: str
    ratio: float
    low: float
    high: float
    rounds: int


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def context() -> Context:
    """The :class:`Context` of this process, now."""
    from gilfree._version import __version__

    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    affinity = tuple(sorted(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else None
    return Context(
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        free_threaded_build=bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        gil_enabled=True if is_gil_enabled is None else bool(is_gil_enabled()),
        switch_interval_s=sys.getswitchinterval(),
        cpu_count=os.cpu_count(),
        cpu_affinity=affinity,
        machine=platform.machine(),
        processor=_cpu_model(),
        platform=platform.platform(),
        gilfree=__version__,
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        build=_build_info(),
        numpy=_numpy_version(),
        thread_pools=thread_pools(),
    )


@functools.cache
def _build_info() -> dict[str, str]:
    from gilfree import _countdown

    return dict(_countdown.build_info())


@functools.cache
def _numpy_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("numpy")
    except Exception:  # not installed (or no metadata): nothing to record
        return None


#: What :func:`thread_pools` keeps of each pool threadpoolctl reports.
POOL_KEYS = ("user_api", "internal_api", "prefix", "version", "num_threads", "filepath")


def thread_pools() -> tuple[dict[str, Any], ...]:
    """The BLAS and OpenMP thread pools loaded in this process now
    (threadpoolctl), or none where threadpoolctl is missing."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ()
    return tuple({k: pool.get(k) for k in POOL_KEYS} for pool in threadpool_info())


@dataclass(frozen=True)
class CapacityRound:
    """The host's parallel capacity in one round: the ``cython-nogil`` kernel
    doing the same work in one thread (``serial_*``) and split over
    ``workers`` processes (``parallel_*``), back to back."""

    workers: int
    serial_s: float
    serial_cpu_s: float
    parallel_s: float
    parallel_cpu_s: float

    @property
    def speedup(self) -> float:
        return self.serial_s / self.parallel_s if self.parallel_s > 0 else float("nan")

    @property
    def consistent(self) -> bool:
        return consistent(
            self.speedup, self.serial_s, self.serial_cpu_s, self.parallel_s, self.parallel_cpu_s
        )


@dataclass(frozen=True)
class HostLoad:
    """How busy the host was around a cell.

    ``load_before`` / ``load_after``: the 1-minute load average just before
    the cell's first run and just after its last (it counts gilfree's own
    workers too). ``others_cpus``: CPUs used on average by every process but
    this one and its finished children while the cell was measured;
    ``steal_cpus``: CPU time the hypervisor gave to other guests (Linux, from
    ``/proc/stat``; None elsewhere).
    """

    load_before: float | None
    load_after: float | None
    others_cpus: float | None
    steal_cpus: float | None
    seconds: float

    @property
    def busy(self) -> bool:
        """Other processes, or other guests, took a noticeable share of the CPUs."""
        return any(
            v is not None and v >= BUSY_HOST_CPUS for v in (self.others_cpus, self.steal_cpus)
        )
