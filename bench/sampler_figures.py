"""The GIL sampler against the truth, and what it costs the measured work.

Usage:
    python bench/sampler_figures.py            # measure with this Python, save JSON
    python bench/sampler_figures.py --table    # render every saved JSON as one table

Measuring writes ``bench/results/sampler-<python>.json`` (``PYTHON_GIL=1`` on
a free-threaded build is named ``sampler-<python>t-gil.json``):

- **truth**: the ``mixed`` and ``io`` kernels, whose GIL share is known by
  construction, at shares 0, 0.1, 0.25, 0.5, 0.75, 0.9 and 1, each run alone
  for about ``--seconds`` under a :class:`gilfree.GILSampler`;
- **kernels**: the five registered kernels, each alone for ``--seconds``;
- **cost**: ``--pairs`` back-to-back pairs of the same work with and without
  the sampler, the order alternating, on one thread and on as many threads
  as CPUs (every CPU busy: the sampler's wake-ups must then take a CPU from
  a worker). The cost is the median of the per-pair time ratios, minus one.

``--table`` renders ``bench/results/sampler.md`` from every saved JSON: the
table that docs/sampler.md includes and the README quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe

from gilfree import KERNELS, GILSampler
from gilfree._countdown import spins_per_ns
from gilfree.kernels import truth_kernel
from gilfree.measure import calibrate

RESULTS = Path(__file__).resolve().parent / "results"
SHARES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def _label() -> str:
    version = ".".join(map(str, sys.version_info[:2]))
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        version += "t" + ("-gil" if os.environ.get("PYTHON_GIL") == "1" else "")
    return version


def _read(work: Any) -> dict[str, Any]:
    with GILSampler(apart=True) as sampler:  # one thread alone, as gilfree samples it
        work()
    return sampler.reading().to_dict()


def truth(seconds: float) -> list[dict[str, Any]]:
    rows = []
    rate = spins_per_ns() * 1e9  # iterations per second
    for name in ("mixed", "io"):
        for share in SHARES:
            kernel = truth_kernel(name, share)
            # The io kernel counts only while it holds the GIL.
            n = int(rate * seconds * (share if name == "io" and share > 0 else 1.0))
            reading = _read(lambda k=kernel, n=n: k(n))
            rows.append({"kernel": name, "share": share, **reading})
            print(f"{name:5} share {share:4}: held {reading['held']:.3f}", file=sys.stderr)
    return rows


def kernels(seconds: float) -> list[dict[str, Any]]:
    rows = []
    for kernel in KERNELS.values():
        n = calibrate(kernel, seconds)
        reading = _read(lambda k=kernel, n=n: k(n))
        rows.append({"kernel": kernel.name, "gil": kernel.gil, **reading})
        print(f"{kernel.name:13} held {reading['held']:.3f}", file=sys.stderr)
    return rows


def _timed(threads: int, n: int, sampled: bool) -> float:
    kernel = KERNELS["cython-nogil"]
    workers = [threading.Thread(target=kernel, args=(n,)) for _ in range(threads)]
    # With a CPU to spare the sampler takes its own, as gilfree's do; with
    # every CPU busy the workers keep them all.
    apart = threads < (os.cpu_count() or 1)
    sampler = GILSampler(apart=apart) if sampled else None
    t0 = time.perf_counter()
    if sampler is not None:
        sampler.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if sampler is not None:
        sampler.stop()
    return time.perf_counter() - t0


def cost(seconds: float, pairs: int) -> list[dict[str, Any]]:
    rows = []
    n = calibrate("cython-nogil", seconds)
    for threads in sorted({1, os.cpu_count() or 1}):
        ratios = []
        for i in range(pairs):
            if i % 2 == 0:
                plain, sampled = _timed(threads, n, False), _timed(threads, n, True)
            else:
                sampled, plain = _timed(threads, n, True), _timed(threads, n, False)
            ratios.append(sampled / plain)
        median = statistics.median(ratios)
        rows.append({"threads": threads, "pairs": pairs, "ratios": ratios, "cost": median - 1})
        print(f"cost on {threads} thread(s): {median - 1:+.2%}", file=sys.stderr)
    return rows


def measure(args: argparse.Namespace) -> None:
    data = {
        "machine": describe(),
        "python": sys.version.split()[0],
        "label": _label(),
        "interval_s": GILSampler().interval,
        "truth": truth(args.seconds),
        "kernels": kernels(args.seconds),
        "cost": cost(args.seconds, args.pairs),
    }
    out = RESULTS / f"sampler-{_label()}.json"
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(out)


def table() -> None:
    runs = sorted(
        (json.loads(p.read_text()) for p in RESULTS.glob("sampler-*.json")),
        key=lambda d: d["label"],
    )
    if not runs:
        raise SystemExit("no bench/results/sampler-*.json yet: measure first")
    labels = [d["label"] for d in runs]
    lines = [
        "GIL sampler: held share read against the truth (one thread alone, "
        "sections of 50 us, mean sampling interval 50 us)",
        "",
        "| kernel | true share | " + " | ".join(f"CPython {lab}" for lab in labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    worst = 0.0
    for name in ("mixed", "io"):
        for share in SHARES:
            cells = []
            for d in runs:
                row = next(r for r in d["truth"] if r["kernel"] == name and r["share"] == share)
                worst = max(worst, abs(row["held"] - share))
                cells.append(f"{row['held']:.3f}")
            lines.append(f"| {name} | {share:g} | " + " | ".join(cells) + " |")
    for kernel in KERNELS:
        cells = [
            f"{next(r for r in d['kernels'] if r['kernel'] == kernel)['held']:.3f}" for d in runs
        ]
        lines.append(f"| {kernel} | | " + " | ".join(cells) + " |")
    costs = []
    for d in runs:
        costs.append(", ".join(f"{c['cost']:+.1%} on {c['threads']} thread(s)" for c in d["cost"]))
    lines += [
        "",
        f"Largest error against the truth: {worst:.3f}.",
        "Sampler cost to the measured work (median of back-to-back pairs of cython-nogil "
        "threads, in % of time): "
        + "; ".join(f"{lab}: {c}" for lab, c in zip(labels, costs, strict=True))
        + ". On 1 thread the sampler has a CPU of its own, as when gilfree samples one "
        "worker alone; with every CPU busy its wake-ups take CPU from the workers, so "
        "gilfree only counts the GIL's hand-offs there (no thread).",
        f"Machine: {runs[0]['machine']}.",
    ]
    out = RESULTS / "sampler.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", action="store_true", help="render the saved JSON as one table")
    parser.add_argument("--seconds", type=float, default=0.5, help="seconds per reading")
    parser.add_argument("--pairs", type=int, default=21, help="pairs per cost figure")
    args = parser.parse_args()
    table() if args.table else measure(args)


if __name__ == "__main__":
    main()
