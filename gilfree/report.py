"""Reports: a terminal table, one verdict line per kernel, and JSON."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from rich.table import Table

from gilfree.measure import SPREAD_WARNING, Result

__all__ = [
    "classic_summary",
    "table",
    "to_json",
    "unsupported_notes",
    "verdict",
    "verdicts",
    "write_json",
]


def _x(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def _s(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"


def table(results: Sequence[Result], title: str = "gilfree") -> Table:
    """A rich table: one row per cell, unsupported cells with their reason."""
    t = Table(title=title, title_justify="left")
    for name, justify in [
        ("kernel", "left"),
        ("backend", "left"),
        ("workers", "right"),
        ("n", "right"),
        ("span", "right"),
        ("spread", "right"),
        ("speedup [95% CI]", "right"),
        ("effic.", "right"),
        ("busy CPUs", "right"),
        ("GIL wait", "right"),
        ("start-up", "right"),
        ("classic", "right"),
    ]:
        t.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    reasons = unsupported_notes(results)
    for r in results:
        if not r.ok:
            mark = f"[dim]unsupported ({reasons.index(r.reason) + 1})[/dim]"
            t.add_row(r.kernel, r.backend, str(r.workers), f"{r.n:.2e}", mark)
            continue
        low, high = r.speedup_ci()
        spread = f"{r.spread:.1%}" + (" [red]![/red]" if r.spread > SPREAD_WARNING else "")
        t.add_row(
            r.kernel,
            r.backend,
            str(r.workers),
            f"{r.n:.2e}",
            _s(r.median_s),
            spread,
            f"{_x(r.speedup)} [{low:.2f}, {high:.2f}]",
            f"{r.efficiency:.0%}",
            f"{r.busy_cpus:.2f}",
            r.gil.short() if r.gil is not None else "",
            _s(r.setup_median_s),
            _s(r.total_median_s),
        )
    return t


def unsupported_notes(results: Sequence[Result]) -> list[str]:
    """The distinct reasons why cells could not run, in order of appearance."""
    return list(dict.fromkeys(r.reason for r in results if not r.ok))


def _best(results: Sequence[Result], kernel: str, backend: str) -> Result | None:
    cells = [r for r in results if r.kernel == kernel and r.backend == backend and r.ok]
    return max(cells, key=lambda r: r.workers) if cells else None


def _gil(cell: Result) -> str:
    """``GIL contention 93%`` / ``no GIL`` / empty where the cell was not metered."""
    if cell.gil is None:
        return ""
    short = cell.gil.short()
    return short if short == "no GIL" else f"GIL contention {short}"


def verdict(results: Sequence[Result], kernel: str) -> str:
    """What helped ``kernel``, in words a person can act on (no name prefix).

    Read from its largest worker count on each backend. Threads at >= 80%
    efficiency help; at <= 1.15x they are GIL-bound, and the line says what
    did help instead; in between, partly parallel. The GIL contention reading
    (when the threads cell was metered) says why.
    """
    threads = _best(results, kernel, "threads")
    others = [
        f"{b} give {_x(c.speedup)}"
        for b in ("processes", "interpreters")
        if (c := _best(results, kernel, b)) is not None
    ]
    if threads is None:
        return "; ".join(others) if others else "no parallel backend ran"
    gil = _gil(threads)
    speed = f"{_x(threads.speedup)} at {threads.workers} workers"
    if not threads.context.gil_enabled:
        return f"no GIL: threads {speed}"
    if threads.workers > 1 and threads.efficiency >= 0.8:
        return f"threads help: {speed}" + (f", {gil}" if gil else "")
    if threads.speedup <= 1.15:
        line = f"GIL-bound: threads {_x(threads.speedup)}" + (f" ({gil})" if gil else "")
        advice = [*others, "or release the GIL in the hot loop"]
    else:
        line = f"partly parallel: threads {speed}" + (f" ({gil})" if gil else "")
        advice = others
    return "; ".join([line, *advice])


def verdicts(results: Sequence[Result]) -> list[str]:
    """One :func:`verdict` line per kernel, prefixed with its name."""
    kernels = dict.fromkeys(r.kernel for r in results)
    return [f"{name}: {verdict(results, name)}" for name in kernels]


def classic_summary(results: Sequence[Result]) -> list[str]:
    """The classic article's three lines, from the ``python`` cells."""
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


def to_json(results: Sequence[Result], **meta: Any) -> dict[str, Any]:
    """Every raw timing and the metadata, as one JSON-ready dict."""
    from gilfree import __version__

    return {
        "gilfree": __version__,
        **meta,
        "results": [r.to_dict() for r in results],
    }


def write_json(data: dict[str, Any], path: str) -> None:
    """Write ``data`` to ``path`` (``-``: standard output)."""
    text = json.dumps(_clean(data), indent=2, allow_nan=False)
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _clean(value: Any) -> Any:
    """NaN (no measurement) becomes null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
