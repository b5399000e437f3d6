"""gilfree info: this machine, this build and what gilfree can use here."""

from __future__ import annotations

import argparse

from gilfree import _text
from gilfree.backends import iter_available
from gilfree.cli.options import _why
from gilfree.cli.output import _usage_error
from gilfree.kernels import KERNELS
from gilfree.measure import context


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
