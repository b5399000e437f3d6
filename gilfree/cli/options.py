"""The options the commands share, declared once, and the parsers of their values."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from gilfree import _text
from gilfree._args import ArgumentTooLarge, NotAValue, evaluate
from gilfree.backends import BACKENDS, DEFAULT_BACKENDS
from gilfree.kernels import KERNELS, MAX_N, check_count
from gilfree.measure import MAX_WORKERS
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


def bounded(option: str, low: int, high: int) -> Callable[[str], int]:
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
    """``--rounds`` (``--repeats``), ``--precision``, ``--max-time``,
    ``--max-rounds``: how long to measure, for every measuring command and the
    ``%gilcheck`` magic."""
    p.add_argument(
        "--rounds",
        "--repeats",
        dest="repeats",
        type=bounded("--rounds", 1, 1000),
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
    p.add_argument(
        "--max-rounds",
        type=bounded("--max-rounds", 1, 10_000),
        default=None,
        metavar="N",
        help=f"the most rounds per cell (default {DEFAULT_MAX_ROUNDS}, or --rounds if more)",
    )


def _repeats(p: argparse.ArgumentParser, precision: float | None = DEFAULT_PRECISION) -> None:
    round_options(p, precision)
    p.add_argument(
        "--warmups",
        type=bounded("--warmups", 0, 1000),
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
        type=bounded("--cores", 1, 4096),
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
