"""Property tests over the public API: any value for ``n`` and ``workers``
gives the right count or the documented exception, never a crash, a hang or
a wrong count."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

# Where hypothesis does not install (a build with no wheel for it, whose
# native part needs the network to build), these skip, naming it.
pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gilfree import KERNELS, MAX_N, countdown, run
from gilfree.kernels import check_count
from gilfree.measure import MAX_WORKERS, chunks_for

#: The exceptions ``n`` and ``workers`` are documented to raise.
DOCUMENTED = (TypeError, ValueError, OverflowError)
#: Counted for real (bigger valid values are checked for acceptance only).
RUNNABLE = 200_000

numpy_scalars = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 2**64 - 1).map(np.uint64),
    st.integers(-(2**31), 2**31 - 1).map(np.int32),
    st.integers(0, 255).map(np.uint8),
    st.floats(allow_nan=True).map(np.float64),
    st.booleans().map(np.bool_),
)
anything = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(0, RUNNABLE),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.none(),
    st.just(2**63),
    st.just(MAX_N),
    st.just(10**100),
    numpy_scalars,
    st.lists(st.integers(), max_size=2),
    st.just(b"10"),
)


def expected(value: Any, minimum: int = 0, maximum: int = MAX_N) -> int | type[Exception]:
    """What every entry point must do with ``value``: the count, or the exception type."""
    if isinstance(value, (bool, np.bool_)):
        return TypeError
    if isinstance(value, (int, np.integer)):
        number = int(value)
        if number < minimum:
            return ValueError
        if number > maximum:
            return OverflowError
        return number
    return TypeError


@given(anything)
@settings(max_examples=300, deadline=None)
def test_check_count_agrees_with_the_documented_rules(value: Any) -> None:
    want = expected(value)
    if isinstance(want, int):
        assert check_count(value) == want
        assert type(check_count(value)) is int
    else:
        with pytest.raises(want):
            check_count(value)


@pytest.mark.parametrize("name", list(KERNELS))
@given(value=anything)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_every_kernel_counts_exactly_or_refuses(name: str, value: Any) -> None:
    want = expected(value)
    if isinstance(want, int):
        if want > RUNNABLE:
            return  # valid, and too long to count here: check_count accepted it above
        assert countdown(value, kernel=name) == want
    else:
        with pytest.raises(want):
            countdown(value, kernel=name)


@given(n=st.integers(0, 10**6), workers=st.integers(1, MAX_WORKERS))
@settings(max_examples=300, deadline=None)
def test_chunks_split_exactly(n: int, workers: int) -> None:
    strong = chunks_for(n, workers, "strong")
    assert sum(strong) == n and len(strong) == workers
    assert max(strong) - min(strong) <= 1
    assert chunks_for(n, workers, "weak") == [n] * workers


@given(
    n=st.one_of(st.integers(0, 50_000), anything),
    workers=st.one_of(st.integers(1, 4), anything),
)
@settings(max_examples=40, deadline=None)
def test_run_on_threads_counts_exactly_or_refuses(n: Any, workers: Any) -> None:
    if n is None:
        return  # documented: None sizes n by calibration (tested in test_measure)
    want_n = expected(n)
    want_w = expected(workers, minimum=1, maximum=MAX_WORKERS)
    if isinstance(want_w, int) and isinstance(want_n, int) and want_n <= RUNNABLE and want_w <= 8:
        result = run(
            "cython-nogil", "threads", workers=workers, n=n, repeats=1, warmups=0, precision=None
        )
        assert result.ok and all(r.iterations == want_n for r in result.runs)
        assert result.workers == want_w
        return
    if isinstance(want_w, int) and isinstance(want_n, int):
        return  # valid but too big to run in a test (checked by check_count)
    with pytest.raises(DOCUMENTED):
        run("cython-nogil", "threads", workers=workers, n=n, repeats=1, warmups=0, precision=None)


@pytest.mark.parametrize("backend", ["processes", "serial"])
@given(n=st.integers(0, 20_000), workers=st.integers(1, 3))
@settings(max_examples=8, deadline=None)
def test_run_counts_exactly_on_other_backends(backend: str, n: int, workers: int) -> None:
    result = run("python", backend, workers=workers, n=n, repeats=1, warmups=0, precision=None)
    assert result.ok and result.runs[0].iterations == n
