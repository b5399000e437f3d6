"""The argument tree and main(): parse, dispatch to a command, exit with its status."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from gilfree._watch import Terminated
from gilfree.backends import DEFAULT_BACKENDS, WorkerError
from gilfree.cli.builds import _probe_builds
from gilfree.cli.info import cmd_info
from gilfree.cli.measuring import _report, cmd_check, cmd_demo, cmd_run, cmd_sweep
from gilfree.cli.options import (
    DEMO_RUN_SECONDS,
    _backends_option,
    _common,
    _cores_option,
    _grid_options,
    _output_options,
    _Parser,
    bounded,
    parse_json_path,
    parse_plot_path,
    parse_target,
    parse_worker_count,
)
from gilfree.cli.output import _Output, _Recorder, _say, _silence_stdout, _Usage, _usage_error
from gilfree.cli.saved import cmd_compare, cmd_show, parse_fail_if
from gilfree.kernels import KERNELS, MAX_N
from gilfree.measure import MAX_WORKERS


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
        type=bounded("--calls", 1, 10**9),
        default=1,
        help="calls per worker per round (default 1); raise it for a fast function",
    )
    ck.add_argument(
        "--blas-threads",
        type=bounded("--blas-threads", 1, 4096),
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
