"""The ``gilfree`` command: a thin layer over the public API.

Exit status: 0 success, 1 a measurement failed (a worker raised or died, a
cell timed out, a cell is unsupported in ``run``, the ``--json`` log could not
be written to the end), 2 bad arguments, 130 interrupted by Ctrl-C and 143
by SIGTERM (both after printing, and writing to ``--json``, the cells
measured).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

from gilfree import _text
from gilfree._args import ArgumentTooLarge, NotAValue, evaluate
from gilfree._watch import Terminated
from gilfree.backends import BACKENDS, DEFAULT_BACKENDS, WorkerError, iter_available
from gilfree.kernels import KERNELS, MAX_N, check_count
from gilfree.measure import MAX_WORKERS, ProgressHook, Result, context, sweep
from gilfree.plan import DEFAULT_MAX_ROUNDS, DEFAULT_MAX_TIME, DEFAULT_PRECISION, DEFAULT_ROUNDS

#: Target serial time per kernel when -n is not given (run, sweep).
DEMO_SECONDS = 0.25
#: The demo's: every kernel on every backend in about 15 s on 2 CPUs. Its
#: words come from the GIL's readings, which a shorter run does not blur
#: (a 0.15 s run gives about 3,000 samples).
DEMO_RUN_SECONDS = 0.15


# ------------------------------------------------------------------ argument types


def parse_count(text: str) -> int:
    """An integer: ``100000000``, ``100_000_000`` or ``10**8``. Not ``1e8``."""
    s = text.strip()
    m = re.fullmatch(r"\d[\d_]*(\s*\*\*\s*\d[\d_]*)+", s)
    try:
        # A power is computed only once it is known to be of a sane size.
        value = evaluate(s, {}) if m else int(s, 10)
    except ArgumentTooLarge:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too large; the largest n is {MAX_N}"
        ) from None
    except ValueError:
        hint = " (write 100000000 or 10**8, not 1e8)" if re.search(r"[eE.]", s) else ""
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number{hint}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative; n must be >= 0")
    if value > MAX_N:
        raise argparse.ArgumentTypeError(f"{text!r} is too large; the largest n is {MAX_N}")
    return value


def parse_workers(text: str, example: str = "--workers 1,2,4") -> list[int]:
    """A comma-separated list of worker counts, each from 1 to MAX_WORKERS."""
    counts = []
    for part in text.split(","):
        try:
            counts.append(check_count(int(part.strip()), "workers", 1, MAX_WORKERS))
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"{text!r}: each worker count must be a whole number from 1 to {MAX_WORKERS}, "
                f"e.g. {example}"
            ) from None
    return counts


def parse_worker_count(text: str) -> int:
    """One worker count, from 1 to MAX_WORKERS."""
    counts = parse_workers(text, example="-w 2")
    if len(counts) != 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give one worker count here, e.g. -w 2")
    return counts[0]


def _names(registry: Any, what: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [p.strip() for p in text.split(",") if p.strip()]
        if not names:
            raise argparse.ArgumentTypeError(f"no {what} given")
        if names == ["all"]:
            return list(registry)
        if "all" in names:
            raise argparse.ArgumentTypeError(
                f"'all' stands alone: give all, or a list of names ({', '.join(registry)})"
            )
        for name in names:
            if name not in registry:
                raise argparse.ArgumentTypeError(
                    f"unknown {what} {name!r}; valid: {', '.join(registry)} (or 'all')"
                )
        return names

    parse.__name__ = what  # argparse names the type in its messages
    return parse


def _bounded(option: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            return check_count(parse_count(text), option, low, high)
        except (ValueError, OverflowError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(
                f"{text!r}: {option} takes a whole number from {low} to {high}"
            ) from None

    parse.__name__ = option.lstrip("-")
    return parse


def parse_seconds(text: str, most: float = 3600) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= most:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds between 0 and {most:g}")
    return value


def parse_timeout(text: str) -> float:
    """Seconds, more than 0 and at most a day."""
    return parse_seconds(text, most=86400)


def parse_precision(text: str) -> float | None:
    """A fraction of the speedup, ``0.05`` or ``5%``, between 0 and 1
    exclusive; ``off``: no precision target, exactly --rounds rounds."""
    s = text.strip()
    if s.lower() == "off":
        return None
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a precision: give a fraction such as 0.05 or 5%, or off"
        ) from None
    if not 0 < value < 1:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"{text!r}: the precision must be more than 0 and less than 1 (0.05 or 5%), or off"
        )
    return value


def parse_json_path(text: str) -> str:
    """``-`` or a path whose folder exists and is writable (checked up front,
    before any long measurement)."""
    if text == "-":
        return text
    return _writable(text)


def parse_plot_path(text: str) -> str:
    """A writable ``.png`` or ``.svg`` path, with matplotlib importable: all
    checked before the sweep starts, not after it."""
    from gilfree.plot import PlotUnavailableError, plot_format, require_matplotlib

    try:
        plot_format(text)
        require_matplotlib()
    except (ValueError, PlotUnavailableError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return _writable(text)


def _writable(text: str) -> str:
    """A path this process can create or append to, tried for real (a folder
    in ``/proc`` or a read-only file system passes a permission check and
    still fails the write)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give a file name (or - for the terminal)")
    folder = os.path.dirname(os.path.abspath(text)) or "."
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file path")
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text!r} ends in a slash: give a file path")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: folder {folder!r} does not exist")
    try:
        if os.path.exists(text):
            open(text, "ab").close()  # opened only to try: nothing is cut
        else:
            open(text, "xb").close()
            os.unlink(text)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {_why(exc)}") from None
    return text


def _why(exc: OSError) -> str:
    """An OS error in words, without its errno and path (the message names the path)."""
    return (exc.strerror or str(exc)).lower()


def parse_scheduler(text: str) -> str:
    """A Dask scheduler address (``tcp://host:port``) that answers: checked
    with a plain TCP connection before any work, so a wrong address is one
    line within seconds, not a hang."""
    from gilfree.dask_backend import reachable

    try:
        reachable(text)
    except (ValueError, ConnectionError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


class _Target(str):
    """``module:function`` as typed, with the callable it names (``fn``)."""

    fn: Any


def parse_target(text: str) -> _Target:
    """``module:function`` -> the text, with the callable as ``.fn`` (imported
    now, so that a bad name fails before any measurement)."""
    from gilfree.checker import ResolveError, resolve

    target = _Target(text)
    try:
        target.fn = resolve(text)
    except ResolveError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return target


def parse_python(text: str) -> Any:
    """``[NAME=VALUE ...] PATH`` -> an unprobed :class:`gilfree.builds.Build`."""
    from gilfree.builds import BuildError, parse_build

    try:
        return parse_build(text)
    except BuildError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--python {text!r}: ")) from None


def parse_call_args(
    items: Sequence[str], notes: list[str] | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The function's arguments from the command line.

    Each item is evaluated as a Python expression that may use only the
    value builders in :data:`ARG_NAMES` (``10**8``, ``b'x'*2**20``,
    ``list(range(10**6))``, ``'text'``); an item that is not such an
    expression is passed as the string itself (``data.csv``). ``name=value``
    is a keyword argument, its value read the same way.

    ``notes`` gets one line for each item passed as a string that looks
    meant as a value (``list(range(10**6)`` with a bracket missing, ``1/0``,
    ``~5``), saying why it did not evaluate.
    """
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for i, item in enumerate(items, 1):
        m = re.fullmatch(r"([A-Za-z_]\w*)=(.*)", item, re.S)
        where = f"argument {m.group(1)}=" if m else f"argument {i}"
        text = m.group(2) if m else item
        try:
            value = evaluate(text, ARG_NAMES)
        except ArgumentTooLarge as exc:
            raise argparse.ArgumentTypeError(f"{where} ({item!r}): {exc}") from None
        except NotAValue as exc:
            value = text
            if notes is not None and _meant_as_value(text, exc):
                notes.append(
                    f"{where} ({text!r}) is passed as a string: {exc}; quote it "
                    f"(\"'{text}'\") to pass the string on purpose"
                )
        if m:
            kwargs[m.group(1)] = value
        else:
            args.append(value)
    return tuple(args), kwargs


#: The only names a command-line ARG may use: builders of values, nothing
#: that reads, writes or imports.
ARG_NAMES: dict[str, Any] = {
    f.__name__: f
    for f in (range, list, tuple, dict, set, frozenset, bytes, bytearray, str, int, float)
}


def _meant_as_value(text: str, why: NotAValue) -> bool:
    """Whether an ARG that did not evaluate looks meant as a value: it raised
    (``1/0``), used an operator an ARG cannot (``~5``), or has the brackets
    or operators of an expression. A plain word or path (``data.csv``,
    ``my file.txt``) is a string as meant."""
    if why.kind in ("error", "operator"):
        return True
    return any(c in text for c in "()[]{}*%~^&|<>=!'\"")


# ------------------------------------------------------------------------ parser


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where help is, not the
    usage block (subcommands' usage runs to several lines)."""

    #: Each command's own parser, by name (set by :func:`build_parser`).
    commands: Mapping[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        self.exit(2, _text.shown(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def _backends_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-b",
        "--backends",
        type=_names(BACKENDS, "backend"),
        default=list(DEFAULT_BACKENDS),
        help="comma-separated backends or 'all' (default: threads,processes,interpreters; "
        "dask when named)",
    )


def _grid_options(
    p: argparse.ArgumentParser, kernels: list[str], backends: list[str], workers: list[int]
) -> None:
    """``-k``, ``-b``, ``-w`` and ``--plot``, spelt alike for ``run`` and
    ``sweep`` (only their defaults differ): each takes a comma-separated list."""
    grid: list[tuple[str, str, Any, list[str]]] = [
        ("-k", "kernels", KERNELS, kernels),
        ("-b", "backends", BACKENDS, backends),
    ]
    for short, plural, registry, default in grid:
        p.add_argument(
            short,
            f"--{plural}",
            f"--{plural[:-1]}",
            dest=plural,
            type=_names(registry, plural[:-1]),
            default=default,
            help=f"comma-separated {plural} or 'all': {', '.join(registry)} (default "
            f"{'all' if len(default) == len(registry) else ','.join(default)})",
        )
    p.add_argument(
        "-w",
        "--workers",
        type=parse_workers,
        default=workers,
        help=f"comma-separated worker counts, each 1 to {MAX_WORKERS} "
        f"(default {','.join(map(str, workers))})",
    )
    p.add_argument(
        "--plot",
        type=parse_plot_path,
        metavar="PATH",
        help="draw speedup against workers, one line per kernel x backend, to PATH "
        '(.png or .svg; needs matplotlib: pip install "gilfree[plot]")',
    )


def _common(
    p: argparse.ArgumentParser,
    sizing: bool = True,
    seconds: float = DEMO_SECONDS,
    precision: float | None = DEFAULT_PRECISION,
) -> None:
    """Options shared by the measuring commands (``sizing``: -n, --seconds and
    --scaling, which ``check`` does not take), with the command's defaults."""
    if sizing:
        _sizing(p, seconds)
    _repeats(p, precision)


def _sizing(p: argparse.ArgumentParser, seconds: float = DEMO_SECONDS) -> None:
    p.add_argument(
        "-n",
        type=parse_count,
        default=None,
        metavar="N",
        help="countdown size: total work split across workers (strong scaling) or per "
        "worker (weak). Accepts 100_000_000 or 10**8. Default: sized per kernel so "
        "the serial run takes --seconds",
    )
    p.add_argument(
        "--seconds",
        type=parse_seconds,
        default=seconds,
        help=f"target serial time per kernel when -n is not given (default {seconds:g})",
    )
    p.add_argument(
        "--scaling",
        choices=["strong", "weak"],
        default="strong",
        help="strong: split n across workers (the classic experiment); weak: n per worker",
    )


def round_options(p: argparse.ArgumentParser, precision: float | None = DEFAULT_PRECISION) -> None:
    """``--rounds`` (``--repeats``), ``--precision``, ``--max-time``: how long to
    measure, for every measuring command and the ``%gilcheck`` magic."""
    p.add_argument(
        "--rounds",
        "--repeats",
        dest="repeats",
        type=_bounded("--rounds", 1, 1000),
        default=DEFAULT_ROUNDS,
        metavar="N",
        help="the fewest rounds per cell, 1 to 1000 (default %(default)s). A round runs the "
        "serial baseline and the parallel run back to back, order alternating; the speedup is "
        "the median of the per-round ratios",
    )
    shown = "off" if precision is None else f"{precision * 100:g}%%"
    p.add_argument(
        "--precision",
        type=parse_precision,
        default=precision,
        metavar="P",
        help="add rounds until each speedup's 95%% interval is within +-P of it: 0.05 or 5%% "
        f"(default {shown}); off: exactly --rounds rounds",
    )
    p.add_argument(
        "--max-time",
        type=parse_timeout,
        default=DEFAULT_MAX_TIME,
        metavar="SECONDS",
        help="time budget for adding rounds, the whole command together (default "
        f"{DEFAULT_MAX_TIME:g}); past it, each cell reports the precision it reached",
    )


def _repeats(p: argparse.ArgumentParser, precision: float | None = DEFAULT_PRECISION) -> None:
    round_options(p, precision)
    p.add_argument(
        "--max-rounds",
        type=_bounded("--max-rounds", 1, 10_000),
        default=None,
        metavar="N",
        help=f"the most rounds per cell (default {DEFAULT_MAX_ROUNDS}, or --rounds if more)",
    )
    p.add_argument(
        "--warmups",
        type=_bounded("--warmups", 0, 1000),
        default=1,
        help="untimed warm-up runs per cell, 0 to 1000 (default 1)",
    )
    p.add_argument(
        "--scheduler",
        type=parse_scheduler,
        metavar="ADDRESS",
        help="the dask backend's cluster, tcp://host:port (default: a local cluster per cell, "
        'shut down after it; needs pip install "gilfree[dask]")',
    )
    p.add_argument(
        "--start-method",
        choices=sorted(__import__("multiprocessing").get_all_start_methods()),
        default=None,
        help="how the processes backend starts workers (default: the platform's)",
    )
    p.add_argument(
        "--timeout",
        type=parse_timeout,
        metavar="SECONDS",
        help="give up on a cell whose run (or serial baseline run) takes longer than this: "
        "its workers are stopped, it is reported as timed out, and the rest still run",
    )
    p.add_argument(
        "--json",
        type=parse_json_path,
        metavar="PATH",
        help="write every raw timing and the metadata to PATH as JSON Lines, one cell per "
        "line as it completes, then an end line saying complete, failed or interrupted "
        "('-': stdout; the table then goes to stderr)",
    )
    p.add_argument(
        "--python",
        dest="pythons",
        action="append",
        type=parse_python,
        default=[],
        metavar="PATH",
        help="measure on this interpreter, in a child process, instead of this one; "
        "repeat it to put builds side by side, with one thread's cost on each against "
        "the first: --python python3.13 --python python3.13t --python 'PYTHON_GIL=1 "
        "python3.13t' (NAME=VALUE sets the environment; each needs this gilfree "
        "installed). --max-time is shared among them",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _output_options(p)
    p.add_argument(
        "--wide",
        action="store_true",
        help="every column: n, span, rounds, share of capacity, busy CPUs, start-up, classic "
        "time (the default table fits 80 columns; the JSON has every figure either way)",
    )


def _cores_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cores",
        type=_bounded("--cores", 1, 4096),
        metavar="N",
        help="state the scaling law's prediction for a machine of N CPUs (default: this "
        "one's); from the GIL's held share, past about 1/share threads more threads do not "
        "help (docs/scaling.md)",
    )


def _output_options(p: argparse.ArgumentParser) -> None:
    from gilfree.formats import FORMATS

    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="what to write: table (the report, default), json (one document), jsonl (one "
        "line per cell as it completes), csv (one row per cell), markdown (table and "
        "verdicts), html (one page with the plot); anything but table goes to -o or "
        "stdout, and the report to stderr",
    )
    p.add_argument(
        "-o",
        "--output",
        type=parse_json_path,
        metavar="PATH",
        help="write --format's output to PATH instead of stdout ('-': stdout)",
    )


def build_parser() -> _Parser:
    parser = _Parser(
        prog="gilfree",
        description="Will threads make this faster, or do I need processes or subinterpreters? "
        "gilfree runs the same countdown loop, compiled and interpreted, with and without "
        "the GIL, under serial, threads, processes and subinterpreters, and measures.",
        epilog="Examples: gilfree demo | gilfree run -k python -b threads -w 2 -n 10**8 | "
        "gilfree sweep -k all -b threads,processes --workers 1,2 | gilfree info",
    )
    from gilfree._version import __version__

    parser.add_argument("--version", action="version", version=f"gilfree {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = sub.choices

    demo = sub.add_parser(
        "demo",
        help="the classic GIL experiment, then every kernel on every backend (default)",
        description="The classic experiment (python: serial vs 2 threads vs 2 processes), "
        "then every kernel on every backend with 2 workers, a table and one verdict per kernel.",
    )
    demo.add_argument(
        "--article",
        action="store_true",
        help="instead: the classic article's three programs as written (countdown of "
        "100,000,000 in one thread, in two threads, in a pool of two processes), this "
        "machine's times beside the article's, what its process program got wrong, and the "
        "fair figure; -n changes the count, --rounds the rounds (default 3)",
    )
    # The demo's words come from the GIL's readings; its speedups, the
    # magnitude, are shown with the interval 5 rounds give (--precision asks
    # for more rounds).
    _common(demo, seconds=DEMO_RUN_SECONDS, precision=None)

    run = sub.add_parser(
        "run",
        help="one cell (or a few): kernels x backends x workers, run's defaults",
        description="Measure kernels on backends against their serial runs: by default "
        "one cell, cython-nogil on 2 threads. Takes sweep's flags in the same spelling "
        "(lists with commas); a cell that cannot run here is a failure (exit 1).",
    )
    _grid_options(run, kernels=["cython-nogil"], backends=["threads"], workers=[2])
    _common(run)

    sw = sub.add_parser(
        "sweep",
        help="a grid: kernels x backends x worker counts",
        description="Measure every combination of the given kernels, backends and worker counts.",
    )
    _grid_options(sw, kernels=list(KERNELS), backends=list(DEFAULT_BACKENDS), workers=[1, 2])
    _common(sw)
    _cores_option(sw)

    ck = sub.add_parser(
        "check",
        help="would threads help my function? module:function [ARG ...]",
        description="Run your function serially and on threads, processes and (CPython "
        "3.12+) subinterpreters, with the GIL contention meter on, and say what helps. "
        "Weak scaling: each worker calls it --calls times per round; the serial baseline "
        "makes all those calls in one thread.",
        epilog="ARG: a Python expression (10**8, b'x'*2**24, list(range(10**6)), 'text'; "
        "no builtins but range, list, tuple, dict, set, frozenset, bytes, bytearray, str, "
        "int, float) or, if it is not one, the string itself; name=value passes a keyword "
        "argument. "
        "Example: gilfree check hashlib:sha256 \"b'x'*2**24\" -w 2",
    )
    ck.add_argument(
        "target",
        type=parse_target,
        metavar="module:function",
        help="the callable to check, importable from the current folder or PYTHONPATH",
    )
    ck.add_argument("call_args", nargs="*", metavar="ARG", help="arguments for the function")
    ck.add_argument(
        "-w",
        "--workers",
        type=parse_worker_count,
        default=2,
        help=f"workers calling it at once, 1 to {MAX_WORKERS} (default 2)",
    )
    ck.add_argument(
        "--calls",
        type=_bounded("--calls", 1, 10**9),
        default=1,
        help="calls per worker per round (default 1); raise it for a fast function",
    )
    ck.add_argument(
        "--blas-threads",
        type=_bounded("--blas-threads", 1, 4096),
        metavar="N",
        help="keep BLAS/OpenMP thread pools (NumPy's linear algebra) to N threads while "
        "measuring, so a serial run is serial and workers do not oversubscribe the CPUs "
        "(default: as they are; a warning says when they run several threads)",
    )
    _backends_option(ck)
    _common(ck, sizing=False)
    _cores_option(ck)

    show = sub.add_parser(
        "show",
        help="a saved run again: its table, verdicts, plot, or another format",
        description="Read a file written by --json or --format json|jsonl (any gilfree "
        "format version) and report it as if it had just run: the table, the notes and "
        "the verdicts, or --format json|jsonl|csv|markdown (converting between them), and "
        "--plot. A stream cut off by a killed run shows the cells it holds.",
    )
    show.add_argument("results", metavar="RESULTS", help="a saved run (.json or .jsonl)")
    show.add_argument(
        "--plot",
        type=parse_plot_path,
        metavar="PATH",
        help='draw speedup against workers to PATH (.png or .svg; pip install "gilfree[plot]")',
    )
    _output_options(show)
    show.add_argument("--wide", action="store_true", help="every column")

    compare = sub.add_parser(
        "compare",
        help="two saved runs, cell by cell: what changed, and whether beyond noise",
        description="Match the cells of two saved runs by kernel, backend, workers and "
        "scaling (not by n, which is sized per run) and report the change in speedup, GIL "
        "wait and busy CPUs. A change is called real only when the two 95% intervals do "
        "not overlap. Runs on different machines or builds are compared with a warning "
        "that says what differs.",
        epilog="Example, in CI: gilfree compare baseline.json new.json --fail-if "
        "'speedup<-10%' (exit 1 when a cell's speedup fell by more than 10% and by more "
        "than the noise)",
    )
    compare.add_argument("before", metavar="BEFORE", help="the earlier run (.json or .jsonl)")
    compare.add_argument("after", metavar="AFTER", help="the later run")
    compare.add_argument(
        "--fail-if",
        type=parse_fail_if,
        action="append",
        default=[],
        metavar="RULE",
        help="exit 1 when a matched cell's change breaks RULE and is beyond both intervals: "
        "speedup<-10%% (fell by more than 10%%), speedup>+20%%, gil-wait>+10%% (points), "
        "busy-cpus<-10%%; repeatable",
    )

    info = sub.add_parser(
        "info",
        help="this Python: build, GIL, switch interval, CPUs, available backends",
        description="Describe this Python and machine, and which backends can run here.",
    )
    info.add_argument("--json", type=parse_json_path, metavar="PATH", help="write as JSON")
    return parser


# ----------------------------------------------------------------------- commands


@contextlib.contextmanager
def _progress(args: argparse.Namespace) -> Iterator[ProgressHook]:
    """A rich progress bar on stderr (when it is a terminal), as a sweep hook."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = _text.console(stderr=True)
    show = not args.no_progress and console.is_terminal
    # auto_refresh=False: no refresh thread, so forking worker processes
    # never happens in a multi-threaded parent.
    progress = Progress(
        TextColumn("{task.description:<40}", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        auto_refresh=False,
        transient=True,
        disable=not show,
    )
    with progress:
        task = progress.add_task("calibrating", total=None)
        started = [False]

        def hook(label: str, steps: int) -> None:
            if started[0]:
                progress.advance(task)
            started[0] = True
            progress.update(task, description=_text.shown(label), total=steps)
            progress.refresh()

        yield hook


class _Recorder:
    """The cells of one measuring command, kept as they complete and streamed
    to ``--json``, so an interrupted run can still print and keep them.

    :meth:`open` writes the start line once the arguments are checked and
    before any work, so a path that cannot be written (``/dev/full``) is
    refused at once; arguments refused after it (:meth:`discard`) leave no
    file behind. A write that fails during the run stops the log, not the
    measurement: the table still shows every cell, stderr says what the file
    lacks, and the exit status is 1.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.path: str | None = args.json
        self.option = "--json"  # how the user named the stream's path
        if args.format == "jsonl":  # the same stream, to -o or stdout
            if args.json:
                raise _Usage("--json already writes JSON Lines; give it or --format jsonl")
            self.path, self.option = args.output or "-", "-o"
        #: json, csv, markdown or html: written whole when the run ends, to ``out``.
        self.document = args.format if args.format in ("json", "csv", "markdown", "html") else None
        self.out: _Output = args.out
        if (
            args.json not in (None, "-")
            and self.out.path != "-"
            and (_same_file(args.json, self.out.path))
        ):
            raise _Usage(
                f"--json and -o both name {args.json}: each would overwrite the other; give "
                "them two paths"
            )
        if self.document and args.json == "-" and self.out.path == "-":
            raise _Usage(
                f"--json - and --format {args.format} would both write to standard output; "
                "send one of them to a file (--json PATH or -o PATH)"
            )
        self.argv: list[str] = args.argv
        self.results: list[Result] = []
        self.meta: dict[str, Any] = {}
        self.log: Any = None
        self.created = False
        self.lost: str | None = None  # why the log stopped early

    def open(self) -> None:
        if not self.path:
            return
        from gilfree.results import JsonLog

        existed = self.path == "-" or os.path.exists(self.path)
        try:
            self.log = JsonLog(self.path, command=self.argv, context=context().__dict__)
        except OSError as exc:
            if not existed and os.path.exists(self.path):
                os.unlink(self.path)
            raise _Usage(f"cannot write {self.option} {self.path}: {_why(exc)}") from None
        self.created = not existed

    def discard(self) -> None:
        """The arguments were refused after :meth:`open`: remove what it wrote."""
        if self.log is not None:
            self.log.close()
            if self.created and self.path:
                os.unlink(self.path)
        self.log = self.path = None

    def _write(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        if self.log is None:
            return
        try:
            write(*args, **kwargs)
        except OSError as exc:
            where = "to standard output" if self.path == "-" else self.path
            self.lost = (
                f"writing the JSON log {where} failed ({_why(exc)}); it holds "
                f"{self.log.cells} of the cells, and the table shows them all"
            )
            _say(f"gilfree: {self.lost}")
            if self.path == "-":
                _silence_stdout()  # the reader left: later output would fail again
            self.log.close()  # (its line left in the buffer is dropped, not retried)
            self.log = None

    def add(self, result: Result) -> None:
        self.results.append(result)
        self._write(lambda: self.log.cell(result))

    def end(self, status: str) -> None:
        failed = sum(r.failed for r in self.results)
        self._write(lambda: self.log.end(status, failed_cells=failed, **self.meta))
        self.path = self.log = None  # ended: nothing more is written
        if self.document:
            fmt, self.document = self.document, None
            self._write_document(fmt, status)

    def _write_document(self, fmt: str, status: str) -> None:
        from gilfree.formats import render

        meta = {"command": self.argv, **self.meta} if fmt == "json" else {}
        if fmt in ("markdown", "html"):
            meta = {"title": "gilfree " + " ".join(self.argv)}
        self.out.write(render(fmt, self.results, status, **meta))
        self.lost = self.lost or self.out.lost


class _Output:
    """Where ``--format``'s output goes: ``-o PATH`` or standard output.

    The path is tried before any work, so that the results are never
    measured only to be lost to it: it must not be a file the command reads
    (``show v.json -o v.json``), its folder must have room, and a device that
    is not a terminal (``/dev/full``) is written one newline. If writing
    still fails at the end (the disk filled during the run), the text is
    saved to a file of its own in the temporary folder, and stderr names it.
    """

    def __init__(self, path: str | None, reads: Sequence[str] = ()) -> None:
        self.path = path or "-"
        self.lost: str | None = None  # what went wrong, and where the text went
        if self.path == "-":
            return
        for given in reads:
            if _same_file(given, self.path):
                raise _Usage(
                    f"-o {self.path} is {given}, the file this command reads; writing there "
                    "would replace it: give another path"
                )
        try:
            _try_writing(self.path)
        except OSError as exc:
            raise _Usage(f"cannot write -o {self.path}: {_why(exc)}") from None

    def write(self, text: str) -> None:
        """``text`` to the path or standard output; see the class for a failure."""
        try:
            if self.path == "-":
                sys.stdout.write(text)
                sys.stdout.flush()
                return
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            where = "to standard output" if self.path == "-" else f"to {self.path}"
            if self.path == "-":
                _silence_stdout()  # the reader left: later output would fail again
            saved = _save_elsewhere(text, self.path)
            self.lost = f"writing the output {where} failed ({_why(exc)}); " + (
                f"it is saved in {saved} instead" if saved else "it could not be saved elsewhere"
            )
            _say(f"gilfree: {self.lost}")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _try_writing(path: str) -> None:
    """Raise the OSError that writing ``path`` would give, writing nothing to
    a regular file (it is opened to append, or created and removed)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISCHR(mode):
        with open(path, "w", encoding="utf-8") as f:
            if not f.isatty():  # /dev/null takes it, /dev/full refuses it
                f.write("\n")
        return
    folder = os.path.dirname(os.path.abspath(path))
    if mode is None or stat.S_ISREG(mode):
        free = os.statvfs(folder)
        if free.f_bavail == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if mode is None:
        open(path, "x", encoding="utf-8").close()
        os.unlink(path)
    elif stat.S_ISREG(mode):  # (a named pipe is left alone: opening it waits for a reader)
        open(path, "a", encoding="utf-8").close()


def _save_elsewhere(text: str, path: str) -> str | None:
    """``text`` in a new file of the temporary folder (named after ``path``'s
    suffix); its path, or None if that fails too."""
    import tempfile

    suffix = os.path.splitext(path)[1] if path != "-" else ".txt"
    try:
        fd, saved = tempfile.mkstemp(prefix="gilfree-output-", suffix=suffix or ".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        return None
    return saved


@contextlib.contextmanager
def _prints_to_stderr() -> Iterator[None]:
    """While measuring, what the measured code prints goes to stderr, where
    the user still sees it: standard output carries gilfree's own data (a
    ``--format`` document, the ``--json -`` stream, the table), and a print
    from a checked function must never land in it. Both Python's
    ``sys.stdout`` and file descriptor 1 are redirected (worker processes
    and C code write to the descriptor); a ``--json -`` log keeps a
    descriptor of its own onto the real standard output."""
    sys.stdout.flush()
    try:
        moved = sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # a capturing test: no descriptor
        moved = False
    saved = os.dup(1) if moved else -1
    if moved:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if moved:
            sys.stdout.flush()
            if not _stdout_silenced:  # (its reader left meanwhile: it stays on /dev/null)
                os.dup2(saved, 1)
            os.close(saved)


def _silence_stdout() -> None:
    """Point standard output at /dev/null (its reader closed the pipe), so the
    interpreter's flush at exit does not fail too."""
    global _stdout_silenced
    _stdout_silenced = True
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ else 1
    except (OSError, ValueError):  # pragma: no cover - no standard output at all
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


#: Set once standard output's reader has gone (:func:`_silence_stdout`).
_stdout_silenced = False


def _measure(
    args: argparse.Namespace, kernels: list[str], backends: list[str], workers: list[int]
) -> list[Result]:
    if args.builds:
        expected = [(k, b, w) for k in kernels for w in workers for b in backends]
        return _measure_builds(args, expected, {"kernels": kernels})
    with _progress(args) as hook, _prints_to_stderr():
        return sweep(
            kernels,
            backends,
            workers,
            args.n,
            seconds=args.seconds,
            scaling=args.scaling,
            progress=hook,
            on_result=args.recorder.add,
            **_rounds(args),
        )


def _measure_builds(
    args: argparse.Namespace, expected: list[tuple[str, str, int]], setup: dict[str, Any]
) -> list[Result]:
    """``--python``: one thread's cost on each build against the first, then
    the command on each build in turn, in a child process; --max-time is
    shared among these steps. What could not be timed goes to
    ``args.build_warnings`` (the report shows it), each build's own check
    verdict to ``args.build_verdicts`` (the JSON keeps them)."""
    from gilfree.builds import run_build, thread_costs

    builds = args.builds
    share = args.max_time / (len(builds) + 1)
    results: list[Result] = []
    args.build_warnings, args.build_verdicts = [], []
    with _progress(args) as hook:
        costs, notes = thread_costs(
            builds,
            setup,
            n=getattr(args, "n", None),
            seconds=getattr(args, "seconds", DEMO_SECONDS),
            rounds=args.repeats,
            precision=args.precision,
            max_time=share,
            max_rounds=max(args.max_rounds or DEFAULT_MAX_ROUNDS, args.repeats),
            timeout=args.timeout,
            progress=hook,
        )
        args.build_warnings += notes
        steps = len(builds) * len(expected)
        for i, build in enumerate(builds, 1):
            hook(f"{build.label}: measuring (build {i} of {len(builds)})", steps)

            def cell_done(r: Result, label: str = build.label) -> None:
                args.recorder.add(r)
                hook(f"{label}: {r.kernel} on {r.backend} x{r.workers} {r.status}", steps)

            got, end = run_build(
                build,
                _child_argv(args, share),
                expected,
                scaling=getattr(args, "scaling", "weak"),
                costs=costs,
                on_result=cell_done,
            )
            results += got
            if end.get("check"):
                args.build_verdicts.append(f"{build.label}: {end['check'].get('verdict')}")
    return results


def _child_argv(args: argparse.Namespace, max_time: float) -> list[str]:
    """The command and options to run on another build: what was asked here,
    spelt out, with --max-time its share of the budget."""
    argv = [args.command]
    positional: list[str] = []
    if args.command == "check":  # after "--", where no argument reads as an option
        positional = ["--", str(args.target), *args.call_args]
        argv += ["-w", str(args.workers), "--calls", str(args.calls)]
        argv += ["-b", ",".join(args.backends)]
        if args.blas_threads is not None:
            argv += ["--blas-threads", str(args.blas_threads)]
    else:
        if args.command != "demo":
            argv += ["-k", ",".join(args.kernels), "-b", ",".join(args.backends)]
            argv += ["-w", ",".join(map(str, args.workers))]
        if args.n is not None:
            argv += ["-n", str(args.n)]
        argv += ["--seconds", repr(args.seconds), "--scaling", args.scaling]
    precision = "off" if args.precision is None else repr(args.precision)
    argv += ["--rounds", str(args.repeats), "--precision", precision]
    argv += ["--max-time", repr(max_time), "--warmups", str(args.warmups)]
    for flag, value in (
        ("--max-rounds", args.max_rounds),
        ("--scheduler", args.scheduler),
        ("--start-method", args.start_method),
        ("--timeout", args.timeout),
    ):
        if value is not None:
            argv += [flag, str(value)]
    return argv + positional


def _probe_builds(args: argparse.Namespace) -> list[Any]:
    """Every ``--python``, checked before any work (one line, exit 2, for the
    first that cannot be used); refuses two alike."""
    from gilfree.builds import BuildError, probe

    if getattr(args, "article", False):
        raise _Usage("--python does not apply to --article; it runs on this interpreter")
    target = str(args.target) if args.command == "check" else None
    builds = []
    for build in args.pythons:
        try:
            builds.append(probe(build, target))
        except BuildError as exc:
            raise _Usage(str(exc)) from None
    seen: dict[str, str] = {}
    for b in builds:
        if b.label in seen:
            raise _Usage(
                f"--python {seen[b.label]} and --python {b.spec} are the same build "
                f"({b.label}); name each build once"
            )
        seen[b.label] = b.spec
    return builds


def _rounds(args: argparse.Namespace) -> dict[str, Any]:
    """The measuring options every measuring command passes on."""
    return {
        "repeats": args.repeats,
        "warmups": args.warmups,
        "precision": args.precision,
        "max_time": args.max_time,
        "max_rounds": args.max_rounds,
        "start_method": args.start_method,
        "scheduler": args.scheduler,
        "timeout": args.timeout,
    }


class _Usage(Exception):
    pass


def _report(
    args: argparse.Namespace,
    results: Sequence[Result],
    title: str,
    classic: bool = False,
    warnings: Sequence[str] = (),
    **meta: Any,
) -> None:
    """Table, notes, warnings and verdicts to the terminal (``meta`` goes
    into the JSON's end line)."""

    from rich.text import Text

    from gilfree import report
    from gilfree.results import build_label

    console = _console(args)
    several = len(report.build_labels(results)) > 1
    if several and not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = max(console.width, 120)  # a file or pipe: room for the build column
    if classic:
        console.print("The classic experiment", style="bold")
        for line in report.classic_summary(results):
            console.print("  " + line)
        console.print()
    # The title on a line of its own, never wrapped by rich: a long path in it
    # stays whole for the reader to copy (the terminal folds it if it must).
    console.print(_text.shown(title), soft_wrap=True, style="italic")
    console.print(report.table(results, title=None, wide=args.wide))
    for i, reason in enumerate(report.unsupported_notes(results), 1):
        console.print(_text.shown(f"  ({i}) {reason}"))
    legend = (
        "speedup: median of per-round serial time / parallel span, 95% interval; GIL held: "
        "share of its time one worker alone holds the GIL, read from the GIL's state "
        "(threads); "
    )
    if args.wide:
        legend += (
            "span: first worker start to last worker end, median of rounds; rounds: serial "
            "and parallel run back to back (out: faster than their busy CPUs allow, left "
            "out); of capacity: the speedup as a share of what as many processes got in the "
            "same rounds; busy CPUs: CPU time / span; start-up: creating the workers (+ a "
            "Dask cluster started once for the cell); classic: start-up + work, as the "
            "classic article timed it"
        )
    else:
        legend += (
            "mark: the cell's verdict (threads) or its interval against 1.15x (faster, no "
            "gain, unclear); !: see the warnings; --wide: every column"
        )
    console.print(legend)

    def on(r: Result) -> str:
        return f"{build_label(r.context)}: " if several else ""

    notes = [*warnings, *getattr(args, "build_warnings", ())]
    for note in [*notes, *(on(r) + w for r in results for w in r.warnings)]:
        console.print(Text.assemble(("warning:", "yellow"), " " + _text.shown(note)))
    console.print()
    for line in report.verdicts(results):
        console.print(_text.shown(line))
    if args.command in ("check", "sweep"):
        cores = getattr(args, "cores", None)
        found = report.laws(results, cores)  # once: the lines and the JSON share it
        for line in report.law_lines(results, cores, found):
            console.print(_text.shown(line))
        meta.setdefault("law", found)
    if hasattr(args, "recorder"):
        args.recorder.meta.update(meta)
    if isinstance(console.file, io.StringIO):  # --format table -o PATH
        args.out.write(console.file.getvalue())
        if hasattr(args, "recorder"):
            args.recorder.lost = args.recorder.lost or args.out.lost


def _console(args: argparse.Namespace) -> Any:
    """Where the report goes: stdout, or stderr when stdout carries JSON or
    another ``--format``; a file for ``--format table -o PATH``."""
    machine_out = getattr(args, "json", None) == "-" or (
        args.format != "table" and (args.output or "-") == "-"
    )
    if args.format == "table" and args.out.path != "-":  # kept, then written by _report
        return _text.console(file=io.StringIO(), width=200 if args.wide else 80)
    console = _text.console(stderr=machine_out)
    if args.wide and not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # a file or pipe: keep each wide row on one line
    return console


def _failed(results: Sequence[Result]) -> int:
    """Exit status: 1 if a cell failed or timed out (the table says which), else 0."""
    return 1 if any(r.failed for r in results) else 0


def cmd_article(args: argparse.Namespace) -> int:
    """``demo --article``: the note's programs as written, then the fair figure."""
    from gilfree import article

    c = context()
    given = any(
        a in ("--rounds", "--repeats") or a.startswith(("--rounds=", "--repeats="))
        for a in args.argv
    )
    rounds = args.repeats if given else article.DEFAULT_ROUNDS
    count = args.n if args.n is not None else article.COUNT
    if count < 4:
        raise _Usage("--article needs -n of at least 4 (two processes of COUNT//2 // 2 each)")
    with _progress(args) as hook:
        report = article.replicate(rounds=rounds, count=count, progress=hook)
    print(
        f"The classic article, replicated: CPython {c.python}, {c.processor}, "
        f"{c.cpus_available} CPUs"
    )
    print("\n".join(report.lines()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.article:
        return cmd_article(args)
    backends = list(DEFAULT_BACKENDS)
    if args.scheduler:  # asked for a cluster: the demo runs on it too
        backends.append("dask")
    results = _measure(args, list(KERNELS), backends, [2])
    from gilfree.report import build_labels

    c = results[0].context
    python = " and ".join(build_labels(results))
    _report(
        args,
        results,
        f"Every kernel, 2 workers, {args.scaling} scaling — Python {python}, {c.cpu_count} CPUs",
        classic=True,
    )
    return _failed(results)


def _backend_options_apply(args: argparse.Namespace) -> None:
    """``--start-method`` and ``--scheduler`` need the backend they configure."""
    if args.start_method and "processes" not in args.backends:
        raise _Usage("--start-method applies to the processes backend only (-b processes)")
    if args.scheduler and "dask" not in args.backends:
        raise _Usage("--scheduler applies to the dask backend only (-b dask)")


def cmd_run(args: argparse.Namespace) -> int:
    """``sweep`` with run's defaults (one kernel, threads, 2 workers); every
    cell that did not run is a failure here, with its reason on stderr."""
    _backend_options_apply(args)
    status = _grid(args, f"{','.join(args.kernels)} on {','.join(args.backends)}")
    for r in args.recorder.results:
        if not r.ok and r.status == "unsupported":
            _say(f"gilfree: {r.kernel} on {r.backend}: {r.reason}")
            status = 1
    return status


def cmd_sweep(args: argparse.Namespace) -> int:
    _backend_options_apply(args)
    return _grid(args, f"sweep: workers {','.join(map(str, args.workers))}")


def _grid(args: argparse.Namespace, title: str) -> int:
    results = _measure(args, args.kernels, args.backends, args.workers)
    _report(args, results, title)
    status = _failed(results)
    if args.plot:
        from gilfree.plot import plot

        if any(r.ok for r in results):
            try:
                plot(results, args.plot)
            except OSError as exc:  # the disk filled, or the file went, during the run
                _say(
                    f"gilfree: writing the plot {args.plot} failed ({_why(exc)}); "
                    "the table above has the results"
                )
                return 1
            _say(f"plot written to {args.plot}")
        else:
            _say("gilfree: no cell ran, so there is nothing to plot")
            return 1
    return status


def cmd_check(args: argparse.Namespace) -> int:
    import traceback

    from gilfree.checker import as_kernel, check_call

    notes: list[str] = []
    try:
        call_args, call_kwargs = parse_call_args(args.call_args, notes)
    except argparse.ArgumentTypeError as exc:
        raise _Usage(str(exc)) from None
    for note in notes:
        _say(f"gilfree check: {note}")
    name = as_kernel(args.target.fn).name
    if args.builds:
        results = _measure_builds(
            args,
            [(name, b, args.workers) for b in args.backends],
            {"check": {"target": str(args.target), "args": list(args.call_args)}},
        )
        _report(
            args,
            results,
            f"check: {name} on {args.workers} workers, {args.calls} call(s) each per round",
            check={"function": name, "calls": args.calls, "verdicts": args.build_verdicts},
        )
        return _failed(results)
    try:
        with _progress(args) as hook, _prints_to_stderr():
            result = check_call(
                args.target.fn,
                call_args,
                call_kwargs,
                workers=args.workers,
                calls=args.calls,
                blas_threads=args.blas_threads,
                backends=args.backends,
                progress=hook,
                on_result=args.recorder.add,
                **_rounds(args),
            )
    except (KeyboardInterrupt, WorkerError):
        raise
    except Exception:  # the function itself raised: its traceback is the answer
        _say(f"gilfree check: {name} raised; the check stopped.")
        traceback.print_exc()
        return 1
    own = [w for w in result.warnings if not any(w in r.warnings for r in result.results)]
    _report(
        args,
        result.results,
        f"check: {name} on {args.workers} workers, {args.calls} call(s) each per round",
        warnings=own,
        check={"function": name, "calls": result.calls, "verdict": result.verdict},
    )
    return _failed(result.results)


def cmd_info(args: argparse.Namespace) -> int:
    import multiprocessing

    from gilfree.buildinfo import describe, gil_status
    from gilfree.results import write_json

    c = context()
    status = gil_status()
    backends = {name: reason or "available" for name, reason in iter_available()}
    data = {
        "context": c.__dict__,
        "gil": {
            "free_threaded_build": status.free_threaded_build,
            "enabled_after_imports": status.gil_now,
            "enabled_by": status.causes,
        },
        "backends": backends,
        "kernels": {k.name: k.description for k in KERNELS.values()},
        "start_methods": multiprocessing.get_all_start_methods(),
    }
    if args.json:
        try:
            write_json(data, args.json)
        except BrokenPipeError:
            raise
        except OSError as exc:
            _usage_error(args, f"cannot write --json {args.json}: {_why(exc)}")
        if args.json == "-":
            return 0
    lines = [
        f"Python        {c.implementation} {c.python}",
        *describe(status),
        f"switch interval {c.switch_interval_s * 1000:g} ms",
        f"CPUs          {c.cpu_count} ({len(c.cpu_affinity or ())} usable by this process)",
        f"processor     {c.processor}",
        f"platform      {c.platform}",
        f"built with    Cython {c.build.get('cython', '?')}, {c.build.get('compiler', '?')}",
        f"NumPy         {c.numpy or 'not installed'}",
        "thread pools  "
        + (
            ", ".join(f"{p['internal_api']} {p['num_threads']} threads" for p in c.thread_pools)
            or "none loaded"
        ),
        f"start methods {', '.join(multiprocessing.get_all_start_methods())}",
        "backends:",
        *(f"  {name:<13} {why}" for name, why in backends.items()),
        "kernels:",
        *(f"  {k.name:<13} {k.description}" for k in KERNELS.values()),
    ]
    print("\n".join(map(_text.shown, lines)))  # (a processor's name is the machine's text)
    return 0


def _say(message: str) -> None:
    """One message on stderr, the user's text in it shown as typed
    (control characters escaped, :func:`gilfree._text.shown`)."""
    print(_text.shown(message), file=sys.stderr)


def _usage_error(args: argparse.Namespace, message: str) -> NoReturn:
    """Exit 2 with one line, naming the command and where its help is."""
    prog = f"gilfree {args.command}"
    _say(f"{prog}: error: {message} (see {prog} --help)")
    raise SystemExit(2)


def _check_together(args: argparse.Namespace) -> None:
    """Refuse options that are valid alone but not together, before any work."""
    if args.max_rounds is not None and args.max_rounds < args.repeats:
        _usage_error(
            args,
            f"--max-rounds {args.max_rounds} is below --rounds {args.repeats}; raise "
            "--max-rounds or lower --rounds",
        )
    n = getattr(args, "n", None)
    if n is not None and getattr(args, "scaling", "strong") == "weak":
        workers = getattr(args, "workers", 2)  # demo runs 2 workers
        counts = workers if isinstance(workers, list) else [workers]
        if n * max(counts) > MAX_N:
            _usage_error(
                args,
                f"weak scaling: {max(counts)} workers x n={n} = {n * max(counts)} iterations, "
                f"more than the largest n ({MAX_N}); use a smaller -n",
            )


def _interrupted(args: argparse.Namespace) -> None:
    """After Ctrl-C: show the cells measured so far and end the JSON log."""
    recorder: _Recorder = args.recorder
    try:
        if recorder.results:
            _report(args, recorder.results, "interrupted: the cells measured before Ctrl-C")
        else:
            _say("gilfree: interrupted before any cell was measured")
    finally:
        recorder.end("interrupted")


def _load(path: str) -> Any:
    """A saved run, or one line (exit 2) naming the file and what is wrong."""
    from gilfree.results import load

    try:
        return load(path)
    except FileNotFoundError:
        raise _Usage(f"{path}: no such file") from None
    except IsADirectoryError:
        raise _Usage(f"{path}: a directory; give a results file") from None
    except UnicodeDecodeError:
        raise _Usage(f"{path}: not a gilfree results file (not text)") from None
    except OSError as exc:
        raise _Usage(f"{path}: cannot read it ({_why(exc)})") from None
    except ValueError as exc:
        raise _Usage(str(exc).splitlines()[0]) from None
    except (RecursionError, ArithmeticError, MemoryError) as exc:  # a file built to break readers
        raise _Usage(f"{path}: not a gilfree results file ({type(exc).__name__})") from None


def cmd_show(args: argparse.Namespace) -> int:
    saved = _load(args.results)
    if not saved.results:
        raise _Usage(f"{args.results}: no cell was measured in it (status {saved.status})")
    status = saved.status
    if args.format == "table":
        title = f"{args.results}: " + " ".join(saved.meta.get("command") or ["gilfree"])
        if status != "complete":
            title += f" ({status})"
        warnings = []
        if status == "cut off":
            warnings.append(
                "the run was killed before it ended: these are the cells it wrote, the "
                "rest are missing"
            )
        _report(args, saved.results, title, warnings=warnings)
    else:
        from gilfree.formats import render

        meta: dict[str, Any] = {}
        if args.format == "json":
            meta = {k: v for k, v in saved.meta.items() if k in ("command", "check")}
        elif args.format in ("markdown", "html"):
            meta = {"title": args.results}
        args.out.write(render(args.format, saved.results, status, **meta))
    if args.plot:
        from gilfree.plot import plot

        if not any(r.ok for r in saved.results):
            _say("gilfree: no cell ran, so there is nothing to plot")
            return 1
        plot(saved.results, args.plot)
        _say(f"plot written to {args.plot}")
    return 1 if args.out.lost else 0


def parse_fail_if(text: str) -> tuple[str, str, float]:
    """``speedup<-10%`` -> ("speedup", "<", -0.10)."""
    m = re.fullmatch(
        r"\s*(speedup|gil-wait|busy-cpus)\s*([<>])\s*([+-]?\d+(?:\.\d+)?)\s*%\s*", text
    )
    if not m:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a rule; write METRIC<CHANGE% or METRIC>CHANGE%, METRIC one of "
            "speedup, gil-wait, busy-cpus (e.g. 'speedup<-10%')"
        )
    return m.group(1), m.group(2), float(m.group(3)) / 100


def cmd_compare(args: argparse.Namespace) -> int:
    from rich.text import Text

    from gilfree.compare import compare, context_differences

    before, after = _load(args.before), _load(args.after)
    pairs, only_before, only_after = compare(before.results, after.results)
    console = _text.console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 120
    for note in context_differences(before.results, after.results):
        console.print(Text.assemble(("warning:", "yellow"), " " + _text.shown(note)))
    from gilfree.compare import table as compare_table

    # The paths on a line of their own, never wrapped: each stays whole to copy.
    console.print(_text.shown(f"{args.before} -> {args.after}"), soft_wrap=True, style="italic")
    console.print(compare_table(pairs, None))
    console.print(
        "change: speedup and busy CPUs relative to BEFORE, GIL wait in points; real: the "
        "two 95% intervals do not overlap (else: within noise)"
    )
    for path, only in ((args.before, only_before), (args.after, only_after)):
        for r in only:
            console.print(_text.shown(f"only in {path}: {r.kernel} on {r.backend} x{r.workers}"))
    if not pairs:
        _say("gilfree: the two runs share no cell (kernel, backend, workers, scaling)")
        return 1 if args.fail_if else 0
    broken = [
        f"{p.before.kernel} on {p.before.backend} x{p.before.workers}: {rule}"
        for p in pairs
        for rule in p.breaks(args.fail_if)
    ]
    for line in broken:
        _say(f"gilfree: regression: {line}")
    return 1 if broken else 0


COMMANDS = {
    "demo": cmd_demo,
    "run": cmd_run,
    "sweep": cmd_sweep,
    "check": cmd_check,
    "show": cmd_show,
    "compare": cmd_compare,
    "info": cmd_info,
}

#: Commands that measure (and so keep a recorder, a JSON log and a deadline).
MEASURING = ("demo", "run", "sweep", "check")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``gilfree`` and ``python -m gilfree``; returns the exit status."""
    from gilfree._watch import counting_sigints

    # SIGTERM stops a run as Ctrl-C does; real Ctrl-Cs are counted, so that a
    # KeyboardInterrupt the user's function raises itself is its failure.
    with _sigterm_as_interrupt(), counting_sigints():
        status = _main(argv)
    if "gilfree.backends.interpreters" in sys.modules:
        from gilfree.backends.interpreters import exit_if_stuck

        exit_if_stuck(status)  # a normal exit would wait for them for ever
    return status


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    bare_options = args_list and args_list[0].startswith("-")
    if not args_list or (bare_options and args_list[0] not in ("-h", "--help", "--version")):
        args_list = ["demo", *args_list]
    args, extra = parser.parse_known_args(args_list)
    if extra:  # named by the command's own parser, which has the help to see
        command = parser.commands[args.command]
        hint = ""
        if args.command == "check" and {"-n", "--n"} & set(extra):
            hint = "; check has no -n: the function's ARGs are its input, --calls N repeats it"
        command.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    args.argv = args_list  # recorded in the JSON output
    measuring = args.command in MEASURING
    if measuring:
        _check_together(args)
    try:
        if hasattr(args, "format"):  # -o tried now, before any work
            reads = [args.results] if args.command == "show" else []
            streamed = measuring and args.format == "jsonl"  # the log itself goes to -o
            args.out = _Output(None if streamed else args.output, reads)
        if measuring:
            args.builds = _probe_builds(args) if args.pythons else []
            args.recorder = _Recorder(args)
            args.recorder.open()
        status = COMMANDS[args.command](args)
        if measuring:
            args.recorder.end("complete" if status == 0 else "failed")
            if args.recorder.lost:  # (stderr said so when it happened)
                status = status or 1
        return status
    except _Usage as exc:
        if measuring and hasattr(args, "recorder"):
            args.recorder.discard()
        _usage_error(args, str(exc))
    except WorkerError as exc:
        if measuring:
            args.recorder.end("failed")
        _say(f"gilfree: a worker failed: {exc}")
        return 1
    except KeyboardInterrupt as exc:
        if measuring and hasattr(args, "recorder"):
            _interrupted(args)
        if isinstance(exc, Terminated):
            _say("gilfree: terminated (SIGTERM)")
            return 128 + signal.SIGTERM
        _say("gilfree: interrupted")
        return 130
    except BrokenPipeError:  # gilfree info | head: the reader left; say nothing more
        _silence_stdout()
        return 0
    return 0  # pragma: no cover - parser.error exits


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    owner = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != owner:  # a forked worker inherited this: die as SIGTERM asks
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
