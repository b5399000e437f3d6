"""The gilfree command: output, JSON, exit codes, and one clear message per bad argument."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gilfree.cli import main
from gilfree.report import read_json

pytestmark = pytest.mark.usefixtures("fewer_rounds")


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("GIL", "switch interval", "CPUs", "threads", "processes", "interpreters"):
        assert word in out


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["backends"]["threads"] == "available"
    assert "gil_enabled" in data["context"]


def test_run_writes_json(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "r.json"
    code = main(
        [
            "run",
            "-k",
            "python",
            "-b",
            "threads",
            "-w",
            "2",
            "-n",
            "10**5",
            "--repeats",
            "3",
            "--precision",
            "off",
            "--warmups",
            "0",
            "--json",
            str(path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    # The verdict line: the word, or undecided where the host left a round out.
    assert re.search(r"^python: (GIL-bound|no GIL|inconclusive): ", out, re.M), out
    assert "GIL held" in out  # the held share column
    data = read_json(str(path))
    (result,) = data["results"]
    assert result["n"] == 100_000 and len(result["runs"]) == 3
    # The threads cell was metered (in an extra untimed run: --warmups 0).
    assert result["gil"]["samples"] >= 0
    assert result["derived"]["contention"] is None or 0 <= result["derived"]["contention"] <= 1
    assert data["start"]["command"][0] == "run"
    assert data["start"]["context"]["python"] == result["context"]["python"]
    assert data["status"] == "complete" and data["end"]["cells"] == 1


def test_json_to_stdout_keeps_stdout_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "-k", "cython-nogil", "-n", "1000", "--repeats", "1", "--json", "-"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()  # nothing but JSON Lines on stdout
    assert [json.loads(line)["record"] for line in lines] == ["start", "cell", "end"]
    assert "cython-nogil" in captured.err  # the table went to stderr


def test_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "sweep",
            "-k",
            "python,cython-nogil",
            "-b",
            "threads",
            "--workers",
            "1,2",
            "-n",
            "100_000",
            "--repeats",
            "1",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.count("threads") >= 4


def test_run_unsupported_cell_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "-k", "numpy", "-b", "interpreters", "-n", "10", "--repeats", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "NumPy" in err or "3.12" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "-n", "1e8"], "not a whole number (write 100000000 or 10**8"),
        (["run", "-n", "-5"], "negative"),
        (["run", "-n", "abc"], "not a whole number"),
        (["sweep", "--workers", "0,2"], "from 1 to"),
        (["sweep", "--workers", "a"], "from 1 to"),
        (["sweep", "-k", "cython-fast"], "unknown kernel 'cython-fast'"),
        (["sweep", "-b", "greenlets"], "unknown backend 'greenlets'"),
        (["run", "-k", "nope"], "unknown kernel 'nope'"),
        (["run", "-b", "threads,greenlets"], "unknown backend 'greenlets'"),
        (["run", "--json", "/nonexistent/dir/out.json"], "does not exist"),
        (["run", "--json", "/"], "is a directory"),
        (["run", "--seconds", "0"], "between 0 and 3600"),
        (["run", "-w", "0"], "from 1 to"),
        (["run", "-w", "5000"], "from 1 to"),
        (["run", "--repeats", "0"], "--rounds takes a whole number from 1 to 1000"),
        (["run", "--warmups", "-1"], "--warmups takes a whole number from 0 to 1000"),
        (["run", "-b", "threads", "--start-method", "spawn"], "processes backend only"),
        (["sweep", "-b", "threads", "--start-method", "spawn"], "processes backend only"),
        (["sweep", "-b", "threads", "--scheduler", "tcp://127.0.0.1:9"], "cannot reach"),
        (["run", "--timeout", "0"], "give seconds between 0 and 86400"),
        (["sweep", "--timeout", "soon"], "'soon' is not a number of seconds"),
        (["demo", "--timeout", "-1"], "give seconds between 0 and 86400"),
        (["sweep", "--plot", "/nonexistent/dir/p.png"], "does not exist"),
        (["sweep", "--plot", "p.pdf"], ".png"),
        (["sweep", "--json", "/dev/null/out.json"], "does not exist"),
        # Tried for real before any work: a permission check passes all four.
        (["run", "-k", "cython-nogil", "--json", "/dev/full"], "no space left on device"),
        (["info", "--json", "/dev/full"], "no space left on device"),
        (["run", "--format", "jsonl", "-o", "/dev/full"], "cannot write -o /dev/full"),
        (["run", "--json", "/proc/version"], "cannot write '/proc/version'"),
        (["sweep", "--plot", "/proc/version.png"], "cannot write '/proc/version.png'"),
        (["run", "--json", "newdir/"], "'newdir/' ends in a slash: give a file path"),
        (["run", "--json", ""], "an empty path"),
        (["check", "no_such_module_xyz:f"], "no_such_module_xyz"),
        (["check", "os:no_such_function"], "no_such_function"),
        (["run", "--max-time", "0"], "give seconds between 0 and 86400"),
        (["run", "--max-time", "nan"], "give seconds between 0 and 86400"),
        (["sweep", "--precision", "-0.05"], "the precision must be more than 0"),
        (["sweep", "--precision", "nan"], "the precision must be more than 0"),
        (["demo", "--precision", "5 percent"], "is not a precision"),
        (["sweep", "--rounds", "9", "--max-rounds", "3"], "--max-rounds 3 is below --rounds 9"),
        (
            ["run", "--scaling", "weak", "-n", "9223372036854775807", "-w", "2"],
            "weak scaling: 2 workers",
        ),
        (
            ["sweep", "--scaling", "weak", "-n", "9223372036854775807", "-w", "1,2"],
            "weak scaling: 2 workers",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err  # one line, not argparse's usage block


@pytest.mark.skipif(
    os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root can write anywhere"
)
def test_unwritable_json_path(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(SystemExit):
        main(["run", "--json", str(ro / "x.json")])
    assert "permission denied" in capsys.readouterr().err


def test_a_json_write_failing_mid_run_keeps_the_table_and_says_what_was_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gilfree.results import JsonLog

    def disk_full(self: JsonLog, result: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(JsonLog, "cell", disk_full)
    path = tmp_path / "r.jsonl"
    argv = ["sweep", "-k", "cython-nogil", "-b", "threads", "-w", "1,2", "-n", "10**6"]
    assert main([*argv, "--repeats", "1", "--precision", "off", "--json", str(path)]) == 1
    out, err = capsys.readouterr()
    assert "cython-nogil" in out and "threads" in out  # the table, every cell
    assert "writing the JSON log" in err and "no space left on device" in err
    assert "holds 0 of the cells" in err and "Traceback" not in err
    assert read_json(str(path))["status"] == "cut off"  # the start line only


def test_a_plot_write_failing_after_the_run_keeps_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    import gilfree.plot

    def disk_full(results: object, path: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gilfree.plot, "plot", disk_full)
    argv = ["sweep", "-k", "cython-nogil", "-b", "threads", "-w", "2", "-n", "10**6"]
    plot = str(tmp_path / "p.png")
    assert main([*argv, "--repeats", "1", "--precision", "off", "--plot", plot]) == 1
    out, err = capsys.readouterr()
    assert "cython-nogil" in out
    assert f"writing the plot {plot} failed (no space left on device)" in err


def test_json_to_a_closed_pipe_says_so_and_exits_1() -> None:
    # `gilfree sweep --json - | head -1`: the reader leaves after the start
    # line; the table still reaches stderr and the exit status says the
    # JSON was cut.
    cmd = [sys.executable, "-m", "gilfree", "sweep", "-k", "cython-nogil,python", "-b"]
    cmd += ["threads", "-w", "1,2", "-n", "10**6", "--repeats", "1", "--precision", "off"]
    proc = subprocess.Popen(
        [*cmd, "--json", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as head does after one line
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1, err
    assert json.loads(first)["record"] == "start"
    assert "writing the JSON log to standard output failed (broken pipe)" in err
    assert "python" in err and "Traceback" not in err  # the table, on stderr


TABLE_SWEEP = ["-k", "cython-object,cython-nogil", "-b", "threads,processes", "-w", "1,2"]
TABLE_SWEEP += ["-n", "10**5", "--repeats", "1", "--precision", "off", "--no-progress"]


def _table_lines(out: str) -> list[str]:
    """The table's lines: from its title to the blank line after it."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(("sweep", "cython")))
    end = lines.index("", start)
    return lines[start:end]


def test_the_default_table_fits_80_columns_and_keeps_every_figure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Piped (as under pytest) and without COLUMNS: 80 columns, nothing cut.
    monkeypatch.delenv("COLUMNS", raising=False)
    main(["sweep", *TABLE_SWEEP])
    table = _table_lines(capsys.readouterr().out)
    assert max(map(len, table)) <= 80, "\n".join(table)
    assert not any("\u2026" in line for line in table)  # no cell cut with an ellipsis
    assert any("!" in line for line in table)  # the too-short warning marks are kept
    header = table[1]
    for column in ("kernel", "backend", "workers", "speedup [95% CI]", "GIL held", "mark"):
        assert column in header
    assert "of capacity" not in header
    rows = [line for line in table if line.startswith("cython")]
    # A speedup with its whole interval (or the rounds it rests on, where too
    # few were kept for one), or "-" where every round was left out.
    figure = r"\d\.\d\dx (\[[\d.]+, [\d.]+\]|\(\d rounds?\))|\s- !"
    assert len(rows) == 8 and all(re.search(figure, r) for r in rows), "\n".join(rows)
    assert not any("nan" in r for r in rows)


def test_wide_shows_every_column_on_one_line_per_cell(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    main(["run", *TABLE_SWEEP, "--wide"])  # run takes sweep's flags
    table = _table_lines(capsys.readouterr().out)
    header = next(line for line in table if "kernel" in line)
    for column in ("n", "span", "rounds", "of capacity", "busy CPUs", "start-up", "classic"):
        assert column in header
    assert not any("\u2026" in line for line in table)
    assert len([line for line in table if line.startswith("\u2502 cython")]) == 8


def test_columns_and_no_color_are_honoured() -> None:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "FORCE_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "gilfree", "sweep", *TABLE_SWEEP, "--wide"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert not re.search(r"\x1b\[[0-9;]*3[0-9]m", proc.stdout)  # no colour codes
    visible = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout)  # styles such as bold stay
    assert max(map(len, visible.splitlines())) <= 120


def test_help_explains_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gilfree", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("demo", "run", "sweep", "info"):
        assert command in out
    run_help = subprocess.run(
        [sys.executable, "-m", "gilfree", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in (
        "--kernel",
        "--backend",
        "--workers",
        "--scaling",
        "--json",
        "--repeats",
        "--start-method",
        "--seconds",
    ):
        assert option in run_help


def test_demo_end_to_end_in_a_subprocess() -> None:
    # The README's main command, shrunk: the classic experiment, the table, verdicts.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gilfree",
            "demo",
            "--seconds",
            "0.02",
            "--repeats",
            "1",
            "--warmups",
            "0",
            # The structure of the output is under test, not its precision:
            # this process's tests cap rounds the same way (conftest).
            "--max-rounds",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "The classic experiment" in out
    assert "python, 2 threads" in out and "python, 2 processes" in out
    for kernel in ("python", "cython-object", "cython-gil", "cython-nogil", "numpy"):
        assert f"{kernel}: " in out  # one verdict per kernel


def test_refused_arguments_leave_no_json_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit):
        main(["run", "-b", "threads", "--start-method", "spawn", "--json", str(path)])
    assert not path.exists()
