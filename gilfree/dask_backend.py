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

# First: gilfree.backends imports gilfree._dask as it finishes, the one order
# in which both complete (so ``import gilfree.dask_backend`` works on its own).
import gilfree.backends  # noqa: F401
from gilfree._dask import (
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
