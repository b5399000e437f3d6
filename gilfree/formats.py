"""Results as text for other programs and pages: ``json``, ``jsonl``,
``csv`` and ``markdown`` (the terminal table lives in :mod:`gilfree.report`).

``json`` is one document (:func:`gilfree.results.to_json`: format version,
context once, named fields); ``jsonl`` the stream :class:`~gilfree.results.JsonLog`
writes while a run goes (start line, one line per cell, end line), here
rendered whole; ``csv`` one row per cell with the figures a spreadsheet
wants; ``markdown`` the compact table and the verdicts, for a README or an
issue. :func:`gilfree.results.load` reads both JSON forms back.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from gilfree.results import FORMAT, FORMAT_VERSION, Result, _clean, to_json

__all__ = ["CSV_COLUMNS", "FORMATS", "render"]

#: What ``--format`` takes; ``table`` is the terminal report.
FORMATS = ("table", "json", "jsonl", "csv", "markdown")

#: The columns of ``csv``, one row per cell.
CSV_COLUMNS = (
    "kernel",
    "backend",
    "workers",
    "scaling",
    "n",
    "status",
    "rounds",
    "rounds_left_out",
    "speedup",
    "speedup_low",
    "speedup_high",
    "share_of_capacity",
    "capacity_speedup",
    "busy_cpus",
    "gil_wait",
    "span_s",
    "serial_s",
    "startup_s",
    "mark",
    "warnings",
    "reason",
    "python",
    "gil_enabled",
    "processor",
    "timestamp",
)


def render(fmt: str, results: Sequence[Result], status: str = "complete", **meta: Any) -> str:
    """``results`` as ``fmt`` (one of :data:`FORMATS` but ``table``)."""
    if fmt == "json":
        return (
            json.dumps(_clean(to_json(results, status, **meta)), indent=2, allow_nan=False) + "\n"
        )
    if fmt == "jsonl":
        return _jsonl(results, status, meta)
    if fmt == "csv":
        return _csv(results)
    if fmt == "markdown":
        return _markdown(results, meta.get("title", "gilfree"))
    raise ValueError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")


def _jsonl(results: Sequence[Result], status: str, meta: dict[str, Any]) -> str:
    from gilfree._version import __version__

    context = results[0].to_dict()["context"] if results else None
    start = {"record": "start", "format": FORMAT, "version": FORMAT_VERSION}
    start.update(gilfree=__version__, context=context, **meta)
    lines = [start]
    lines += [{"record": "cell", **r.to_dict()} for r in results]
    lines.append({"record": "end", "status": status, "cells": len(results)})
    return "".join(json.dumps(_clean(line), allow_nan=False) + "\n" for line in lines)


def _figure(value: float, digits: int = 4) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.{digits}g}"


def _csv(results: Sequence[Result]) -> str:
    from gilfree.report import cell_mark

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        ok = r.ok
        low, high = r.speedup_ci() if ok else (math.nan, math.nan)
        row: dict[str, Any] = {
            "kernel": r.kernel,
            "backend": r.backend,
            "workers": r.workers,
            "scaling": r.scaling,
            "n": r.n,
            "status": r.status,
            "rounds": r.rounds,
            "rounds_left_out": r.excluded_rounds if ok else "",
            "speedup": _figure(r.speedup) if ok else "",
            "speedup_low": _figure(low),
            "speedup_high": _figure(high),
            "share_of_capacity": _figure(r.share) if ok else "",
            "capacity_speedup": _figure(r.capacity_speedup) if ok else "",
            "busy_cpus": _figure(r.busy_cpus) if ok else "",
            "gil_wait": "" if r.contention is None else _figure(r.contention),
            "span_s": _figure(r.median_s, 6) if ok else "",
            "serial_s": _figure(r.baseline_median_s, 6) if ok else "",
            "startup_s": _figure(r.setup_median_s, 6) if ok else "",
            "mark": cell_mark(r),
            "warnings": " | ".join(r.warnings) if ok else "",
            "reason": r.reason.split("\n", 1)[0],
            "python": r.context.python,
            "gil_enabled": r.context.gil_enabled,
            "processor": r.context.processor,
            "timestamp": r.context.timestamp,
        }
        writer.writerow([row[c] for c in CSV_COLUMNS])
    return out.getvalue()


def _markdown(results: Sequence[Result], title: str) -> str:
    from gilfree.report import cell_mark, unsupported_notes, verdicts

    def x(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.2f}x"

    reasons = unsupported_notes(results)
    lines = [
        f"**{title}**",
        "",
        "| kernel | backend | workers | speedup [95% CI] | GIL wait | mark |",
        "|---|---|--:|--:|--:|---|",
    ]
    for r in results:
        if not r.ok:
            note = reasons.index(r.reason.split("\n", 1)[0]) + 1
            speedup = f"{r.status} ({note})"
            gil = mark = ""
        else:
            low, high = r.speedup_ci()
            speedup = f"{x(r.speedup)} [{low:.2f}, {high:.2f}]" + (" !" if r.warnings else "")
            gil = r.gil.short() if r.gil is not None else ""
            mark = cell_mark(r)
        lines.append(f"| {r.kernel} | {r.backend} | {r.workers} | {speedup} | {gil} | {mark} |")
    lines.append("")
    lines += [f"({i}) {reason}" for i, reason in enumerate(reasons, 1)]
    if reasons:
        lines.append("")
    lines += [f"- {line}" for line in verdicts(results)]
    machine = results[0].context if results else None
    if machine is not None:
        lines += ["", f"{machine.implementation} {machine.python}, {machine.processor}"]
    return "\n".join(lines) + "\n"
