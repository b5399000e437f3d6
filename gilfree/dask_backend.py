"""The dask backend's public names, where gilfree 0.1 had them.

The backend lives in :mod:`gilfree.backends.dask`; this module keeps
``from gilfree.dask_backend import local_cluster`` (and the rest) working for
code written against 0.1.
"""

from __future__ import annotations

from gilfree.backends.dask import (
    CONNECT_TIMEOUT_S,
    DaskBackend,
    SchedulerUnreachable,
    connect,
    local_cluster,
    reachable,
)

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DaskBackend",
    "SchedulerUnreachable",
    "connect",
    "local_cluster",
    "reachable",
]
