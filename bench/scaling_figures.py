"""The scaling law against measurement.

Usage:
    python bench/scaling_figures.py            # measure with this Python, save JSON
    python bench/scaling_figures.py --table    # render every saved JSON as one table

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
from gilfree.kernels import truth_kernel
from gilfree.measure import context

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


def _label() -> str:
    return f"{'.'.join(map(str, sys.version_info[:2]))}-{context().cpus_available}cpu"


def measure(args: argparse.Namespace) -> None:
    data = {
        "machine": describe(),
        "label": _label(),
        "cpus": context().cpus_available,
        "io": io_rows(args.seconds),
        "mixed": mixed_rows(args.seconds),
    }
    out = RESULTS / f"scaling-{_label()}.json"
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
        lines += ["", f"Machine: {run['machine']}.", ""]
    out = RESULTS / "scaling.md"
    out.write_text("\n".join(lines).rstrip("\n") + "\n")
    print(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="render the saved results")
    parser.add_argument(
        "--seconds", type=float, default=0.2, help="serial work per worker and cell"
    )
    args = parser.parse_args()
    if args.table:
        table()
    else:
        measure(args)


if __name__ == "__main__":
    main()
