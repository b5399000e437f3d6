"""gilfree's pytest plugin, registered through the ``pytest11`` entry point.

Markers (the test's body is what is checked)::

    @pytest.mark.releases_gil
    def test_hash_releases_the_gil():
        mylib.hash_block(b"x" * 2**24)

    @pytest.mark.holds_gil(min_seconds=0.1)
    def test_parser_holds_the_gil():
        mylib.parse(big_document)

The body runs in a worker thread, again until ``min_seconds`` (default 0.05 s)
have passed, while the GIL is metered (see :mod:`gilfree.testing`). The
marker's keyword arguments go to :func:`gilfree.testing.check_gil`. A wrong
verdict fails the test like an assertion, with the evidence.

Fixture, for the explicit form::

    def test_both(gil):
        gil.assert_releases(mylib.hash_block, b"x" * 2**24)
        gil.assert_holds(mylib.parse, big_document)
        evidence = gil.evidence(mylib.compress, data)   # a GILEvidence, to inspect

Nothing heavy is imported until a marked test or the fixture is used, so the
plugin costs an unrelated test run nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gilfree.testing import GILEvidence

MARKERS = {
    "releases_gil": "releases",
    "holds_gil": "holds",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "releases_gil(min_seconds=0.05, interval=0.002): gilfree checks that the test's body "
        "releases the GIL while it runs",
    )
    config.addinivalue_line(
        "markers",
        "holds_gil(min_seconds=0.05, interval=0.002): gilfree checks that the test's body "
        "holds the GIL while it runs",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    marks = [m for m in pyfuncitem.iter_markers() if m.name in MARKERS]
    if not marks:
        return None  # not ours: pytest calls the test as usual
    if len({m.name for m in marks}) > 1:
        raise pytest.UsageError(
            f"{pyfuncitem.nodeid}: marked both releases_gil and holds_gil; keep one"
        )
    from gilfree.testing import check_gil, expect

    mark = marks[0]
    if mark.args:
        raise pytest.UsageError(
            f"{pyfuncitem.nodeid}: @pytest.mark.{mark.name} takes keyword arguments only "
            "(min_seconds=, interval=, max_calls=)"
        )
    names = pyfuncitem._fixtureinfo.argnames  # what pytest's own call passes
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    evidence = check_gil(pyfuncitem.obj, (), kwargs, **mark.kwargs)
    expect(evidence, MARKERS[mark.name])  # type: ignore[arg-type]
    return True


class GILAssertions:
    """The ``gil`` fixture: :mod:`gilfree.testing`'s checks as methods."""

    def evidence(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> GILEvidence:
        from gilfree.testing import gil_evidence

        return gil_evidence(fn, *args, **kwargs)

    def assert_releases(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> GILEvidence:
        from gilfree.testing import assert_releases_gil

        return assert_releases_gil(fn, *args, **kwargs)

    def assert_holds(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> GILEvidence:
        from gilfree.testing import assert_holds_gil

        return assert_holds_gil(fn, *args, **kwargs)


@pytest.fixture
def gil() -> GILAssertions:
    """Assert that a function releases or holds the GIL (gilfree)."""
    return GILAssertions()
