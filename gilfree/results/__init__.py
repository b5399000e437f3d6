"""Results, in one place to import them from (the 0.1 path).

A :class:`Result` is an immutable cell that carries its raw rounds, its
context and its status (:mod:`gilfree.results.result`). What it says is derived from
those rounds on demand (:mod:`gilfree.results.stats`); its saved shape is versioned
(:mod:`gilfree.results.serialise`), and the files it is saved in are
:mod:`gilfree.results.files`'s. Where and how it was measured is
:mod:`gilfree.results.context`'s. This module re-exports their public names.
"""

from __future__ import annotations

from gilfree.results.context import (
    BUSY_HOST_CPUS,
    CONSISTENCY_SLACK,
    CPU_BOUND_ABOVE,
    CapacityRound,
    Context,
    HostLoad,
    ThreadCost,
    build_label,
    consistent,
    context,
    label_of,
    thread_pools,
)
from gilfree.results.files import JsonLog, SavedRun, load, read_json, to_json, write_json
from gilfree.results.result import Result, Status
from gilfree.results.serialise import FORMAT, FORMAT_VERSION
from gilfree.results.stats import (
    FLAG_EXCLUDED,
    MIN_ROUNDS_FOR_CI,
    NO_GAIN,
    SHORT_RUN_S,
    SPREAD_WARNING,
    median_ci,
)

__all__ = [
    "BUSY_HOST_CPUS",
    "CONSISTENCY_SLACK",
    "CPU_BOUND_ABOVE",
    "FLAG_EXCLUDED",
    "FORMAT",
    "FORMAT_VERSION",
    "MIN_ROUNDS_FOR_CI",
    "NO_GAIN",
    "SHORT_RUN_S",
    "SPREAD_WARNING",
    "CapacityRound",
    "Context",
    "HostLoad",
    "JsonLog",
    "Result",
    "SavedRun",
    "Status",
    "ThreadCost",
    "build_label",
    "consistent",
    "context",
    "label_of",
    "load",
    "median_ci",
    "read_json",
    "thread_pools",
    "to_json",
    "write_json",
]
