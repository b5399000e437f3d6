"""--python: one command run on other interpreters, each in a child process."""

from __future__ import annotations

import argparse
from typing import Any

from gilfree.cli.options import DEMO_SECONDS
from gilfree.cli.output import _progress, _Usage
from gilfree.measure import Result
from gilfree.plan import DEFAULT_MAX_ROUNDS


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
