"""The commands on saved runs: show and compare."""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from gilfree import _text
from gilfree.cli.measuring import _report
from gilfree.cli.options import _why
from gilfree.cli.output import _say, _Usage


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
