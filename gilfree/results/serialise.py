"""A :class:`~gilfree.results.Result` as a dict, and back: the versioned
shape of a saved cell.

Every version gilfree has written is still read: version 1 (gilfree 0.1,
worker stamps as arrays, the context in every cell) and version 2 (named
fields, the context once per document). :class:`ResultIO` is mixed into
``Result``; the files around the cells are :mod:`gilfree.results.files`'s.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypeVar, cast

from gilfree.backends import RunTiming
from gilfree.meter import GILReading
from gilfree.results.context import CapacityRound, Context, HostLoad, ThreadCost
from gilfree.results.stats import ResultStats
from gilfree.sampler import Handoffs, SamplerReading

# ------------------------------------------------------------------------- JSON

#: What every file gilfree writes says it is, and in which version of its
#: shape: ``"format"`` and ``"version"`` in the JSON document and in the first
#: line of the JSON Lines stream. Version 1 is gilfree 0.1's document, which
#: had neither (it is still read); version 2 names every field (worker stamps
#: are objects, not arrays) and stores the context once in the document.
FORMAT = "gilfree-results"
FORMAT_VERSION = 2

_CAPACITY_FIELDS = ("workers", "serial_s", "serial_cpu_s", "parallel_s", "parallel_cpu_s")


#: The largest counts a saved cell may hold: far past any run, and small
#: enough that every figure made from them can be shown.
_MOST_N = 2**63 - 1
_MOST_WORKERS = 1_000_000


def _whole(value: Any, name: str, low: int, high: int) -> int:
    """A whole number from a saved file, within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{name} is {value!r}, not a whole number")
    if not low <= value <= high:
        digits = len(str(int(abs(value))))
        shown = f"a number of {digits} digits" if digits > 15 else str(value)
        raise ValueError(f"{name} is {shown}, outside {low} to {high:,}")
    return int(value)


def _num(value: Any) -> float:
    """A float read back from JSON, where NaN was written as null."""
    return float("nan") if value is None else float(value)


def _run_from(data: dict[str, Any]) -> RunTiming:
    from gilfree._worker import WorkerStamp

    def stamp(w: Any) -> WorkerStamp:
        if isinstance(w, dict):  # version 2: named
            return WorkerStamp(
                int(w["start_ns"]), int(w["end_ns"]), _num(w["cpu_s"]), int(w["iterations"])
            )
        return WorkerStamp(int(w[0]), int(w[1]), _num(w[2]), int(w[3]))  # version 1: an array

    return RunTiming(
        setup_s=_num(data["setup_s"]),
        span_s=_num(data["span_s"]),
        total_s=_num(data["total_s"]),
        workers=tuple(stamp(w) for w in data["workers"]),
        gil=_gil_from(data.get("gil")),
        span_from=data.get("span_from", "shared clock"),
    )


def _sampled_from(data: dict[str, Any] | None) -> SamplerReading | None:
    return None if data is None else SamplerReading.from_dict(data)


def _gil_from(data: dict[str, Any] | None) -> GILReading | None:
    if data is None:
        return None
    return GILReading(
        gil=bool(data["gil"]),
        samples=int(data["samples"]),
        waited_s=_num(data["waited_s"]),
        probed_s=_num(data["probed_s"]),
        max_wait_s=_num(data["max_wait_s"]),
        interval_s=_num(data["interval_s"]),
    )


def _context_from(data: dict[str, Any]) -> Context:
    affinity = data.get("cpu_affinity")
    return Context(
        python=str(data["python"]),
        implementation=str(data.get("implementation", "CPython")),
        free_threaded_build=bool(data.get("free_threaded_build", False)),
        gil_enabled=bool(data.get("gil_enabled", True)),
        switch_interval_s=_num(data.get("switch_interval_s")),
        cpu_count=data.get("cpu_count"),
        cpu_affinity=None if affinity is None else tuple(affinity),
        machine=str(data.get("machine", "")),
        processor=str(data.get("processor", "")),
        platform=str(data.get("platform", "")),
        gilfree=str(data.get("gilfree", "")),
        timestamp=str(data.get("timestamp", "")),
        build=dict(data.get("build") or {}),
        numpy=data.get("numpy"),
        thread_pools=tuple(data.get("thread_pools") or ()),
        settings={str(k): str(v) for k, v in (data.get("settings") or {}).items()},
    )


_R = TypeVar("_R", bound="ResultIO")


class ResultIO(ResultStats):
    """The dict forms of a :class:`~gilfree.results.Result` (mixed in, with
    the figures it saves beside its rounds)."""

    @classmethod
    def from_dict(cls: type[_R], data: dict[str, Any], context: dict[str, Any] | None = None) -> _R:
        """The :class:`Result` a :meth:`to_dict` (or a saved cell of any gilfree
        format) describes. ``context``: the document's context, for cells that
        store it once at the top. The derived figures are computed again from
        the raw timings, not read back.

        Raises ValueError naming the first field that is missing or wrong."""
        try:
            ctx = data.get("context") or context
            if not isinstance(ctx, dict):
                raise KeyError("context")
            make: Any = cls  # a dataclass (Result): its fields are its arguments
            made: _R = make(
                kernel=str(data["kernel"]),
                backend=str(data["backend"]),
                workers=_whole(data["workers"], "workers", 1, _MOST_WORKERS),
                n=_whole(data["n"], "n", 0, _MOST_N),
                scaling=data["scaling"],
                start_method=data.get("start_method"),
                status=data["status"],
                reason=str(data.get("reason", "")),
                runs=tuple(_run_from(r) for r in data["runs"]),
                warmups=tuple(_run_from(r) for r in data.get("warmups", ())),
                baseline_s=tuple(_num(x) for x in data["baseline_s"]),
                context=_context_from(ctx),
                gil=_gil_from(data.get("gil")),
                cell_setup_s=_num(data.get("cell_setup_s", 0.0)),
                baseline_cpu_s=tuple(_num(x) for x in data.get("baseline_cpu_s", ())),
                serial_first=tuple(bool(x) for x in data.get("serial_first", ())),
                capacity=tuple(
                    None if c is None else CapacityRound(**{k: c[k] for k in _CAPACITY_FIELDS})
                    for c in data.get("capacity", ())
                ),
                precision=data.get("precision"),
                stopped=str(data.get("stopped", "")),
                host=None if data.get("host") is None else HostLoad(**data["host"]),
                thread_cost=None
                if data.get("thread_cost") is None
                else ThreadCost(**data["thread_cost"]),
                gil_alone=_sampled_from(data.get("gil_alone")),
                gil_handoffs=None
                if data.get("gil_handoffs") is None
                else Handoffs.from_dict(data["gil_handoffs"]),
            )
            return made
        except KeyError as exc:
            raise ValueError(f"not a gilfree cell: it has no {exc.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            raise ValueError(f"not a gilfree cell: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Everything: raw timings, metadata and derived figures (JSON-ready)."""
        data: dict[str, Any] = asdict(cast(Any, self))  # a dataclass (Result)
        for key in ("runs", "warmups"):  # stamps by name, not as bare arrays
            for run in data[key]:
                run["workers"] = [w._asdict() for w in run["workers"]]
        low, high = self.speedup_ci()
        cap_low, cap_high = self.capacity_ci()
        share_low, share_high = self.share_ci()
        data["derived"] = {
            "median_s": self.median_s,
            "spread": self.spread,
            "setup_median_s": self.setup_median_s,
            "total_median_s": self.total_median_s,
            "cpu_median_s": self.cpu_median_s,
            "busy_cpus": self.busy_cpus,
            "baseline_median_s": self.baseline_median_s,
            "round_speedups": self.round_speedups,
            "round_consistent": self.round_consistent,
            "excluded_rounds": self.excluded_rounds,
            "flagged": self.flagged,
            "speedup": self.speedup,
            "speedup_ci95": {"low": low, "high": high},
            "precision_reached": self.precision_reached,
            "efficiency": self.efficiency,
            "capacity_speedup": self.capacity_speedup,
            "capacity_ci95": {"low": cap_low, "high": cap_high},
            "share": self.share,
            "share_ci95": {"low": share_low, "high": share_high},
            "contention": self.contention,
            "gil_held": self.gil_held,
            "handoffs_per_s": self.handoffs_per_s,
            "warnings": self.warnings,
        }
        return data
