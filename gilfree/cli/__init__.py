"""The ``gilfree`` command: a thin layer over the public API.

Laid out by what each part owns: :mod:`~gilfree.cli.parser` (the argument
tree and ``main``), :mod:`~gilfree.cli.options` (the options the commands
share, declared once), :mod:`~gilfree.cli.output` (progress, --json, -o),
and one module per command family: :mod:`~gilfree.cli.measuring` (demo,
run, sweep, check), :mod:`~gilfree.cli.saved` (show, compare),
:mod:`~gilfree.cli.info` and :mod:`~gilfree.cli.builds` (--python).

Exit status: 0 success, 1 a measurement failed (a worker raised or died, a
cell timed out, a cell is unsupported in ``run``, the ``--json`` log could not
be written to the end), 2 bad arguments, 130 interrupted by Ctrl-C and 143
by SIGTERM (both after printing, and writing to ``--json``, the cells
measured).
"""

from __future__ import annotations

from gilfree.cli.options import (
    ARG_NAMES,
    bounded,
    parse_call_args,
    parse_count,
    parse_worker_count,
    round_options,
)
from gilfree.cli.parser import build_parser, main

__all__ = [
    "ARG_NAMES",
    "bounded",
    "build_parser",
    "main",
    "parse_call_args",
    "parse_count",
    "parse_worker_count",
    "round_options",
]
