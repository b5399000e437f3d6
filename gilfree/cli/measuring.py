"""The measuring commands: demo, run, sweep, check (and demo --article)."""

from __future__ import annotations

import argparse
import io
import os
from collections.abc import Sequence
from typing import Any

from gilfree import _text
from gilfree.backends import DEFAULT_BACKENDS, WorkerError
from gilfree.cli.builds import _measure_builds
from gilfree.cli.options import _why, parse_call_args
from gilfree.cli.output import _console, _failed, _prints_to_stderr, _progress, _say, _Usage
from gilfree.kernels import KERNELS
from gilfree.measure import Result, context, sweep


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
            f"check: {name} on {_text.workers(args.workers)}, {args.calls} call(s) each per round",
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
        f"check: {name} on {_text.workers(args.workers)}, {args.calls} call(s) each per round",
        warnings=own,
        check={"function": name, "calls": result.calls, "verdict": result.verdict},
    )
    return _failed(result.results)
