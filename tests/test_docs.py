"""The README's and the docstrings' examples run as written."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["gilfree", "gilfree.kernels", "gilfree.measure", "gilfree.meter", "gilfree.checker"]


def test_readme_examples() -> None:
    result = doctest.testfile(
        str(ROOT / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS
    )
    assert result.attempted > 0, "the README has no examples to run"
    assert result.failed == 0


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


#: How the README's measured output blocks begin: each is pasted from a file
#: that a bench script wrote (bench/readme_figures.sh regenerates them all).
MEASURED_BLOCK_STARTS = ("Machine:", "The classic experiment", "check: ")


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
    assert len(blocks) >= 8, "the README's measured blocks were not found"
    for block in blocks:
        assert any(block in text for text in results), f"not in bench/results/: {block[:200]!r}"
