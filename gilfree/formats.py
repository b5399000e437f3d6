"""Results as text for other programs and pages: ``json``, ``jsonl``,
``csv`` and ``markdown`` (the terminal table lives in :mod:`gilfree.report`).

``json`` is one document (:func:`gilfree.results.to_json`: format version,
context once, named fields); ``jsonl`` the stream :class:`~gilfree.results.JsonLog`
writes while a run goes (start line, one line per cell, end line), here
rendered whole; ``csv`` one row per cell with the figures a spreadsheet
wants; ``markdown`` the compact table and the verdicts, for a README or an
issue; ``html`` one self-contained page to share a run (the table, the
verdicts, the context and the speedup plot inline as SVG), readable on a
phone. :func:`gilfree.results.load` reads both JSON forms back.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from gilfree._text import csv_cell, shown
from gilfree._text import markdown as md
from gilfree.results import FORMAT, FORMAT_VERSION, Result, build_label, to_json
from gilfree.results.files import _clean

__all__ = ["CSV_COLUMNS", "FORMATS", "render"]

#: What ``--format`` takes; ``table`` is the terminal report.
FORMATS = ("table", "json", "jsonl", "csv", "markdown", "html")

#: The columns of ``csv``, one row per cell.
CSV_COLUMNS = (
    "kernel",
    "build",
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
    "gil_held",
    "handoffs_per_s",
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
    if fmt == "html":
        return _html(results, meta.get("title", "gilfree"), status)
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
            "build": build_label(r.context),
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
            "gil_held": "" if r.gil_held is None else _figure(r.gil_held),
            "handoffs_per_s": "" if r.handoffs_per_s is None else _figure(r.handoffs_per_s),
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
        writer.writerow([_csv_value(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    """Text as :func:`gilfree._text.csv_cell` writes it (never run as a
    spreadsheet formula); numbers as they are."""
    return csv_cell(value) if isinstance(value, str) else value


def _markdown(results: Sequence[Result], title: str) -> str:
    from gilfree.report import (
        build_labels,
        cell_mark,
        held_cell,
        speedup_text,
        unsupported_notes,
        verdicts,
    )

    reasons = unsupported_notes(results)
    multi = len(build_labels(results)) > 1
    lines = [
        f"**{md(title)}**",
        "",
        "| kernel |"
        + (" build |" if multi else "")
        + " backend | workers | speedup [95% CI] | GIL held | mark |",
        "|---|" + ("---|" if multi else "") + "---|--:|--:|--:|---|",
    ]
    for r in results:
        if not r.ok:
            note = reasons.index(r.reason.split("\n", 1)[0]) + 1
            speedup = md(f"{r.status} ({note})")  # (a saved file's status is its text)
            gil = mark = ""
        else:
            speedup = speedup_text(r) + (" !" if r.warnings else "")
            gil = held_cell(r)
            mark = cell_mark(r)
        build = f" {md(build_label(r.context))} |" if multi else ""
        lines.append(
            f"| {md(r.kernel)} |{build} {md(r.backend)} | {r.workers} | {speedup} | {gil} "
            f"| {mark} |"
        )
    lines.append("")
    lines += [f"({i}) {md(reason)}" for i, reason in enumerate(reasons, 1)]
    if reasons:
        lines.append("")
    lines += [f"- {md(line)}" for line in verdicts(results)]
    machine = results[0].context if results else None
    if machine is not None:
        lines += ["", md(f"{machine.implementation} {machine.python}, {machine.processor}")]
    return "\n".join(lines) + "\n"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem auto; max-width: 60rem;
       padding: 0 1rem; line-height: 1.45; color: #1b1b1b; }}
h1 {{ font-size: 1.3rem; word-break: break-word; }}
.scroll {{ overflow-x: auto; }}
table {{ border-collapse: collapse; font-variant-numeric: tabular-nums; }}
th, td {{ padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; text-align: left;
         white-space: nowrap; }}
td.num {{ text-align: right; }}
.verdicts li {{ margin-bottom: 0.4rem; }}
figure {{ margin: 1rem 0; }}
figure svg {{ width: 100%; height: auto; }}
.context, .notes {{ color: #555; font-size: 0.9rem; }}
@media (max-width: 40rem) {{
  th, td {{ padding: 0.2rem 0.3rem; font-size: 0.8rem; }}
}}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="context">{status}</p>
<h2>Verdicts</h2>
<ul class="verdicts">
{verdicts}
</ul>
<div class="scroll"><table>
<thead><tr><th>kernel</th>{build_head}<th>backend</th><th>workers</th><th>speedup [95% CI]</th>
<th>GIL held</th><th>mark</th></tr></thead>
<tbody>
{rows}
</tbody>
</table></div>
{plot}
{notes}
<h2>Context</h2>
<ul class="context">
{context}
</ul>
</body>
</html>
"""


def _html(results: Sequence[Result], title: str, status: str) -> str:
    import html

    from gilfree.report import (
        build_labels,
        cell_mark,
        held_cell,
        speedup_text,
        unsupported_notes,
        verdicts,
    )

    def escape(text: str) -> str:
        return html.escape(shown(text))

    reasons = unsupported_notes(results)
    multi = len(build_labels(results)) > 1
    rows = []
    for r in results:
        build = f"<td>{escape(build_label(r.context))}</td>" if multi else ""
        if r.ok:
            speedup = speedup_text(r) + (" !" if r.warnings else "")
            gil = held_cell(r)
            mark = cell_mark(r)
        else:
            speedup = f"{r.status} ({reasons.index(r.reason.split(chr(10), 1)[0]) + 1})"
            gil = mark = ""
        rows.append(
            f"<tr><td>{escape(r.kernel)}</td>{build}<td>{escape(r.backend)}</td>"
            f'<td class="num">{r.workers}</td><td class="num">{escape(speedup)}</td>'
            f'<td class="num">{escape(gil)}</td><td>{escape(mark)}</td></tr>'
        )
    notes = [f"({i}) {reason}" for i, reason in enumerate(reasons, 1)]
    notes += [w for r in results for w in r.warnings]
    plot = ""
    if any(r.ok for r in results):
        try:
            from gilfree.plot import svg

            drawing = svg(results)
            plot = "<figure>" + drawing[drawing.index("<svg") :] + "</figure>"
        except ImportError:  # matplotlib is an optional extra
            plot = '<p class="notes">(the plot needs matplotlib: pip install "gilfree[plot]")</p>'
    context: list[str] = []
    if results:
        c = results[0].context
        gil = "GIL enabled" if c.gil_enabled else "GIL disabled"
        context = [
            f"{c.implementation} {c.python} ({gil}), switch interval "
            f"{c.switch_interval_s * 1000:g} ms",
            f"{c.processor}, {c.cpus_available} CPUs available of {c.cpu_count}",
            c.platform,
            f"gilfree {c.gilfree}, built with Cython {c.build.get('cython', '?')} and "
            f"{c.build.get('compiler', '?')}; NumPy {c.numpy or 'not installed'}",
            f"measured {c.timestamp}",
        ]
    return _PAGE.format(
        title=escape(title),
        status=escape(f"{len(results)} cells, {status}"),
        verdicts="\n".join(f"<li>{escape(line)}</li>" for line in verdicts(results)),
        rows="\n".join(rows),
        build_head="<th>build</th>" if multi else "",
        notes=(
            f'<details class="notes"><summary>{len(notes)} note(s) and warning(s)</summary>\n'
            + "\n".join(f"<p>{escape(n)}</p>" for n in notes)
            + "\n</details>"
            if notes
            else ""
        ),
        plot=plot,
        context="\n".join(f"<li>{escape(line)}</li>" for line in context),
    )
