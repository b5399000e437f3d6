"""The scaling law against measurement.

Usage:
    python bench/scaling_figures.py            # measure with this Python, save JSON
    python bench/scaling_figures.py --table    # render every saved JSON as one table
    python bench/scaling_figures.py --parts short   # measure one part again

Measuring writes ``bench/results/scaling-<python>-<cpus>cpu.json``:

- **io**: the ``io`` kernel (its GIL-free part waits, as a socket read does)
  at held shares 0.2 and 0.5, in sections of 1 ms, on 1, 2, 4, 8 and 16
  threads: past the CPU count on a 2-CPU machine, since waiting takes no
  CPU. Weak scaling (each thread does the same work); the
  prediction is :func:`gilfree.scaling` with ``free="wait"``, from the held
  share the sampler read in the one-thread cell.
- **mixed**: the ``mixed`` kernel (both parts compute) at 0.25, 0.5 and
  0.75 on 2 threads, in sections of 1 ms and of 50 us. The speedup is
  compared as a share of the capacity measured in the same rounds (what
  as many processes got), against the prediction over the ideal
  (``free="compute"``, ``cores`` the CPUs available).

- **short**: functions whose held sections are tens of microseconds long,
  where the GIL's hand-offs cost as much as the sections: the ``mixed`` and
  ``io`` kernels in sections of 50 us, and ``bench/_chunked.py`` (a Python
  loop between ``hashlib`` updates). The law as ``gilfree sweep`` states it
  (:func:`gilfree.scaling_law.law_for`): the 2-thread run sets the hand-off
  cost (and is held to the GIL's queue alone), and the prediction for more
  threads takes that cost in. The host's capacity is measured in the same
  rounds, as ``check`` and ``sweep`` measure it, so that a shortfall the
  processes share is not read as the GIL's.

``--table`` renders ``bench/results/scaling.md`` from every saved JSON: the
table docs/scaling.md includes and the README quotes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe

from gilfree import scaling, sweep
from gilfree.checker import as_kernel
from gilfree.kernels import truth_kernel
from gilfree.measure import context
from gilfree.scaling_law import law_for

RESULTS = Path(__file__).resolve().parent / "results"
IO_SHARES = (0.2, 0.5)
IO_WORKERS = [1, 2, 4, 8, 16]
MIXED_SHARES = (0.25, 0.5, 0.75)
#: How far a prediction may miss its measurement before it is flagged.
TOLERANCE = {"io": 0.20, "mixed": 0.15}


def _cells(kernel: Any, workers: list[int], seconds: float, capacity: bool) -> list[Any]:
    return sweep(
        [kernel],
        ["threads"],
        workers,
        seconds=seconds,
        scaling="weak",
        repeats=5,
        precision=None,
        capacity=capacity,
    )


def io_rows(seconds: float) -> list[dict[str, Any]]:
    rows = []
    for share in IO_SHARES:
        kernel = truth_kernel("io", share, section_us=1000)
        cells = _cells(kernel, IO_WORKERS, seconds, capacity=False)
        # One reading predicts the whole curve, as it would for a user: the
        # held share of the one-thread cell.
        held = next((r.gil_held for r in cells if r.workers == 1), None) or share
        for r in cells:
            law = scaling(held, [r.workers], free="wait", sections="fixed")[0]
            rows.append(
                {
                    "share": share,
                    "workers": r.workers,
                    "held": held,
                    "speedup": r.speedup,
                    "bound": law.bound,
                    "predicted": law.predicted,
                    "busy_cpus": r.busy_cpus,
                    "handoffs_per_s": r.handoffs_per_s,
                }
            )
            print(
                f"io {share} x{r.workers}: measured {r.speedup:.2f}, predicted "
                f"{law.predicted:.2f}, bound {law.bound:.2f}",
                file=sys.stderr,
            )
    return rows


def mixed_rows(seconds: float) -> list[dict[str, Any]]:
    rows = []
    cores = context().cpus_available
    for section in (1000, 50):
        for share in MIXED_SHARES:
            kernel = truth_kernel("mixed", share, section_us=section)
            (r,) = _cells(kernel, [2], seconds, capacity=True)
            held = r.gil_held if r.gil_held is not None else share
            law = scaling(held, [2], cores=cores, sections="fixed")[0]
            rows.append(
                {
                    "share": share,
                    "section_us": section,
                    "held": held,
                    "speedup": r.speedup,
                    "capacity": r.capacity_speedup,
                    "of_capacity": r.share,
                    "predicted": law.predicted,
                    "predicted_of_ideal": law.predicted / min(2, cores),
                    "busy_cpus": r.busy_cpus,
                    "handoffs_per_s": r.handoffs_per_s,
                }
            )
            print(
                f"mixed {share} ({section} us) x2: {r.share:.2f} of capacity, predicted "
                f"{law.predicted / min(2, cores):.2f}",
                file=sys.stderr,
            )
    return rows


def _short_kernels() -> list[tuple[str, Any, list[int]]]:
    from _chunked import chunked

    return [
        ("mixed 0.5, 50 us", truth_kernel("mixed", 0.5, section_us=50), [2, 4]),
        ("mixed 0.75, 50 us", truth_kernel("mixed", 0.75, section_us=50), [2, 4]),
        ("io 0.5, 50 us", truth_kernel("io", 0.5, section_us=50), [2, 4, 8, 16]),
        ("chunked sha256, 16 KB, loop 200", as_kernel(chunked, (b"x" * 2**14, 300, 200)), [2, 4]),
        ("chunked sha256, 64 KB, loop 800", as_kernel(chunked, (b"x" * 2**16, 100, 800)), [2, 4]),
    ]


def short_rows(seconds: float) -> list[dict[str, Any]]:
    rows = []
    for name, kernel, workers in _short_kernels():
        cells = _cells(kernel, workers, seconds, capacity=True)  # as check and sweep do
        law = law_for(cells)
        if law is None:
            print(f"{name}: the GIL was not read", file=sys.stderr)
            continue
        by_workers = {c.workers: c for c in cells}
        for point in law["measured"]:
            cell = by_workers[point["workers"]]
            queue = scaling(law["held"], [cell.workers], cores=_cores(law), free=law["free"])
            rows.append(
                {
                    "name": name,
                    "workers": cell.workers,
                    "held": law["held"],
                    "free": law["free"],
                    "speedup": cell.speedup,
                    "queue": queue[0].predicted,
                    "predicted": point["predicted"],
                    "sets_cost": point["sets_cost"],
                    "handoff": law["handoff"],
                    "busy_cpus": cell.busy_cpus,
                    "handoffs_per_s": cell.handoffs_per_s,
                }
            )
            print(
                f"{name} x{cell.workers}: measured {cell.speedup:.2f}, queue "
                f"{queue[0].predicted:.2f}, with hand-offs {point['predicted']:.2f}",
                file=sys.stderr,
            )
    return rows


def _cores(law: dict[str, Any]) -> int | None:
    return None if law["free"] == "wait" else context().cpus_available


def _label() -> str:
    return f"{'.'.join(map(str, sys.version_info[:2]))}-{context().cpus_available}cpu"


PARTS = {"io": io_rows, "mixed": mixed_rows, "short": short_rows}


def measure(args: argparse.Namespace) -> None:
    out = RESULTS / f"scaling-{_label()}.json"
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"unknown part {unknown[0]!r}: choose from {', '.join(PARTS)}")
    # Parts not measured now keep their saved rows (each row is one sweep's,
    # its sides measured in the same rounds).
    data = json.loads(out.read_text()) if out.exists() else {}
    data.update({"machine": describe(), "label": _label(), "cpus": context().cpus_available})
    for part in parts:
        data[part] = PARTS[part](args.seconds)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(out)


def _off(measured: float, predicted: float) -> float:
    return measured / predicted - 1 if predicted > 0 else float("nan")


def table() -> None:
    runs = sorted(
        (json.loads(p.read_text()) for p in RESULTS.glob("scaling-*.json")),
        key=lambda d: d["label"],
    )
    if not runs:
        raise SystemExit("no bench/results/scaling-*.json yet: measure first")
    lines = []
    for run in runs:
        lines += [
            f"Threads against the scaling law ({run['label']}): the io kernel, GIL-free part "
            "waiting, sections of 1 ms, weak scaling; predicted with fixed sections (the "
            "kernel's), and with exponential ones beside it",
            "",
            "| held (nominal) | held (read) | threads | measured | predicted | off | "
            "exponential | bound |",
            "|---|---|---|---|---|---|---|---|",
        ]
        worst_io = 0.0
        above = 0.0
        for row in run["io"]:  # predicted again: the law as it stands, on the saved readings
            law = scaling(row["held"], [row["workers"]], free="wait", sections="fixed")[0]
            queue = scaling(row["held"], [row["workers"]], free="wait")[0].predicted
            row["predicted"], row["bound"] = law.predicted, law.bound
            off = _off(row["speedup"], row["predicted"])
            worst_io = max(worst_io, abs(off))
            above = max(above, row["speedup"] / row["bound"] - 1)
            flag = " (flagged)" if abs(off) > TOLERANCE["io"] else ""
            lines.append(
                f"| {row['share']:g} | {row['held']:.3f} | {row['workers']} | "
                f"{row['speedup']:.2f}x | {row['predicted']:.2f}x | {off:+.0%}{flag} | "
                f"{queue:.2f}x | {row['bound']:.2f}x |"
            )
        lines += [
            "",
            f"Largest miss: {worst_io:.0%} (a point missed by more than {TOLERANCE['io']:.0%} "
            f"is flagged); most above the bound: {above:+.0%}.",
            "",
            "The mixed kernel (both parts compute) on 2 threads: the speedup as a share of "
            "what 2 processes got in the same rounds, against the prediction over the ideal "
            "(fixed sections; exponential beside it)",
            "",
            "| held (nominal) | section | held (read) | of capacity | predicted | off | "
            "exponential | hand-offs/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in run["mixed"]:
            cores = run.get("cpus", 2)
            law = scaling(row["held"], [2], cores=cores, sections="fixed")[0]
            queue = scaling(row["held"], [2], cores=cores)[0].predicted / min(2, cores)
            row["predicted_of_ideal"] = law.predicted / min(2, cores)
            off = _off(row["of_capacity"], row["predicted_of_ideal"])
            flag = " (flagged)" if abs(off) > TOLERANCE["mixed"] else ""
            handoffs = row["handoffs_per_s"]
            lines.append(
                f"| {row['share']:g} | {row['section_us']} us | {row['held']:.3f} | "
                f"{row['of_capacity']:.2f} | {row['predicted_of_ideal']:.2f} | {off:+.0%}{flag} | "
                f"{queue:.2f} | {'' if handoffs is None else f'{handoffs:,.0f}'} |"
            )
        lines += _short_table(run.get("short", []))
        lines += ["", f"Machine: {run['machine']}.", ""]
    out = RESULTS / "scaling.md"
    out.write_text("\n".join(lines).rstrip("\n") + "\n")
    print(out.read_text())


def _short_table(rows: list[dict[str, Any]]) -> list[str]:
    """Short held sections: the 2-thread run against the GIL's queue alone
    (it sets the hand-off cost), the others against the law with it in."""
    if not rows:
        return []
    lines = [
        "",
        "Short held sections, where hand-offs cost as much as the sections: the law as "
        "`gilfree sweep` states it. The 2-thread run is held to the GIL's queue alone, and "
        "sets the hand-off cost (the loss the queue leaves unexplained, over its hand-offs, "
        "read against what as many processes got in the same rounds where both parts "
        "compute); "
        "the runs with more threads are held to the law with that cost in. No cost is read "
        "from a run whose CPUs were all busy (the CPUs held it back, not the GIL)",
        "",
        "| function | held (read) | threads | measured | GIL's queue alone | with hand-offs | "
        "off | cost per hand-off | hand-offs/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    worst = 0.0
    for row in rows:
        cost = row["handoff"]
        off = _off(row["speedup"], row["queue"] if row["sets_cost"] else row["predicted"])
        if not row["sets_cost"]:
            worst = max(worst, abs(off))
        flag = " (flagged)" if abs(off) > TOLERANCE["io"] else ""
        if row["sets_cost"]:
            with_cost = "sets the cost"
        elif cost is None:  # none read: its CPUs were all busy, so the law left them out
            with_cost = "none read (CPUs busy)"
        else:
            with_cost = f"{row['predicted']:.2f}x"
        each = "" if cost is None else f"{cost['seconds'] * 1e6:.1f} us"
        handoffs = row["handoffs_per_s"]
        lines.append(
            f"| {row['name']} | {row['held']:.3f} | {row['workers']} | {row['speedup']:.2f}x | "
            f"{row['queue']:.2f}x | {with_cost} | {off:+.0%}{flag} | {each} | "
            f"{'' if handoffs is None else f'{handoffs:,.0f}'} |"
        )
    lines += [
        "",
        f"Largest miss with the hand-off cost in: {worst:.0%} (a point missed by more than "
        f"{TOLERANCE['io']:.0%} is flagged).",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="render the saved results")
    parser.add_argument(
        "--seconds", type=float, default=0.2, help="serial work per worker and cell"
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="the parts to measure, comma-separated"
    )
    args = parser.parse_args()
    if args.table:
        table()
    else:
        measure(args)


if __name__ == "__main__":
    main()
