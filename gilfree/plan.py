"""What to measure, validated once: a :class:`Plan`.

A plan names kernels x backends x worker counts, how much work (``n`` or a
target of ``seconds`` per serial run), the scaling, and how long to keep
measuring: at least ``rounds`` rounds, then more until every cell's speedup
is known to ``precision`` (the half-width of its 95% interval, as a share of
the speedup), within ``max_time`` seconds and ``max_rounds`` rounds.

Every argument is checked here, before any work starts, so that a bad value
is one clear error and not a failure after minutes of measurement.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from gilfree.backends import Backend, get_backend, resolve_start_method
from gilfree.backends.dask import check_scheduler
from gilfree.kernels import MAX_N, Kernel, check_count, get_kernel

__all__ = [
    "DEFAULT_MAX_ROUNDS",
    "DEFAULT_MAX_TIME",
    "DEFAULT_PRECISION",
    "DEFAULT_ROUNDS",
    "MAX_WORKERS",
    "Plan",
    "Scaling",
    "check_fraction",
    "check_seconds",
]

Scaling = Literal["strong", "weak"]
MAX_WORKERS = 1024
#: Never fewer rounds than this by default: a median and an interval need a few.
DEFAULT_ROUNDS = 5
#: Stop adding rounds once the speedup's 95% interval is within +-5% of it.
DEFAULT_PRECISION = 0.05
#: The time budget of one call (seconds): about what ``gilfree demo`` took
#: before rounds were adaptive.
DEFAULT_MAX_TIME = 30.0
#: A cell whose runs take milliseconds would otherwise add rounds for the
#: whole budget; past this many, more rounds rarely change a decision.
DEFAULT_MAX_ROUNDS = 30
#: The longest a time budget or a timeout may be: a day.
MOST_SECONDS = 86400.0


def check_seconds(
    value: object, name: str, *, most: float = MOST_SECONDS, allow_none: bool = False
) -> float | None:
    """A positive, finite number of seconds, at most ``most``.

    Raises TypeError for a non-number (a string, a bool) and ValueError for
    zero, a negative, NaN, infinity or too large a value, naming ``name``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and 0 < value <= most):
        raise ValueError(f"{name} must be more than 0 and at most {most:g} seconds, got {value!r}")
    return float(value)


def check_fraction(value: object, name: str, *, allow_none: bool = False) -> float | None:
    """A fraction strictly between 0 and 1 (0.05 is 5%)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number between 0 and 1, not {type(value).__name__}")
    if not (math.isfinite(value) and 0 < value < 1):
        raise ValueError(f"{name} must be between 0 and 1 (0.05 is 5%), got {value!r}")
    return float(value)


def _names(value: object, what: str) -> list[object]:
    """A list of names or objects; a lone string is one name, not its letters."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (Kernel, Backend, concurrent.futures.Executor)):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    kind = type(value).__name__
    raise TypeError(f"{what} must be a name or a list of names, not {kind}")


@dataclass(frozen=True)
class Plan:
    """An immutable, validated description of one measurement.

    Build it with :meth:`Plan.build`, which checks every value; the engine
    (:func:`gilfree.measure.measure`) trusts a built plan.
    """

    kernels: tuple[Kernel, ...]
    backends: tuple[Backend, ...]
    workers: tuple[int, ...]
    n: int | None
    seconds: float
    scaling: Scaling
    #: The fewest rounds per cell (the old ``repeats``).
    rounds: int
    #: Target half-width of the speedup's 95% interval, as a share of the
    #: speedup; None: exactly ``rounds`` rounds.
    precision: float | None
    max_time: float
    max_rounds: int
    warmups: int
    #: Measure the host's parallel capacity in the same rounds.
    capacity: bool
    #: The processes backend's start method (resolved: never None).
    start_method: str
    #: The dask backend's cluster: an address or a ``distributed.Client``.
    scheduler: Any
    timeout: float | None

    @classmethod
    def build(
        cls,
        kernels: Iterable[str | Kernel] | str | Kernel,
        backends: Iterable[str | Backend | concurrent.futures.Executor] | str | Backend,
        workers: Iterable[int] | int,
        n: int | None = None,
        *,
        seconds: float = 0.25,
        scaling: str = "strong",
        rounds: int = DEFAULT_ROUNDS,
        precision: float | None = DEFAULT_PRECISION,
        max_time: float = DEFAULT_MAX_TIME,
        max_rounds: int | None = None,
        warmups: int = 1,
        capacity: bool = True,
        start_method: str | None = None,
        scheduler: Any = None,
        timeout: float | None = None,
    ) -> Plan:
        """Check every value and return the plan; raises TypeError or
        ValueError (KeyError for an unknown kernel or backend name) naming the
        argument, before any work."""
        kernel_list = [get_kernel(k) for k in _names(kernels, "kernels")]  # type: ignore[arg-type]
        backend_list = [get_backend(b) for b in _names(backends, "backends")]  # type: ignore[arg-type]
        if not kernel_list or not backend_list:
            raise ValueError("give at least one kernel and one backend")
        # The same name twice would be measured twice and reported as two cells.
        kernel_list = list({k.name: k for k in kernel_list}.values())
        backend_list = list({b.name: b for b in backend_list}.values())
        counts = _worker_counts(workers)
        size = None if n is None else check_count(n, "n")
        if scaling not in ("strong", "weak"):
            raise ValueError(f"unknown scaling {scaling!r}; valid: strong, weak")
        secs = check_seconds(seconds, "seconds", most=3600)
        least, most = _round_limits(rounds, max_rounds)
        warm = check_count(warmups, "warmups", minimum=0, maximum=1000)
        prec = check_fraction(precision, "precision", allow_none=True)
        budget = check_seconds(max_time, "max_time")
        limit = check_seconds(timeout, "timeout", allow_none=True)
        if not isinstance(capacity, bool):
            raise TypeError(f"capacity must be True or False, not {type(capacity).__name__}")
        check_scheduler(scheduler)
        method = resolve_start_method(start_method)
        # Options live on backend instances: one configured per plan where an
        # option applies (a backend passed in configured keeps its own
        # unless the plan names one).
        backend_list = [
            b.configured(
                start_method=start_method
                if start_method is not None
                else b.defaults.get("start_method", method),
                scheduler=scheduler,
            )
            for b in backend_list
        ]
        if size is not None and scaling == "weak" and size * max(counts) > MAX_N:
            raise OverflowError(
                f"weak scaling: {max(counts)} workers x n={size} = {size * max(counts)} "
                f"iterations, more than the largest n ({MAX_N}); use a smaller n"
            )
        return cls(
            kernels=tuple(kernel_list),
            backends=tuple(backend_list),
            workers=tuple(counts),
            n=size,
            seconds=secs,  # type: ignore[arg-type]
            scaling=scaling,  # type: ignore[arg-type]
            rounds=least,
            precision=prec,
            max_time=budget,  # type: ignore[arg-type]
            max_rounds=most,
            warmups=warm,
            capacity=capacity,
            start_method=method,
            scheduler=scheduler,
            timeout=limit,
        )

    def options_for(self, backend: Backend) -> dict[str, Any]:
        """The options ``backend`` runs with in this plan (its own)."""
        return dict(backend.defaults)


def _worker_counts(workers: Iterable[int] | int) -> list[int]:
    """The worker counts asked for, each checked, in order, once each."""
    single = isinstance(workers, (str, bytes)) or not isinstance(workers, Iterable)
    counts_in = [workers] if single else list(workers)  # type: ignore[arg-type]
    counts = list(
        dict.fromkeys(check_count(w, "workers", minimum=1, maximum=MAX_WORKERS) for w in counts_in)
    )
    if not counts:
        raise ValueError("workers is empty; give at least one worker count, e.g. 2")
    return counts


def _round_limits(rounds: int, max_rounds: int | None) -> tuple[int, int]:
    """The fewest and the most rounds, checked against each other."""
    least = check_count(rounds, "repeats", minimum=1, maximum=1000)
    if max_rounds is None:  # the default, or the minimum asked for if that is more
        max_rounds = max(DEFAULT_MAX_ROUNDS, least)
    most = check_count(max_rounds, "max_rounds", minimum=1, maximum=10_000)
    if most < least:
        raise ValueError(
            f"max_rounds ({most}) is below the minimum number of rounds ({least}); "
            "raise max_rounds or lower repeats"
        )
    return least, most
