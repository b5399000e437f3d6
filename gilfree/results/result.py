"""The :class:`Result`: one measured cell, an immutable value.

It holds its rounds (the serial run, the parallel run and the host's
capacity pair, back to back), its context and its status, and nothing else.
What is derived from the rounds is :mod:`gilfree.results.stats`'s; its saved shape
is :mod:`gilfree.results.serialise`'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gilfree.backends import RunTiming
from gilfree.meter import GILReading
from gilfree.plan import Scaling
from gilfree.results.context import CapacityRound, Context, HostLoad, ThreadCost
from gilfree.results.serialise import ResultIO
from gilfree.sampler import Handoffs, SamplerReading

Status = Literal["ok", "unsupported", "failed", "timeout"]


@dataclass(frozen=True)
class Result(ResultIO):
    """One measured cell: raw timings, their context, and derived figures.

    ``runs`` are the timed parallel runs, one per round (warm-ups are kept
    apart in ``warmups``); ``baseline_s`` and ``baseline_cpu_s`` are the span
    and CPU time of the serial run of the same kernel doing the same total
    work in one thread, measured back to back with ``runs[i]`` in the same
    round (``serial_first[i]`` says which went first). ``capacity[i]`` is
    the host's capacity pair of that round. Every round is kept, including
    those the consistency check leaves out of the figures.

    ``status`` is ``"ok"``, ``"unsupported"`` (it cannot run here),
    ``"failed"`` (a worker raised or died) or ``"timeout"`` (it overran the
    plan's ``timeout``); for all but ``"ok"``, ``reason`` says why and there
    are no runs. ``gil`` is the GIL contention read during one untimed run on
    backends whose workers share or own a GIL (threads, interpreters); None
    elsewhere. ``stopped`` says why no more rounds were added.
    """

    kernel: str
    backend: str
    workers: int
    n: int
    scaling: Scaling
    start_method: str | None
    status: Status
    reason: str
    runs: tuple[RunTiming, ...]
    warmups: tuple[RunTiming, ...]
    baseline_s: tuple[float, ...]
    context: Context = field(repr=False)
    gil: GILReading | None = None
    #: Seconds to set up the cell's shared resources once, before its first run
    #: (a Dask cluster started for the cell); about 0 for other backends.
    cell_setup_s: float = 0.0
    baseline_cpu_s: tuple[float, ...] = ()
    serial_first: tuple[bool, ...] = ()
    capacity: tuple[CapacityRound | None, ...] = ()
    #: The precision asked for (None: a fixed number of rounds).
    precision: float | None = None
    #: Why rounds stopped: "precision reached", "fixed rounds", "time budget",
    #: "round limit", "interrupted".
    stopped: str = ""
    host: HostLoad | None = None
    #: One thread's time on this build against the first build named with
    #: ``--python``, measured in the same run; None with one build.
    thread_cost: ThreadCost | None = None
    #: For cells whose workers share this interpreter's GIL (threads): the
    #: GIL sampler's reading of an untimed serial run of this cell's kernel
    #: (one worker alone), and the GIL's hand-offs in its timed parallel runs,
    #: pooled over rounds; None elsewhere and in files saved before gilfree 0.3.
    gil_alone: SamplerReading | None = None
    gil_handoffs: Handoffs | None = None
