"""``--format`` and ``-o`` on the measuring commands, ``gilfree show`` and
``gilfree compare``: saved runs re-read, converted and compared."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from test_measure import fake

from gilfree.cli import main
from gilfree.results import load, to_json, write_json

QUICK = ["-k", "cython-nogil,python", "-b", "threads", "-w", "2", "-n", "10**5"]
QUICK += ["--repeats", "2", "--precision", "off", "--no-progress"]


def test_format_json_to_a_file_keeps_the_report_on_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.json"
    assert main(["sweep", *QUICK, "--format", "json", "-o", str(path)]) == 0
    out = capsys.readouterr().out
    assert "speedup [95% CI]" in out and "python: " in out  # the report, as usual
    saved = load(str(path))
    assert saved.status == "complete" and [r.kernel for r in saved.results] == [
        "cython-nogil",
        "python",
    ]


def test_format_csv_to_stdout_moves_the_report_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", *QUICK, "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["kernel"], r["backend"], r["workers"]) for r in rows] == [
        ("cython-nogil", "threads", "2"),
        ("python", "threads", "2"),
    ]
    for row in rows:  # empty where too few rounds were kept for an interval
        if row["speedup_low"]:
            low, mid, high = (float(row[k]) for k in ("speedup_low", "speedup", "speedup_high"))
            assert low <= mid <= high
    assert "speedup [95% CI]" in err


def test_format_jsonl_and_json_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--format", "jsonl", "--json", "-"])
    assert info.value.code == 2
    assert "--json already writes JSON Lines" in capsys.readouterr().err


@pytest.fixture
def saved_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "run.jsonl"
    assert main(["sweep", *QUICK, "--json", str(path)]) == 0
    return path


def test_show_tables_a_saved_run_and_converts_it(
    saved_jsonl: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["show", str(saved_jsonl)]) == 0
    out = capsys.readouterr().out
    assert str(saved_jsonl) in out and "python: " in out and "cython-nogil" in out
    converted = tmp_path / "run.json"
    assert main(["show", str(saved_jsonl), "--format", "json", "-o", str(converted)]) == 0
    a, b = load(str(saved_jsonl)), load(str(converted))
    assert [r.speedup for r in a.results] == pytest.approx(
        [r.speedup for r in b.results], nan_ok=True
    )
    assert main(["show", str(converted), "--format", "markdown"]) == 0
    assert "| python | threads | 2 |" in capsys.readouterr().out


def test_show_keeps_a_long_path_in_its_title_whole(
    saved_jsonl: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    folder = tmp_path / ("a-folder-whose-name-alone-is-wider-than-the-table-" + "x" * 40)
    folder.mkdir()
    path = folder / "run.jsonl"
    path.write_bytes(saved_jsonl.read_bytes())
    capsys.readouterr()
    assert main(["show", str(path)]) == 0
    assert str(path) in capsys.readouterr().out  # one line, for the reader to copy


def test_show_of_a_cut_off_stream_shows_the_cells_it_holds(
    saved_jsonl: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = saved_jsonl.read_text().splitlines(keepends=True)
    saved_jsonl.write_text("".join(lines[:2]) + lines[2][:40])  # killed while writing cell 2
    capsys.readouterr()
    assert main(["show", str(saved_jsonl)]) == 0
    out = capsys.readouterr().out
    assert "(cut off)" in out and "the run was killed before it ended" in out
    assert "cython-nogil" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "the file is empty"),
        ('{"machine_info": {}, "benchmarks": []}', "not a gilfree results file"),
        ('{"format": "gilfree-results", "version": 7, "results": []}', "format version 7"),
        ('{"format": "gilfree-results", "version": 2, "results": []}', "no cell was measured"),
    ],
)
def test_show_and_compare_refuse_bad_files_in_one_line(
    tmp_path: Path, content: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    for argv in (["show", str(path)], ["compare", str(path), str(path)]):
        if argv[0] == "compare" and "no cell" in message:
            continue  # an empty run compares as sharing no cell (below)
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


def _saved(tmp_path: Path, name: str, results: list) -> str:  # type: ignore[type-arg]
    path = tmp_path / name
    write_json(to_json(results, command=["sweep"]), str(path))
    return str(path)


def test_compare_matches_cells_by_kind_not_n_and_fails_on_a_real_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = [
        fake("python", "threads", [0.98, 1.0, 1.02], contention=0.9),
        fake("cython-nogil", "threads", [1.9, 1.95, 2.0], contention=0.0),
    ]
    after = [
        replace(fake("python", "threads", [0.97, 1.0, 1.03], contention=0.9), n=7),
        replace(fake("cython-nogil", "threads", [0.99, 1.0, 1.01], contention=0.85), n=7),
    ]
    a, b = _saved(tmp_path, "before.json", before), _saved(tmp_path, "after.json", after)
    assert main(["compare", a, b]) == 0  # no rule: report only
    out = capsys.readouterr().out
    assert "cython-nogil" in out and "-49%" in out and "real" in out  # 1.95x -> 1.00x
    assert main(["compare", a, b, "--fail-if", "speedup<-10%"]) == 1
    err = capsys.readouterr().err
    assert "regression: cython-nogil on threads x2: speedup changed -48.7%" in err
    assert "python on threads" not in err  # within noise
    assert main(["compare", a, a, "--fail-if", "speedup<-10%"]) == 0
    assert main(["compare", a, b, "--fail-if", "gil-wait>+50%"]) == 1
    assert "gil-wait changed +85.0% points" in capsys.readouterr().err


def test_compare_warns_when_machines_or_builds_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = fake("python", "threads", [1.0, 1.0])
    other = replace(one, context=replace(one.context, python="3.99.0", processor="Other CPU"))
    a, b = _saved(tmp_path, "a.json", [one]), _saved(tmp_path, "b.json", [other])
    assert main(["compare", a, b]) == 0
    out = capsys.readouterr().out
    assert "different Python" in out and "different processor: " in out


@pytest.mark.parametrize("rule", ["speedup<-10", "latency<-10%", "speedup=-10%"])
def test_bad_fail_if_rules_are_refused(rule: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "a.json", "b.json", "--fail-if", rule])
    assert info.value.code == 2
    assert "is not a rule" in capsys.readouterr().err


def test_the_document_is_plain_json_with_its_version(tmp_path: Path) -> None:
    path = _saved(tmp_path, "doc.json", [fake("python", "threads", 1.0)])
    data = json.loads(Path(path).read_text())
    assert data["format"] == "gilfree-results" and data["version"] == 2


def test_the_html_page_shows_the_verdicts_and_the_plot_in_a_real_browser(
    tmp_path: Path,
) -> None:
    import shutil
    import subprocess

    pytest.importorskip("matplotlib")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless browser: Debian's chromium package is not installed")
    page = tmp_path / "run.html"
    assert main(["sweep", *QUICK, "--format", "html", "-o", str(page)]) == 0
    text = page.read_text()
    assert "<svg" in text and "http" not in text.split("<svg", 1)[0].replace(
        "http://www.w3.org", ""
    )  # self-contained: nothing fetched
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=390,2400"]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "python: " in dom and "cython-nogil: " in dom  # the verdicts, as rendered
    assert "<svg" in dom and "speedup vs one thread" in dom  # the plot, inline
    shot = tmp_path / "phone.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    from PIL import Image

    with Image.open(shot) as image:
        assert image.width == 390  # a phone's width: the page lays out in it
        colours = image.convert("L").getextrema()
        assert colours[0] < 100 < colours[1]  # text and plot drawn, not a blank page
