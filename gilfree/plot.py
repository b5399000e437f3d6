"""The speedup plot: speedup against workers, one line per kernel x backend.

matplotlib is an optional extra (``pip install "gilfree[plot]"``); it is
imported only when a plot is drawn, and a missing matplotlib is one clear
:class:`PlotUnavailableError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from gilfree._text import shown
from gilfree.results import Result, build_label

__all__ = [
    "PLOT_FORMATS",
    "PlotUnavailableError",
    "figure",
    "plot",
    "plot_format",
    "require_matplotlib",
    "svg",
]

#: File endings :func:`plot` writes, and the format each one means.
PLOT_FORMATS = {".png": "png", ".svg": "svg"}


class PlotUnavailableError(ImportError):
    """matplotlib is missing; the message names the extra that installs it."""


def plot_format(path: str) -> str:
    """``png`` or ``svg`` from the path's ending; ValueError for anything else."""
    ending = os.path.splitext(path)[1].lower()
    if ending not in PLOT_FORMATS:
        raise ValueError(
            f"cannot plot to {path!r}: the file must end in .png or .svg, e.g. speedup.png"
        )
    return PLOT_FORMATS[ending]


def require_matplotlib() -> None:
    """Raise :class:`PlotUnavailableError` unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailableError(
            'plots need matplotlib, an optional extra: pip install "gilfree[plot]"'
        ) from None


def plot(results: Sequence[Result], path: str) -> Any:
    """Speedup against workers, one line per kernel x backend, written to
    ``path`` (PNG or SVG, by its ending). Returns the matplotlib Figure.

    The dashed diagonal is ideal scaling; the dotted vertical line marks the
    CPUs available. Error bars are the 95% bootstrap intervals. Drawn on a
    bare :class:`matplotlib.figure.Figure`, so the caller's pyplot state and
    backend are left alone.
    """
    fmt = plot_format(path)
    fig = figure(results)
    _save(fig, path, fmt)
    return fig


def _save(fig: Any, where: Any, fmt: str) -> None:
    import warnings

    with warnings.catch_warnings():  # long names squeeze the axes: drawn all the same
        warnings.filterwarnings("ignore", message="constrained_layout not applied")
        fig.savefig(where, format=fmt)


def _label(text: str) -> str:
    """User text for a matplotlib label, shown as typed: control characters
    escaped, and ``$`` kept from starting mathtext."""
    return shown(text).replace("$", r"\$")


def svg(results: Sequence[Result]) -> str:
    """The same plot as SVG text, to put inline in a page."""
    import io

    out = io.StringIO()
    _save(figure(results), out, "svg")
    return out.getvalue()


def figure(results: Sequence[Result]) -> Any:
    """The plot as a bare matplotlib Figure (see :func:`plot`)."""
    require_matplotlib()
    from matplotlib.figure import Figure

    cells = [r for r in results if r.ok]
    if not cells:
        raise ValueError("nothing to plot: no cell of these results ran")
    c = cells[0].context
    cpus = c.cpus_available
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    lines: dict[tuple[str, str], list[Result]] = {}
    builds = list(dict.fromkeys(build_label(r.context) for r in cells))
    for r in cells:
        on = f" on {build_label(r.context)}" if len(builds) > 1 else ""
        lines.setdefault((r.kernel + on, r.backend), []).append(r)
    # Colour says the kernel, line style and marker the backend: a sweep of 4
    # kernels x 3 backends would run past the 10 colours of one cycle.
    kernels = list(dict.fromkeys(k for k, _ in lines))
    backends = list(dict.fromkeys(b for _, b in lines))
    for (kernel, backend), line in lines.items():
        b = backends.index(backend)
        style: dict[str, Any] = {
            "color": f"C{kernels.index(kernel) % 10}",
            "linestyle": ["-", "--", ":", "-."][b % 4],
            "marker": "osD^v"[b % 5],
        }
        line.sort(key=lambda r: r.workers)
        x = [r.workers for r in line]
        y = [r.speedup for r in line]
        ci = [r.speedup_ci() for r in line]
        err = [
            [max(0.0, s - lo) for s, (lo, _) in zip(y, ci, strict=True)],
            [max(0.0, hi - s) for s, (_, hi) in zip(y, ci, strict=True)],
        ]
        ax.errorbar(x, y, yerr=err, capsize=3, label=_label(f"{kernel} on {backend}"), **style)
    top = max(r.workers for r in cells)
    if len(builds) == 1:
        _draw_laws(ax, cells, kernels, top)
    ax.plot([1, top], [1, top], "k--", linewidth=1, label="ideal (speedup = workers)")
    ax.axvline(cpus, color="grey", linestyle=":", label=f"{cpus} CPUs available")
    ax.set_xticks(sorted({r.workers for r in cells} | {cpus}))
    ax.set_xlabel("workers")
    ax.set_ylabel("speedup vs one thread doing the same work")
    gil = "GIL enabled" if c.gil_enabled else "GIL disabled"
    fig.suptitle(
        _label(f"gilfree: {c.processor}, {cpus} CPUs") + f"\n{c.implementation} {c.python} ({gil})"
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _draw_laws(ax: Any, cells: Sequence[Result], kernels: list[str], top: int) -> None:
    """The scaling law of each kernel whose GIL was read (gilfree.scaling_law):
    its predicted curve, thin, and its bound 1/f where that is in view, in
    the kernel's colour."""
    from gilfree.scaling_law import HandoffCost, law_for, scaling

    for kernel in dict.fromkeys(r.kernel for r in cells):
        law = law_for([r for r in cells if r.kernel == kernel])
        if law is None or kernel not in kernels:
            continue
        colour = f"C{kernels.index(kernel) % 10}"
        xs = list(range(1, top + 1))
        cores = None if law["free"] == "wait" else cells[0].context.cpus_available
        cost = None if law["handoff"] is None else HandoffCost.from_dict(law["handoff"])
        rows = scaling(law["held"], xs, cores=cores, free=law["free"], handoffs=cost)
        ys = [row.predicted for row in rows]
        ax.plot(
            xs,
            ys,
            color=colour,
            linewidth=1,
            alpha=0.6,
            label=_label(f"{kernel}: the law's prediction"),
        )
        if law["knee"] < top:
            ax.axhline(
                law["knee"],
                color=colour,
                linewidth=0.8,
                linestyle=(0, (1, 3)),
                label=_label(f"{kernel}: the GIL's bound, 1/{law['held']:.2f}"),
            )
