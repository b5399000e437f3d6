"""Reports: a terminal table and one verdict line per kernel.

The JSON forms live in :mod:`gilfree.results` and the plot in
:mod:`gilfree.plot`; their functions are importable from here too, where
gilfree 0.1 documented them (``gilfree.report.read_json``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from gilfree._text import plain, workers
from gilfree.plot import PLOT_FORMATS, PlotUnavailableError, plot, plot_format, require_matplotlib
from gilfree.results import (
    MIN_ROUNDS_FOR_CI,
    NO_GAIN,
    JsonLog,
    Result,
    SavedRun,
    ThreadCost,
    build_label,
    load,
    read_json,
    to_json,
    write_json,
)
from gilfree.sampler import MIN_SAMPLES, SOURCE_STATE, SamplerReading
from gilfree.scaling_law import law_lines, laws

__all__ = [
    "PLOT_FORMATS",
    "JsonLog",
    "PlotUnavailableError",
    "SavedRun",
    "across_builds",
    "build_labels",
    "cell_mark",
    "classic_summary",
    "compact_table",
    "law_lines",
    "laws",
    "load",
    "plot",
    "plot_format",
    "read_json",
    "require_matplotlib",
    "table",
    "to_json",
    "unsupported_notes",
    "verdict",
    "verdict_word",
    "verdicts",
    "write_json",
]


def _x(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def _s(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"


#: A cell's one-off setup (a Dask cluster) is shown beside the per-run
#: start-up from this many seconds.
CELL_SETUP_SHOWN = 0.01


def _n(value: int) -> str:
    """12,345 up to a million, then 1.23e+08: short either way."""
    return f"{value:,}" if value < 1_000_000 else f"{value:.2e}"


def table(results: Sequence[Result], title: str | None = "gilfree", wide: bool = False) -> Table:
    """A rich table: one row per cell; cells that did not run (unsupported,
    failed, timed out) point to their reason in :func:`unsupported_notes`.

    The default fits 80 columns: kernel, backend, workers, the speedup with
    its 95% interval (``!`` where the cell has a warning), GIL held (by one
    worker alone, :func:`held_cell`) and a one-word mark (:func:`cell_mark`).
    ``wide`` shows every column: n, span, rounds, share of capacity, busy
    CPUs, GIL hand-offs a second, the wait meter's GIL wait, start-up and
    the classic time."""
    if not wide:
        return _compact(results, title)
    t = Table(title=_title(title), title_justify="left")
    multi = len(build_labels(results)) > 1
    for name, justify in [
        ("kernel", "left"),
        *([("build", "left")] if multi else []),
        ("backend", "left"),
        ("workers", "right"),
        ("n", "right"),
        ("span", "right"),
        ("rounds", "right"),
        ("speedup [95% CI]", "right"),
        ("of capacity", "right"),
        ("busy CPUs", "right"),
        ("GIL held", "right"),
        ("hand-offs/s", "right"),
        ("GIL wait", "right"),
        ("start-up", "right"),
        ("classic", "right"),
    ]:
        t.add_column(name, justify=justify, no_wrap=name != "kernel", overflow="fold")  # type: ignore[arg-type]
    reasons = unsupported_notes(results)
    for r in results:
        head = _head(r, multi)
        if not r.ok:
            t.add_row(*head, _n(r.n), _did_not_run(r, reasons))
            continue
        rounds = Text(str(r.rounds) + (f", {r.excluded_rounds} out" if r.excluded_rounds else ""))
        if r.warnings:
            rounds.append(" !", style="red")
        share = "-" if math.isnan(r.share) else f"{r.share:.0%}"
        t.add_row(
            *head,
            _n(r.n),
            _s(r.median_s),
            rounds,
            _speedup_cell(r),
            share,
            f"{r.busy_cpus:.2f}",
            held_cell(r),
            "" if r.handoffs_per_s is None else f"{r.handoffs_per_s:,.0f}",
            r.gil.short() if r.gil is not None else "",
            _s(r.setup_median_s)
            + (f" + {_s(r.cell_setup_s)} once" if r.cell_setup_s >= CELL_SETUP_SHOWN else ""),
            _s(r.total_median_s),
        )
    return t


def compact_table(title: str | None, columns: Sequence[tuple[str, str]]) -> Table:
    """An empty table in the compact style: no edges, a rule under the header
    and one padding between columns, so that six columns of a sweep fit 80
    characters (79 at the widest: cython-object, interpreters, a flagged
    interval, GIL-bound). ``columns``: (name, ``left`` or ``right``)."""
    t = Table(
        title=_title(title),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for i, (name, justify) in enumerate(columns):
        # The first column (the name) folds onto more lines when a long name
        # would push the figures off an 80-column screen; the figures never wrap.
        t.add_column(name, justify=justify, no_wrap=i > 0, overflow="fold")  # type: ignore[arg-type]
    return t


def _title(title: str | None) -> Text | None:
    return None if title is None else plain(title)


def _head(r: Result, multi: bool) -> list[Text]:
    """The cells that name a row (kernel, build, backend, workers), as typed."""
    names = [r.kernel, *([build_label(r.context)] if multi else []), r.backend, str(r.workers)]
    return [plain(name) for name in names]


def held_cell(r: Result) -> str:
    """The share of its time one worker alone held the GIL (``97%``), read
    from the GIL's state for a threads cell; ``no GIL`` on a build running
    without one; empty where it was not read."""
    if r.backend == "threads" and not r.context.gil_enabled:
        return "no GIL"
    held = r.gil_held
    return "" if held is None else f"{held:.0%}"


def speedup_text(r: Result) -> str:
    """``1.85x [1.70, 1.95]`` (the speedup and its 95% interval);
    ``1.94x (1 round)`` where too few rounds were kept for an interval; ``-``
    where none was."""
    if math.isnan(r.speedup):
        return "-"
    low, high = r.speedup_ci()
    if math.isnan(low):
        kept = len(r._kept())
        return f"{_x(r.speedup)} ({kept} round{'s' if kept != 1 else ''})"
    return f"{_x(r.speedup)} [{low:.2f}, {high:.2f}]"


def _speedup_cell(r: Result) -> Text:
    return Text(speedup_text(r))


def _did_not_run(r: Result, reasons: list[str]) -> Text:
    """``failed (2)``: the status of a cell that did not run, and its note's number."""
    label, style = _STATUS_LABELS.get(r.status, (r.status, ""))
    return Text.assemble((label, style), f" ({reasons.index(_headline(r.reason)) + 1})")


def _compact(results: Sequence[Result], title: str | None) -> Table:
    multi = len(build_labels(results)) > 1
    t = compact_table(
        title,
        [
            ("kernel", "left"),
            *([("build", "left")] if multi else []),
            ("backend", "left"),
            ("workers", "right"),
            ("speedup [95% CI]", "right"),
            ("GIL held", "right"),
            ("mark", "left"),
        ],
    )
    reasons = unsupported_notes(results)
    for r in results:
        head = _head(r, multi)
        if not r.ok:
            t.add_row(*head, _did_not_run(r, reasons))
            continue
        speedup = _speedup_cell(r)
        speedup.append(" !" if r.warnings else "  ", style="red")
        t.add_row(*head, speedup, held_cell(r), cell_mark(r))
    return t


#: :func:`cell_mark`'s words for the verdicts of a threads cell.
_MARKS = {
    "holds the GIL": "partly",
    "threads help": "helps",
    "GIL-bound": "GIL-bound",
    "limited elsewhere": "limited",
    "inconclusive": "unclear",
}


def cell_mark(r: Result) -> str:
    """One word for one cell, for the compact table.

    A threads cell gets its verdict's word (``helps``, ``GIL-bound``,
    ``partly``, ``limited``, ``unclear``: see :func:`verdict`); any other
    cell, and threads without a GIL, get its interval against the no-gain
    line: ``faster`` (the whole 95% interval above 1.15x), ``no gain`` (at
    or below it) or ``unclear``. One worker, or a cell that did not run: ``-``.
    """
    if not r.ok or r.workers <= 1:
        return "-"
    if r.too_short or r.flagged or r.too_few_rounds or math.isnan(r.speedup):
        return "unclear"
    if r.backend == "threads" and r.context.gil_enabled:
        return _MARKS.get(verdict_word([r], r.kernel), "unclear")
    low, high = r.speedup_ci()
    if low > NO_GAIN:
        return "faster"
    if high <= NO_GAIN:
        return "no gain"
    return "unclear"


#: How the table marks a cell that did not run, by its status.
_STATUS_LABELS = {
    "unsupported": ("unsupported", "dim"),
    "failed": ("failed", "red"),
    "timeout": ("timed out", "red"),
}


def _headline(reason: str) -> str:
    """The first line of a reason (a worker's traceback follows it in the JSON)."""
    return reason.split("\n", 1)[0]


def unsupported_notes(results: Sequence[Result]) -> list[str]:
    """The distinct reasons why cells did not run (unsupported, failed, timed
    out), one line each, in order of appearance."""
    return list(dict.fromkeys(_headline(r.reason) for r in results if not r.ok))


def _best(results: Sequence[Result], kernel: str, backend: str) -> Result | None:
    cells = [r for r in results if r.kernel == kernel and r.backend == backend and r.ok]
    return max(cells, key=lambda r: r.workers) if cells else None


def _gil(cell: Result) -> str:
    """``GIL contention 93%`` / ``no GIL`` / empty where the cell was not metered."""
    if cell.gil is None:
        return ""
    short = cell.gil.short()
    return short if short == "no GIL" else f"GIL contention {short}"


#: Without a reading of the GIL's state, a GIL wait at or above this with
#: fewer busy CPUs than :data:`ONE_AT_A_TIME_BELOW` is GIL-bound: a wait
#: meter can miss short held sections, but it cannot invent waits.
CONTENDED_FROM = 0.5
#: Busy CPUs below this: the workers ran one at a time.
ONE_AT_A_TIME_BELOW = 1.3


def verdict(results: Sequence[Result], kernel: str) -> str:
    """What helped ``kernel``, in words a person can act on (no name prefix).

    Read from its largest worker count on each backend. For threads on a
    build with a GIL, the word follows readings taken inside the runs, which
    the host's speed cannot move (:func:`_from_readings`): the share of its
    time one worker holds the GIL (read from the GIL's state while it runs
    alone), the busy CPUs of the parallel run, and its GIL hand-offs. The
    wall-clock speedup, with its 95% interval and its share of what as many
    processes got here in the same rounds, is the magnitude on this host: it
    decides no word.

    Where the GIL's state could not be read (a run too short for
    :data:`MIN_SAMPLES` samples, or a build whose GIL gilfree cannot read),
    only the wait meter seeing the threads take turns (GIL-bound) decides;
    anything else is *inconclusive*, saying what would settle it. Without a
    GIL (a free-threaded build), the line is the speedup: *no GIL*.
    """
    threads = _best(results, kernel, "threads")
    others = [
        f"{b} give {_x(c.speedup)}"
        for b in ("processes", "interpreters", "dask")
        if (c := _best(results, kernel, b)) is not None
    ]
    if threads is None:
        return "; ".join(others) if others else "no parallel cell ran (see the notes above)"
    s, w = threads.speedup, threads.workers
    speed = f"{speedup_text(threads)} at {workers(w)}"
    cap = threads.capacity_speedup
    if math.isnan(s):
        speed = f"kept no round at {workers(w)} (each was faster than its busy CPUs allow)"
    elif not math.isnan(cap):
        speed += f" = {threads.share:.0%} of what {w} processes got here ({cap:.2f}x)"
    if threads.too_short:
        return (
            f"inconclusive: the serial run takes {threads.baseline_median_s * 1e6:.1f} us, too "
            f"short to measure parallelism; {threads.more_work}"
        )
    if threads.too_few_rounds:
        return (
            f"inconclusive: threads {speed}: {len(threads._kept())} round(s) kept, fewer than "
            f"the {MIN_ROUNDS_FOR_CI} an interval needs, and a point alone decides nothing; "
            f"raise --rounds to {MIN_ROUNDS_FOR_CI} or more"
        )
    left_out = (
        f"{threads.excluded_rounds} of {threads.rounds} rounds were faster than their busy "
        "CPUs allow (the host changed speed)"
    )
    if not threads.context.gil_enabled:
        if math.isnan(s):
            return (
                f"inconclusive: no GIL, threads {speed}: the host changed speed; "
                "a quieter machine would settle it"
            )
        if threads.flagged:
            return (
                f"inconclusive: no GIL, threads {speed}, but {left_out}; "
                "a quieter machine would settle it"
            )
        return f"no GIL: threads {speed}"
    if min(w, threads.context.cpus_available) <= 1:
        return f"threads {speed}; with one worker or one CPU nothing can run in parallel"
    alone = threads.gil_alone
    if alone is not None and _readable(alone):
        return _from_readings(threads, alone, speed, others, host_parallel=_host_parallel(threads))
    return _unread(threads, alone, speed, others)


def _readable(alone: SamplerReading) -> bool:
    """Enough samples of the GIL's own state to decide a word."""
    return alone.held is not None and alone.source == SOURCE_STATE and alone.samples >= MIN_SAMPLES


def _unread(threads: Result, alone: SamplerReading | None, speed: str, others: list[str]) -> str:
    """The verdict of a threads cell whose GIL state was not read."""
    if alone is None or alone.source != SOURCE_STATE:
        why = "the GIL's state was not read on this build"
    else:
        why = (
            f"one worker alone ran {alone.seconds * 1e3:.1f} ms, {alone.samples} samples of the "
            f"GIL's state, fewer than the {MIN_SAMPLES} a verdict needs; {threads.more_work}"
        )
    gil = _gil(threads)
    contention = threads.contention
    busy = threads.busy_cpus
    if (
        contention is not None
        and contention >= CONTENDED_FROM
        and busy < ONE_AT_A_TIME_BELOW
        and not threads.flagged
    ):
        line = f"GIL-bound: threads {speed} took turns ({gil}, {busy:.2f} busy CPUs)"
        return "; ".join([line, *others, "or release the GIL in the hot loop"])
    return f"inconclusive: {why}; threads {speed}" + (f" ({gil})" if gil else "")


#: The held share of one worker alone (read from the GIL's state) decides
#: the verdict: its whole 95% interval at or above this is GIL-bound...
GIL_BOUND_FROM = 0.9
#: ...at or below this, the GIL is free (threads help, or something else
#: limits them); in between, the function holds the GIL that share of its time.
GIL_FREE_UP_TO = 0.1
#: With the GIL free, threads that kept at least this share of their CPUs
#: busy (or ran clearly faster) are helped...
BUSY_SHARE_HELPS = 0.7
#: ...and below this, on a host that showed it can run that many processes
#: in parallel, something other than the GIL limits them.
BUSY_SHARE_BELOW = 0.6
#: ...and, where capacity was measured, the whole interval of the speedup as
#: a share of what as many processes got in the same rounds below this.
LIMITED_SHARE_BELOW = 0.75


def _host_parallel(threads: Result) -> bool:
    """The host showed it could run the cell's workers in parallel in the
    same rounds (or its capacity was not measured)."""
    return math.isnan(threads.capacity_speedup) or threads.capacity_ci()[0] > NO_GAIN


def _held_words(reading: SamplerReading) -> str:
    lo, hi = reading.held_ci
    return f"{reading.held:.0%} [{lo:.0%}, {hi:.0%}] of its time alone"


def _from_readings(
    threads: Result, alone: SamplerReading, speed: str, others: list[str], *, host_parallel: bool
) -> str:
    """The verdict from readings taken inside the runs: the share of its time
    one worker holds the GIL decides the word; the busy CPUs of the parallel
    run tell a free GIL that threads use from one something else serialises;
    the wall-clock speedup is the magnitude on this host."""
    lo, hi = alone.held_ci
    held = alone.held or 0.0
    w = threads.workers
    ideal = min(w, threads.context.cpus_available)
    busy = threads.busy_cpus
    handoffs = threads.handoffs_per_s
    extra = f", {handoffs:,.0f} GIL hand-offs/s" if handoffs is not None and handoffs >= 1 else ""
    if threads.flagged and not math.isnan(threads.speedup):
        extra += (
            f"; {threads.excluded_rounds} of {threads.rounds} rounds were left out of the "
            "speedup (the host changed speed)"
        )
    if lo >= GIL_BOUND_FROM:
        line = f"GIL-bound: it holds the GIL {_held_words(alone)}; threads {speed}{extra}"
        return "; ".join([line, *others, "or release the GIL in the hot loop"])
    if hi <= GIL_FREE_UP_TO:
        held_words = f"it holds the GIL {_held_words(alone)}"
        lo_s = threads.speedup_ci()[0]
        if busy >= BUSY_SHARE_HELPS * ideal or lo_s > NO_GAIN:
            return f"threads help: {held_words}; threads {speed}{extra}"
        # The shortfall must hold against the processes of the same rounds
        # too: busy CPUs alone drift with a host whose other work comes and
        # goes between the runs of a round.
        paired_high = threads.share_ci()[1]
        paired_short = math.isnan(paired_high) or paired_high < LIMITED_SHARE_BELOW
        if host_parallel and busy < BUSY_SHARE_BELOW * ideal and paired_short:
            line = (
                f"limited elsewhere: {held_words}, yet {w} threads kept {busy:.2f} CPUs busy "
                f"({speed}){extra}"
            )
            return "; ".join(
                [line, *others, "look at locks, CPUs, memory bandwidth or a busy machine"]
            )
        return (
            f"inconclusive: {held_words}, but this host could not show parallelism just now "
            f"(threads {speed}); a quieter machine would settle it"
        )
    bound = 1 / held if held > 0 else float("inf")
    line = (
        f"holds the GIL {_held_words(alone)}, so threads can reach at most {bound:.2f}x "
        f"(the GIL's bound); threads {speed}{extra}"
    )
    return "; ".join([line, *others])


def verdict_word(results: Sequence[Result], kernel: str) -> str:
    """The first word(s) of :func:`verdict`: ``threads help``, ``GIL-bound``,
    ``holds the GIL``, ``limited elsewhere``, ``inconclusive``, ``no GIL``..."""
    word = verdict(results, kernel).split(":", 1)[0]
    return "holds the GIL" if word.startswith("holds the GIL") else word


def build_labels(results: Sequence[Result]) -> list[str]:
    """The builds the results were measured on (:func:`build_label`), in order."""
    return list(dict.fromkeys(build_label(r.context) for r in results))


def _on_build(results: Sequence[Result], label: str) -> list[Result]:
    return [r for r in results if build_label(r.context) == label]


def verdicts(results: Sequence[Result]) -> list[str]:
    """One :func:`verdict` line per kernel, prefixed with its name; with
    several builds, one :func:`across_builds` line per kernel."""
    kernels = dict.fromkeys(r.kernel for r in results)
    if len(build_labels(results)) > 1:
        return [f"{name}: {across_builds(results, name)}" for name in kernels]
    return [f"{name}: {verdict(results, name)}" for name in kernels]


def across_builds(results: Sequence[Result], kernel: str) -> str:
    """``kernel`` on every build, in one line: the threads' speedup on each
    (or, without a threads cell, the best backend's) with that build's
    verdict word, and what one thread costs against the first build::

        threads 1.02x [0.99, 1.05] on 3.13.0 (GIL-bound); 1.85x [1.80, 1.90]
        on 3.13.5t (no GIL), where one thread runs 1.30x slower [1.27, 1.33]
        than on 3.13.0
    """
    parts: list[str] = []
    backend_named = ""
    for label in build_labels(results):
        cells = _on_build(results, label)
        best = _best(cells, kernel, "threads")
        if best is None:
            ran = [r for r in cells if r.kernel == kernel and r.ok and r.workers > 1]
            best = (
                max(ran, key=lambda r: r.speedup if not math.isnan(r.speedup) else 0.0)
                if ran
                else None
            )
        if best is None:
            parts.append(f"did not run on {label}")
            continue
        name = f"{best.backend} " if best.backend != backend_named else ""
        backend_named = best.backend
        word = verdict_word(cells, kernel) if best.backend == "threads" else cell_mark(best)
        part = f"{name}{speedup_text(best)} on {label} ({word})"
        cost = best.thread_cost
        if cost is not None:
            part += f", where one thread {_cost_words(cost)}"
        parts.append(part)
    return "; ".join(parts)


#: One thread's cost within this share of 1, its whole interval included,
#: reads "as fast as".
SAME_SPEED = 0.02


def _cost_words(cost: ThreadCost) -> str:
    """``runs 1.30x slower [1.27, 1.33] than on 3.13.0``, or faster, or
    ``runs as fast as on 3.13.0 (1.01x [0.98, 1.03])`` where the interval
    holds 1 or lies within 2% of it (a difference too small to act on)."""
    if cost.low <= 1 <= cost.high or (cost.low >= 1 - SAME_SPEED and cost.high <= 1 + SAME_SPEED):
        interval = f"{cost.ratio:.2f}x [{cost.low:.2f}, {cost.high:.2f}]"
        return f"runs as fast as on {cost.against} ({interval})"
    if cost.ratio > 1:
        return (
            f"runs {cost.ratio:.2f}x slower [{cost.low:.2f}, {cost.high:.2f}] than on "
            f"{cost.against}"
        )
    return (
        f"runs {1 / cost.ratio:.2f}x faster [{1 / cost.high:.2f}, {1 / cost.low:.2f}] than on "
        f"{cost.against}"
    )


def classic_summary(results: Sequence[Result]) -> list[str]:
    """The classic article's three lines, from the ``python`` cells; with
    several builds, one line per build."""
    labels = build_labels(results)
    if len(labels) > 1:
        return [_classic_line(_on_build(results, label), label) for label in labels]
    lines: list[str] = []
    serial = next((r for r in results if r.kernel == "python" and r.ok), None)
    if serial is None:
        return lines
    lines.append(
        f"python, one thread:      {_s(serial.baseline_median_s)} (countdown of {serial.n:,})"
    )
    for backend in ("threads", "processes", "interpreters"):
        c = _best(results, "python", backend)
        if c is None:
            continue
        extra = ""
        if backend != "threads":
            extra = f", {_s(c.total_median_s)} with start-up"
        lines.append(
            f"python, {c.workers} {backend + ':':<14}{_s(c.median_s)} work span{extra} "
            f"-> {_x(c.speedup)}"
        )
    return lines


def _classic_line(results: Sequence[Result], label: str) -> str:
    """``3.13.5t: python one thread 251.0 ms; 2 threads 1.85x, 2 processes 1.90x``."""
    serial = next((r for r in results if r.kernel == "python" and r.ok), None)
    if serial is None:
        return f"{label}: the python cells did not run"
    parts = [f"{label}: python one thread {_s(serial.baseline_median_s)}"]
    for backend in ("threads", "processes", "interpreters"):
        c = _best(results, "python", backend)
        if c is not None:
            parts.append(f"{c.workers} {backend} {_x(c.speedup)}")
    return ", ".join(parts)
