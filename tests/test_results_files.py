"""Reading ``--json`` logs back: every file gilfree wrote reads as what it
is, and anything else is refused with the file, the line and the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gilfree import run
from gilfree.results import JsonLog, read_json


@pytest.fixture(scope="module")
def log_lines(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A complete log of one cell: start, cell, end."""
    result = run("cython-nogil", "threads", workers=1, n=10**4, repeats=1, precision=None)
    path = tmp_path_factory.mktemp("log") / "one.jsonl"
    log = JsonLog(str(path), command=["run"])
    log.cell(result)
    log.end("complete")
    lines = path.read_text().splitlines(keepends=True)
    assert [json.loads(line)["record"] for line in lines] == ["start", "cell", "end"]
    return lines


def _read(tmp_path: Path, text: str) -> dict:  # type: ignore[type-arg]
    path = tmp_path / "log.jsonl"
    path.write_text(text)
    return read_json(str(path))


def test_a_complete_log_and_a_cut_off_one_read_as_such(
    tmp_path: Path, log_lines: list[str]
) -> None:
    assert _read(tmp_path, "".join(log_lines))["status"] == "complete"
    cut = _read(tmp_path, "".join(log_lines[:2]) + log_lines[2][:20])  # killed mid-write
    assert cut["status"] == "cut off" and len(cut["results"]) == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda ls: ls[0] + "[1, 2, 3]\n" + ls[2], r"log.jsonl:2: not a gilfree JSON Lines"),
        (lambda ls: ls[0] + '"text"\n', r"log.jsonl:2: not a gilfree JSON Lines"),
        (lambda ls: ls[0][:30], r"cut off inside its first line .* holds no cells"),
        (lambda ls: "".join(ls) + "".join(ls), r"log.jsonl:4: a start record after the end"),
        (lambda ls: "".join(ls) + ls[1], r"log.jsonl:4: a cell record after the end line"),
        (lambda ls: ls[0] + ls[1] + "".join(ls), r"log.jsonl:3: a second start record"),
        (lambda ls: ls[1] + ls[2], r"log.jsonl:1: a cell record before the start record"),
        (lambda ls: '{"record": "other"}\n', r"log.jsonl:1: not a gilfree JSON Lines record"),
        (lambda ls: "\n", r"no start record"),
    ],
    ids=[
        "array",
        "string",
        "cut-in-first-line",
        "two-logs-joined",
        "cell-after-end",
        "cut-log-then-another",
        "no-start",
        "unknown-record",
        "empty",
    ],
)
def test_what_is_not_one_log_is_named_as_what_it_is(
    tmp_path: Path,
    log_lines: list[str],
    make,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(ValueError, match=message):
        _read(tmp_path, make(log_lines))
