"""The README's, the docs' and the docstrings' examples run as written, and
every measured figure they show comes from a file in bench/results/."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = [
    "gilfree",
    "gilfree.kernels",
    "gilfree.measure",
    "gilfree.meter",
    "gilfree.sampler",
    "gilfree.checker",
    "gilfree.scaling_law",
]
DOCS = sorted((ROOT / "docs").glob("*.md"))
#: Examples that show what the GIL does: on a free-threaded build they run
#: with PYTHON_GIL=1 (see the needs_gil marker).
GIL_PAGES = {
    "check.md",
    "extension-authors.md",
    "meter.md",
    "sampler.md",
    "gilfree.meter",
    "gilfree.sampler",
}


#: Pages whose examples show a sleep's verdict, "threads help".
SLEEP_VERDICTS = {"README.md", "check.md"}


def _rounds_as_users_get(monkeypatch: pytest.MonkeyPatch, page: Path) -> None:
    """On the pages that show a sleep's verdict, cells may add up to 12 rounds
    while their interval is wide, not the 5 of the other tests
    (tests/conftest.py): a sleep keeps no CPU busy, so only its speedup shows
    threads helping, and over 5 rounds or fewer one round the host delayed
    spans the median's interval and leaves it undecided."""
    import gilfree.plan

    if page.name in SLEEP_VERDICTS:
        monkeypatch.setattr(gilfree.plan, "DEFAULT_MAX_ROUNDS", 12)


@pytest.mark.needs_gil
def test_readme_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    _rounds_as_users_get(monkeypatch, ROOT / "README.md")
    result = doctest.testfile(
        str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0, "the README has no examples to run"
    assert result.failed == 0


@pytest.mark.parametrize(
    "page",
    [pytest.param(p, marks=pytest.mark.needs_gil) if p.name in GIL_PAGES else p for p in DOCS],
    ids=lambda p: p.name,
)
def test_docs_examples(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _rounds_as_users_get(monkeypatch, page)
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_docs_pages_with_examples_are_tested() -> None:
    # The loop above must not pass by finding nothing to run.
    assert sum(">>> " in p.read_text() for p in DOCS) >= 4


@pytest.mark.parametrize(
    "name", [pytest.param(m, marks=pytest.mark.needs_gil) if m in GIL_PAGES else m for m in MODULES]
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


#: How the README's measured output blocks begin: each is pasted from a file
#: that a bench script wrote (bench/readme_figures.sh regenerates them all).
MEASURED_BLOCK_STARTS = (
    "Machine:",
    "The classic experiment",
    "check: ",
    "python: GIL-bound",
    "demo: median",
    "GIL sampler:",
    "Threads against the scaling law",
)


def test_readme_measured_blocks_are_copies_of_bench_results() -> None:
    """A figure edited by hand in the README, or a result file regenerated
    without the README following, fails here: every measured block must be
    found verbatim in one of bench/results/."""
    import re

    readme = (ROOT / "README.md").read_text()
    results = [
        p.read_text() for p in (ROOT / "bench" / "results").glob("*") if p.suffix in (".txt", ".md")
    ]
    blocks = [
        b.strip()
        for b in re.findall(r"^ *```[a-z]*\n(.*?)^ *```", readme, re.S | re.M)
        if b.startswith(MEASURED_BLOCK_STARTS)
    ]
    assert len(blocks) >= 1, "the README's measured blocks were not found"
    for block in blocks:
        assert any(block in text for text in results), f"not in bench/results/: {block[:200]!r}"


def test_docs_figures_come_from_bench_results() -> None:
    """The docs show measured output only through literalinclude, from files
    that exist: a figure cannot drift from the run that produced it."""
    import re

    included = [
        (page.name, target)
        for page in DOCS
        for target in re.findall(r"```\{literalinclude\} (\S+)", page.read_text())
    ]
    assert len(included) >= 8
    for page, target in included:
        path = (ROOT / "docs" / target).resolve()
        assert path.is_file(), f"{page}: {target} does not exist"
        assert path.parent == ROOT / "bench" / "results", f"{page}: {target}"
