"""Two saved runs, cell by cell: what changed, and whether beyond the noise.

Cells are matched by kernel, backend, workers and scaling, never by ``n``,
which each run sizes for itself. A speedup change is *real* only when the two
runs' 95% intervals do not overlap, so a change smaller than either run's
own noise is never called a regression. ``gilfree compare BEFORE AFTER
--fail-if 'speedup<-10%'`` turns that into an exit status for CI, as
``pytest --benchmark-compare-fail`` does for times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from gilfree._text import plain
from gilfree.report import compact_table, speedup_text
from gilfree.results import Result, build_label

__all__ = ["Change", "compare", "context_differences", "table"]

#: A rule of ``--fail-if``: metric, ``<`` or ``>``, threshold (0.10 = 10%).
Rule = tuple[str, str, float]

Key = tuple[str, str, int, str, str]


def _key(r: Result, by_build: bool = False) -> Key:
    return (r.kernel, r.backend, r.workers, r.scaling, build_label(r.context) if by_build else "")


@dataclass(frozen=True)
class Change:
    """One cell measured in both runs."""

    before: Result
    after: Result

    @property
    def measured(self) -> bool:
        """Both cells ran and have a speedup."""
        return (
            self.before.ok
            and self.after.ok
            and not math.isnan(self.before.speedup)
            and not math.isnan(self.after.speedup)
        )

    @property
    def speedup(self) -> float:
        """Relative change of the speedup (-0.25: a quarter lower)."""
        if not self.measured or self.before.speedup <= 0:
            return math.nan
        return self.after.speedup / self.before.speedup - 1

    @property
    def real(self) -> bool:
        """The speedup's 95% intervals do not overlap: larger than both runs' noise."""
        if not self.measured:
            return False
        b_lo, b_hi = self.before.speedup_ci()
        a_lo, a_hi = self.after.speedup_ci()
        return a_hi < b_lo or a_lo > b_hi

    @property
    def gil_wait(self) -> float:
        """Change of the GIL wait in points (0.10: ten points more); NaN unmetered."""
        b, a = self.before.contention, self.after.contention
        return math.nan if a is None or b is None else a - b

    @property
    def busy_cpus(self) -> float:
        """Relative change of the busy CPUs."""
        if not self.measured or self.before.busy_cpus <= 0:
            return math.nan
        return self.after.busy_cpus / self.before.busy_cpus - 1

    def breaks(self, rules: Sequence[Rule]) -> list[str]:
        """The rules this change breaks, in words. A speedup rule needs the
        change to be :attr:`real` as well; GIL wait and busy CPUs carry no
        interval, so their threshold alone decides."""
        broken = []
        for metric, op, limit in rules:
            value = {"speedup": self.speedup, "gil-wait": self.gil_wait}.get(metric, self.busy_cpus)
            if math.isnan(value):
                continue
            crossed = value < limit if op == "<" else value > limit
            if crossed and (metric != "speedup" or self.real):
                unit = " points" if metric == "gil-wait" else ""
                broken.append(
                    f"{metric} changed {value * 100:+.1f}%{unit} (rule: {metric}{op}"
                    f"{limit * 100:+g}%)"
                )
        return broken


def compare(
    before: Sequence[Result], after: Sequence[Result]
) -> tuple[list[Change], list[Result], list[Result]]:
    """The matched cells, in ``after``'s order, and those found in only one
    run. Runs of several builds each (``--python``) match by build too."""
    by_build = any(len({build_label(r.context) for r in run}) > 1 for run in (before, after))
    first = {_key(r, by_build): r for r in before}
    second = {_key(r, by_build): r for r in after}
    pairs = [Change(first[k], r) for k, r in second.items() if k in first]
    only_before = [r for k, r in first.items() if k not in second]
    only_after = [r for k, r in second.items() if k not in first]
    return pairs, only_before, only_after


def context_differences(before: Sequence[Result], after: Sequence[Result]) -> list[str]:
    """What differs between the machines or builds of two runs, one line each
    (empty when they match): comparing across them measures the change of
    machine as much as the change of code."""
    if not before or not after:
        return []
    b, a = before[0].context, after[0].context
    notes = []
    for label, x, y in [
        ("Python", f"{b.implementation} {b.python}", f"{a.implementation} {a.python}"),
        ("build", _build(b), _build(a)),
        ("processor", b.processor, a.processor),
        ("CPUs", str(b.cpus_available), str(a.cpus_available)),
        ("platform", b.platform, a.platform),
    ]:
        if x != y:
            notes.append(f"different {label}: {x} before, {y} after; the change may be theirs")
    return notes


def _build(context: object) -> str:
    free = getattr(context, "free_threaded_build", False)
    gil = getattr(context, "gil_enabled", True)
    return ("free-threaded" if free else "with GIL") + (", GIL on" if gil else ", GIL off")


def _x(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def _pct(value: float, points: bool = False) -> str:
    if math.isnan(value):
        return ""
    return f"{value * 100:+.0f}" + (" pt" if points else "%")


def table(pairs: Sequence[Change], title: str | None) -> Table:
    """The matched cells: speedup before and after with intervals, the change,
    whether it is real, and the GIL wait and busy CPUs before -> after."""
    t = compact_table(
        title,
        [
            ("kernel", "left"),
            ("backend", "left"),
            ("w", "right"),
            ("before", "right"),
            ("after", "right"),
            ("change", "right"),
            ("", "left"),
            ("GIL wait", "right"),
            ("busy CPUs", "right"),
        ],
    )
    several = len({build_label(p.after.context) for p in pairs}) > 1
    for p in pairs:
        b, a = p.before, p.after
        kernel = f"{b.kernel} on {build_label(a.context)}" if several else b.kernel
        if not p.measured:
            t.add_row(*map(plain, (kernel, b.backend, str(b.workers), b.status, a.status)))
            continue
        gil = ""
        if b.contention is not None and a.contention is not None:
            gil = f"{b.contention:.0%} -> {a.contention:.0%}"
        t.add_row(
            plain(kernel),
            plain(b.backend),
            str(b.workers),
            speedup_text(b),
            speedup_text(a),
            _pct(p.speedup),
            "real" if p.real else "noise",
            gil,
            f"{b.busy_cpus:.2f} -> {a.busy_cpus:.2f}",
        )
    return t
