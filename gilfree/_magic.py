"""The IPython/Jupyter magic: ``%load_ext gilfree``, then ``%gilcheck expr``
(or ``%%gilcheck`` above a cell).

The expression (or the cell) is run the way ``gilfree check`` runs a
function: serially, then on threads, processes and subinterpreters where they
can host it, with the GIL contention meter on. The same table and verdict are
printed. The code runs in the notebook's namespace, several times; a cell
with side effects repeats them. Options before the expression (or on the
``%%gilcheck`` line): ``-w N`` workers (default 2), ``--calls N`` per worker
per round, and the rounds as on the command line: ``--rounds N`` (or
``--repeats N``), ``--precision P``, ``--max-time SECONDS``, ``--max-rounds N``.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

__all__ = ["gilcheck", "register"]


def _parser() -> argparse.ArgumentParser:
    from gilfree.cli import bounded, parse_worker_count, round_options

    p = argparse.ArgumentParser(prog="%gilcheck", add_help=False, exit_on_error=False)
    p.add_argument("-w", "--workers", type=parse_worker_count, default=2)
    p.add_argument("--calls", type=bounded("--calls", 1, 10**9), default=1)
    round_options(p)
    return p


_OPTION = re.compile(
    r"\s*(-w|--workers|--calls|--rounds|--repeats|--precision|--max-time|--max-rounds)"
    r"(?:\s+|=)(\S+)"
)


def _split(line: str) -> tuple[list[str], str]:
    """Leading ``-w N`` / ``--calls N`` / ``--rounds N`` (...) options, and the code
    after them as typed (never re-tokenised: it is Python, not shell)."""
    options: list[str] = []
    rest = line
    while m := _OPTION.match(rest):
        options += [m.group(1), m.group(2)]
        rest = rest[m.end() :]
    return options, rest.strip()


def gilcheck(namespace: dict[str, Any], line: str, cell: str | None = None) -> Any:
    """Check ``line`` (an expression) or ``cell`` (statements) in ``namespace``;
    print the table and verdict and return the :class:`gilfree.CheckReport`."""
    from gilfree.checker import check_call

    options, code = _split(line)
    try:
        opts = _parser().parse_args(options)
    except (argparse.ArgumentError, argparse.ArgumentTypeError, SystemExit) as exc:
        raise ValueError(f"%gilcheck: {exc}") from None
    if cell is None:
        if not code:
            raise ValueError("%gilcheck needs an expression, e.g. %gilcheck work(10**6)")
        compiled = compile(code, "<gilcheck>", "eval")
        label = code
    else:
        if code:
            raise ValueError(
                f"%%gilcheck takes only options on its line (-w N, --calls N, --repeats N), "
                f"not {code!r}; put the code in the cell"
            )
        compiled = compile(cell, "<gilcheck>", "exec")
        label = "cell"
    run: Callable[[], Any] = _Run(compiled, namespace, label)
    report = check_call(
        run,
        workers=opts.workers,
        calls=opts.calls,
        repeats=opts.repeats,
        precision=opts.precision,
        max_time=opts.max_time,
        max_rounds=opts.max_rounds,
    )
    print(report)
    return report


class _Run:
    """The user's code as a callable, named after it in the report."""

    def __init__(self, code: Any, namespace: dict[str, Any], label: str) -> None:
        self.code, self.namespace = code, namespace
        self.__qualname__ = self.__name__ = label
        self.__module__ = "%gilcheck"

    def __call__(self) -> Any:
        return eval(self.code, self.namespace)  # the notebook's own code


def register(ipython: Any) -> None:
    """Register ``%gilcheck`` / ``%%gilcheck`` with an IPython shell."""

    def magic(line: str, cell: str | None = None) -> Any:
        return gilcheck(ipython.user_ns, line, cell)

    ipython.register_magic_function(magic, magic_kind="line_cell", magic_name="gilcheck")
