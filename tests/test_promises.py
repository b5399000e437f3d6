"""The five promises: nothing a user gives is mangled or lost, and every
failure is named truly (docs/promises.md).

1. What the user types is shown as typed (every command, every format).
2. Results are never lost or corrupted.
3. Every failure is named truly.
4. Nothing is measured that did not run.
5. The figures stay on screen.
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gilfree import _text
from gilfree._args import ArgumentTooLarge, evaluate
from gilfree.checker import FunctionExit, ResolveError, check_call, resolve
from gilfree.cli import ARG_NAMES, main, parse_call_args
from gilfree.measure import Result, run
from gilfree.results import load, to_json, write_json

HERE = Path(__file__).resolve().parent
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
}

#: Text that markup, emoji codes, terminals, Markdown and spreadsheets would
#: each read as something else, and very long names.
SPECIAL = [
    ":coffee:",
    ":sleepy:",
    "[red]",
    "[/]",
    "[bold]x[/bold]",
    "\x1b[2J",
    "\x07",
    "\n",
    "|",
    "<b>",
    "&lt;",
    "=1+2",
    "+x",
    "-x",
    "@x",
    "*a*",
    "_b_",
    "`c`",
    "\u202e",
    "☕",
    "é",
]
names = st.lists(
    st.one_of(st.sampled_from(SPECIAL), st.text(min_size=1, max_size=8)), min_size=1, max_size=6
).map("".join) | st.text(alphabet="ab[]/:|=", min_size=150, max_size=250)
QUICK = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def measured() -> Result:
    """One real cell, whose names the tests replace with generated text."""
    return run("cython-nogil", "threads", workers=2, n=200_000, repeats=3, precision=None)


def _saved(tmp: Path, cell: Result, kernel: str, processor: str = "AMD EPYC") -> str:
    context = dataclasses.replace(cell.context, processor=processor)
    named = dataclasses.replace(cell, kernel=kernel, context=context)
    path = tmp / f"run-{time.monotonic_ns()}.json"
    write_json(to_json([named], "complete", command=["run", "-k", kernel]), str(path))
    return str(path)


def _show(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["show", *argv]) == 0
    out, err = capsys.readouterr()
    return out + err


# ------------------------------------------------------------------ 1. as typed


@QUICK
@given(text=names)
def test_every_format_shows_a_name_as_typed(
    text: str,
    measured: Result,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "2000")  # room for the longest name on one line
    path = _saved(tmp_path_factory.mktemp("n"), measured, text, processor=text)
    shown = _text.shown(text)
    table = _show(capsys, path)
    assert shown in table and "\x1b" not in table.replace("\\x1b", "")
    assert f"{path}: run -k {shown}" in table  # the title too
    for fmt in ("json", "jsonl"):  # data formats keep the text exactly
        out = _show(capsys, path, "--format", fmt)
        doc = json.loads(out) if fmt == "json" else json.loads(out.splitlines()[1])
        cells = doc["results"] if fmt == "json" else [doc]
        assert cells[0]["kernel"] == text
    rows = list(csv.DictReader(io.StringIO(_show(capsys, path, "--format", "csv"))))
    assert rows[0]["kernel"] == _text.csv_cell(text) and rows[0]["processor"] == _text.csv_cell(
        text
    )
    assert not rows[0]["kernel"].startswith(("=", "+", "-", "@"))
    md = _show(capsys, path, "--format", "markdown")
    row = next(line for line in md.splitlines() if line.startswith("| ") and "threads" in line)
    assert _text.markdown(text) in row
    assert len(re.findall(r"(?<!\\)\|", row)) == 7  # the name adds no column
    assert "<b>" not in md


def test_the_html_page_shows_every_special_name_as_typed(
    measured: Result, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "".join(SPECIAL) + " $x$"
    page = _show(capsys, _saved(tmp_path, measured, text, processor=text), "--format", "html")
    assert html.escape(_text.shown(text)) in page and "<b>" not in page


@QUICK
@given(text=names)
def test_compare_shows_names_and_paths_as_typed(
    text: str,
    measured: Result,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "2000")
    folder = tmp_path_factory.mktemp("c")
    before = _saved(folder, measured, text)
    odd = folder / "r[/]x[red]:coffee:"
    odd.mkdir(parents=True, exist_ok=True)
    after = str(odd / "b.json")
    os.replace(_saved(folder, measured, text), after)
    assert main(["compare", before, after]) == 0
    out = capsys.readouterr().out
    assert f"{before} -> {after}" in out and _text.shown(text) in out


def test_check_shows_a_module_and_function_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # cafe:coffee and a[red]b:f: emoji codes and markup in the name.
    (tmp_path / "cafe.py").write_text("def coffee():\n    return sum(range(20000))\n")
    (tmp_path / "a[red]b.py").write_text("def f():\n    return sum(range(20000))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    for target in ("cafe:coffee", "a[red]b:f"):
        argv = ["check", target, "-b", "threads", "--rounds", "3", "--precision", "off"]
        main([*argv, "--no-progress"])
        out = capsys.readouterr().out
        assert f"\n{target}: " in out, out
        assert "☕" not in out


def test_markup_in_a_gilcheck_line_is_text(capsys: pytest.CaptureFixture[str]) -> None:
    # re.split("[/]", ...) in the line: rich read it as a closing tag and
    # raised MarkupError after the whole measurement.
    import re as re_module

    from gilfree._magic import gilcheck

    line = '--rounds 3 --precision off re.split("[/]", "a/b" * 2000)'
    report = gilcheck({"re": re_module}, line)
    out = capsys.readouterr().out
    assert report.results and 're.split("[/]", "a/b" * 2000)' in out


# ------------------------------------------------------------ 2. never lost


def test_a_checked_function_that_prints_does_not_corrupt_stdout(tmp_path: Path) -> None:
    # Worker processes print to the descriptor, threads to sys.stdout.
    for extra, backends in (
        (["--format", "json"], "threads,processes"),
        (["--json", "-"], "threads"),
    ):
        cmd = [sys.executable, "-m", "gilfree", "check", "userfuncs:chatty", "-b", backends]
        proc = subprocess.run(
            [*cmd, "--rounds", "3", "--precision", "off", *extra],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        assert "chatty: a line" not in proc.stdout and "chatty: a line" in proc.stderr
        path = tmp_path / "out.json"
        path.write_text(proc.stdout)
        assert load(str(path)).results  # the whole of stdout is one saved run


def test_two_streams_on_stdout_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "--json", "-", "--format", "json"])
    assert info.value.code == 2
    assert "both write to standard output" in capsys.readouterr().err
    # Nor two streams on one file.
    path = str(tmp_path / "r.json")
    with pytest.raises(SystemExit) as info:
        main(["run", "--json", path, "--format", "csv", "-o", path])
    assert info.value.code == 2
    assert "--json and -o both name" in capsys.readouterr().err
    assert not os.path.exists(path)


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown", "html"])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(
    fmt: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gilfree.cli.measuring

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured before the output was tried")

    monkeypatch.setattr(gilfree.cli.measuring, "sweep", no_work)
    for command in (["run", "-k", "python", "-b", "threads"], ["check", "userfuncs:nap", "0.001"]):
        with pytest.raises(SystemExit) as info:
            main([*command, "--format", fmt, "-o", "/dev/full"])
        assert info.value.code == 2
        assert "cannot write -o /dev/full: no space left on device" in capsys.readouterr().err


def test_show_never_writes_over_the_file_it_reads(
    measured: Result, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _saved(tmp_path, measured, "k")
    before = Path(path).read_bytes()
    for fmt in ("table", "json", "csv"):
        with pytest.raises(SystemExit) as info:
            main(["show", path, "--format", fmt, "-o", path])
        assert info.value.code == 2
    assert Path(path).read_bytes() == before
    assert "the file this command reads" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["show", path, "-o", "/dev/full"])


def test_a_write_that_fails_at_the_end_saves_the_output_elsewhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gilfree.cli.output import _Output

    out = _Output(str(tmp_path / "r.md"))
    out.path = "/dev/full"  # the disk filled during the run
    out.write("the results\n")
    assert out.lost and "no space left on device" in out.lost
    saved = re.search(r"saved in (\S+) instead", out.lost)
    assert saved and Path(saved.group(1)).read_text() == "the results\n"
    os.unlink(saved.group(1))
    assert "saved in" in capsys.readouterr().err


# ------------------------------------------------------------ 3. named truly


def test_sigterm_during_the_checked_function_is_a_termination(tmp_path: Path) -> None:
    # The serial baseline runs the function in gilfree's main thread, where
    # SIGTERM's exception lands inside it: never the function's failure.
    log = tmp_path / "t.jsonl"
    cmd = [sys.executable, "-m", "gilfree", "check", "userfuncs:spin", "10**9", "-b", "threads"]
    proc = subprocess.Popen(
        [*cmd, "--json", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (log.exists() and log.read_text()):
        time.sleep(0.05)
    time.sleep(0.5)  # inside the serial run of spin(10**9)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "raised" not in err and "FunctionExit" not in err
    assert json.loads(log.read_text().splitlines()[-1])["status"] == "interrupted"


def test_a_saved_run_built_to_break_readers_is_one_line(
    measured: Result, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(_saved(tmp_path, measured, "k"))
    doc = json.loads(path.read_text())
    doc["results"][0]["n"] = 10**400
    path.write_text(json.dumps(doc))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    for argv in (
        ["show", str(path), "--wide"],
        ["show", str(deep)],
        ["compare", str(deep), str(path)],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_os_exit_in_the_checked_function_is_never_success(tmp_path: Path) -> None:
    log = tmp_path / "ex.jsonl"
    for target in ("os:_exit", "userfuncs:exits"):
        proc = subprocess.run(
            [sys.executable, "-m", "gilfree", "check", target, "0", "--json", str(log)],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert "called os._exit(0)" in proc.stderr
        assert json.loads(log.read_text().splitlines()[-1])["status"] == "failed"
    with pytest.raises(FunctionExit, match=r"called os\._exit"):
        check_call(os._exit, (0,), backends=["threads"], repeats=3)


# ----------------------------------------------------- 4. nothing unrun measured


def test_generator_and_coroutine_functions_are_refused() -> None:
    import userfuncs

    for fn in (userfuncs.gen, userfuncs.coro):
        with pytest.raises(TypeError, match="runs none of its body"):
            check_call(fn, (10,))
    for target in ("userfuncs:gen", "userfuncs:coro"):
        with pytest.raises(ResolveError, match="runs none of its body"):
            resolve(target)
    with pytest.raises(TypeError, match="returned a generator: its body did not run"):
        check_call(userfuncs.makes_a_generator, (10,), backends=["threads"])


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("list(range(10**6)", "was never closed"),
        ("1/0", "ZeroDivisionError"),
        ("2.0**100000", "OverflowError"),
        ("~5", "the operator ~ is not supported"),
        ("foo(3)", "'foo' is not one of the names"),
    ],
)
def test_an_arg_passed_as_a_string_says_why(text: str, why: str) -> None:
    notes: list[str] = []
    args, _ = parse_call_args([text], notes)
    assert args == (text,)
    assert len(notes) == 1 and why in notes[0] and "passed as a string" in notes[0]


def test_a_word_or_a_path_passes_as_a_string_quietly() -> None:
    notes: list[str] = []
    assert parse_call_args(["data.csv", "my file.txt", "out/x"], notes)[0] == (
        "data.csv",
        "my file.txt",
        "out/x",
    )
    assert notes == []


@pytest.mark.parametrize(
    "text",
    [
        "list(b'x'*2**29)",
        "'x'*2**30+'x'*2**30",
        "'%02000000000d' % 0",
        "'%*d' % (2**31, 0)",
        "list(range(10**8))",
        "str(bytes(2**29))",
        "tuple('x'*2**28)",
    ],
)
def test_the_memory_bound_holds_for_the_whole_evaluation(text: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ArgumentTooLarge, match="GiB"):
        evaluate(text, ARG_NAMES)
    assert time.perf_counter() - t0 < 5


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    parts=st.lists(
        st.sampled_from(["'x'*2**18", "b'y'*2**17", "bytes(2**18)", "list(range(2**12))", "'z'"]),
        min_size=1,
        max_size=8,
    )
)
def test_no_sum_of_steps_passes_the_bound(
    parts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The budget is scale-free: at a bound of 1 MiB, steps of up to 256 KiB
    # each may pass alone, and their sum may not pass the bound.
    import gilfree._args

    monkeypatch.setattr(gilfree._args, "MAX_BYTES", 2**20)
    try:
        value = evaluate("+".join(parts), ARG_NAMES)
    except (ArgumentTooLarge, ValueError):
        return
    assert sys.getsizeof(value) <= 2**20 + 2**16


def test_one_round_decides_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "-k", "cython-nogil", "-b", "threads", "--rounds", "1", "--precision", "off"]
    main([*argv, "-n", "30000000"])  # a serial run of several ms: long enough to judge
    out = capsys.readouterr().out
    assert "(1 round)" in out and "[" not in out.split("speedup [95% CI]")[1].split("\n")[2]
    assert "cython-nogil: inconclusive:" in out and "raise --rounds to 3" in out
    assert " helps" not in out


# --------------------------------------------------------- 5. figures on screen


@QUICK
@given(length=st.integers(1, 300))
def test_long_names_leave_every_figure_whole_in_80_columns(
    length: int,
    measured: Result,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gilfree.report import speedup_text

    monkeypatch.setenv("COLUMNS", "80")
    name = ("mypackage.analysis:compute_statistics" * 10)[:length]
    path = _saved(tmp_path_factory.mktemp("w"), measured, name)
    out = _show(capsys, path)
    assert all(len(line) <= 80 for line in out.splitlines() if "threads" in line), out
    assert speedup_text(measured) in out and "…" not in out
    for word in ("backend", "workers", "GIL held", "mark"):
        assert word in out
    monkeypatch.delenv("COLUMNS")  # --wide to a file or pipe: 200 columns
    out = _show(capsys, path, "--wide")
    assert speedup_text(measured) in out and "…" not in out


# ------------------------------------------------------------ smaller things


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "userfuncs:nap", "-n", "5"], "check has no -n"),
        (["run", "--rounds", "0"], "--rounds takes a whole number"),
        (["run", "-n", "10**10**10"], "is too large"),
        (["run", "-k", "all,python"], "'all' stands alone"),
        (["check", "userfuncs:nap", "-w", "0"], "e.g. -w 2"),
        (["check", "./userfuncs.py:nap"], "is a file path; name the module"),
        (["check", "userfuncs:NOT_CALLABLE"], "is an int, not a callable"),
    ],
)
def test_smaller_messages_say_the_right_thing(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "-k", "python", "-o"],
        ["sweep", "-k", "python", "--json"],
        ["demo", "--json"],
        ["check", "userfuncs:nap", "0.01", "-o"],
        ["info", "--json"],
        ["show", "missing.json", "-o"],
    ],
)
def test_every_command_names_a_path_as_typed(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # A folder that does not exist, named with markup, emoji codes, [/] and an
    # escape code: the refusal quotes it as typed (escaped where it must be).
    path = "no[/]dir:coffee:[red]\x1b[2J/out.json"
    with pytest.raises(SystemExit) as info:
        main([*argv, path])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "no[/]dir:coffee:[red]" in err and "\x1b" not in err and "\\x1b" in err


def test_a_saved_run_with_a_byte_order_mark_reads_back(
    measured: Result, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An editor that saves UTF-8 "with BOM" puts U+FEFF first: a JSON
    # document and a JSON Lines log both still read.
    doc = Path(_saved(tmp_path, measured, "k"))
    log = tmp_path / "log.jsonl"
    log.write_text(_show(capsys, str(doc), "--format", "jsonl"))
    for path in (doc, log):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
        assert load(str(path)).results[0].kernel == "k"
