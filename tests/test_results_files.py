"""Reading ``--json`` logs back: every file gilfree wrote reads as what it
is, and anything else is refused with the file, the line and the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gilfree import run
from gilfree.results import JsonLog, Result, read_json
from gilfree.results.files import _clean


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


# ------------------------------------------------------- one format, versioned


@pytest.fixture(scope="module")
def measured() -> list:  # type: ignore[type-arg]
    from gilfree import sweep

    # Two rounds a cell: what is saved and read back is under test, not precision.
    return sweep(
        ["cython-nogil", "python"],
        ["threads", "processes"],
        [1, 2],
        n=10**5,
        repeats=2,
        precision=None,
    )


def _text(r: Result) -> str:
    """A result as canonical JSON text (NaN as null: NaN never equals itself)."""
    return json.dumps(_clean(r.to_dict()), sort_keys=True)


def test_from_dict_gives_back_the_same_result(measured: list) -> None:  # type: ignore[type-arg]
    for r in measured:
        data = json.loads(json.dumps(_clean(r.to_dict())))  # through real JSON
        again = Result.from_dict(data)
        assert _text(again) == _text(r)
        assert again.speedup_ci() == pytest.approx(r.speedup_ci(), nan_ok=True)
        assert again.gil == r.gil and again.host == r.host and again.capacity == r.capacity


def test_stamps_are_named_and_the_document_stores_the_context_once(
    measured: list,  # type: ignore[type-arg]
) -> None:
    from gilfree.results import FORMAT, FORMAT_VERSION, to_json

    doc = to_json(measured, command=["sweep"])
    assert doc["format"] == FORMAT and doc["version"] == FORMAT_VERSION
    assert "context" in doc and all("context" not in cell for cell in doc["results"])
    stamp = doc["results"][0]["runs"][0]["workers"][0]
    assert set(stamp) == {"start_ns", "end_ns", "cpu_s", "iterations"}


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_load_reads_both_forms_back_as_results(
    tmp_path: Path,
    measured: list,
    fmt: str,  # type: ignore[type-arg]
) -> None:
    from gilfree.formats import render
    from gilfree.report import load

    path = tmp_path / f"run.{fmt}"
    path.write_text(render(fmt, measured, "complete", command=["sweep"]))
    saved = load(str(path))
    assert saved.status == "complete" and saved.version == 2
    assert list(map(_text, saved.results)) == list(map(_text, measured))
    assert saved.meta["command"] == ["sweep"]


def test_load_reads_gilfree_0_1_documents() -> None:
    from gilfree.report import load

    saved = load(str(Path(__file__).parent / "data" / "demo-0.1.json"))
    assert saved.version == 1 and len(saved.results) == 15
    first = saved.results[0]
    assert first.kernel == "python" and first.ok and first.runs[0].workers[0].iterations > 0


def test_pandas_json_normalize_gives_clean_column_names(
    measured: list,  # type: ignore[type-arg]
) -> None:
    pd = pytest.importorskip("pandas")
    from gilfree.results import to_json

    doc = json.loads(json.dumps(_clean(to_json(measured))))
    frame = pd.json_normalize(doc["results"])
    for column in ("kernel", "backend", "workers", "derived.speedup", "derived.busy_cpus"):
        assert column in frame.columns
    assert "derived.speedup_ci95.low" in frame.columns  # intervals are named too
    assert not any(str(c).isdigit() for c in frame.columns)  # no positional columns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"the file is empty"),
        ("   \n", r"the file is empty"),
        ('{"machine_info": {}, "benchmarks": []}', r"not a gilfree results file"),
        ("[1, 2]", r"not a gilfree results file \(a JSON list\)"),
        ('{"format": "gilfree-results", "version": 99, "results": []}', r"format version 99"),
        ('{"format": "other", "version": 1, "results": []}', r"a 'other' file"),
        ('{"version": 2, "results": [{"kernel": "x"}]}', r"cell 1: not a gilfree cell"),
        ("not json at all\n", r"not a gilfree results file \(not JSON: it starts 'not json"),
        # A document cut short, text after it, and nesting built to break a reader.
        ('{\n  "format": "gilfree-results",\n  "ver', r"not valid JSON: .*cut short\?"),
        ('{"results": []}\njunk', r"not valid JSON: text after the JSON document \(line 2"),
        ("[" * 100_000, r"nested too deeply"),
        ('{"record": "start"}\n[1]\n', r":2: not a gilfree JSON Lines record \(a JSON list\)"),
    ],
)
def test_load_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    from gilfree.report import load

    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load(str(path))


def test_a_newer_stream_is_refused(tmp_path: Path, log_lines: list[str]) -> None:
    from gilfree.report import load

    start = json.loads(log_lines[0])
    start["version"] = 3
    path = tmp_path / "new.jsonl"
    path.write_text(json.dumps(start) + "\n" + "".join(log_lines[1:]))
    with pytest.raises(ValueError, match=r"format version 3, newer than this gilfree reads"):
        load(str(path))
