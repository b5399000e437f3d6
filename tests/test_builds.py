"""``--python``: every build of Python side by side, each in a child process.

Two builds are always at hand: this interpreter, and this interpreter with
a setting (``GILFREE_BUILD_TEST=2 python``), which is a build of its own as
``PYTHON_GIL=1 python3.13t`` is. The free-threaded interpreter itself is
exercised by tests/test_free_threaded.py, on that build.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from interrupting import _children, alive

from gilfree.builds import BuildError, parse_build, probe
from gilfree.cli import main
from gilfree.report import across_builds
from gilfree.results import ThreadCost, build_label, load

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
OTHER = f"GILFREE_BUILD_TEST=2 {PY}"
QUICK = ["-n", "10**6", "--rounds", "3", "--precision", "off", "--warmups", "0"]
QUICK += ["--no-progress", "--max-time", "10"]
#: This interpreter, and the same with a setting: two builds.
BOTH = ["--python", PY, "--python", OTHER]


def _fake_python(tmp_path: Path, body: str, name: str = "python") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_a_build_is_a_path_after_its_settings() -> None:
    build = parse_build("PYTHON_GIL=1 A='x y' /opt/python3.13t")
    assert build.path == "/opt/python3.13t"
    assert build.settings == {"PYTHON_GIL": "1", "A": "x y"}
    with pytest.raises(BuildError, match="give an interpreter"):
        parse_build("PYTHON_GIL=1")
    with pytest.raises(BuildError, match="give an interpreter"):
        parse_build("python3 python3.13")


def test_probe_reads_version_and_kind_of_a_real_interpreter() -> None:
    build = probe(parse_build(OTHER))
    assert build.python == ".".join(map(str, sys.version_info[:3]))
    assert build.path == PY
    assert build.label.endswith("GILFREE_BUILD_TEST=2")


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda t: str(t / "nowhere" / "python"), "no such file"),
        (lambda t: str(t), "a directory, not an interpreter"),
        (lambda t: "no-such-python-anywhere", "no 'no-such-python-anywhere' on PATH"),
        (lambda t: "/bin/true", "not a Python interpreter (exit status 0)"),
        (lambda t: str(_fake_python(t, "echo nonsense\n")), "not a Python interpreter: nonsense"),
        (
            lambda t: str(
                _fake_python(
                    t,
                    'echo \'gilfree-probe {"version": [3, 9, 18], "free_threaded": false}\'\n',
                )
            ),
            "Python 3.9.18; gilfree needs 3.10 or newer",
        ),
        (
            lambda t: str(
                _fake_python(
                    t,
                    'echo \'gilfree-probe {"version": [3, 12, 1], "free_threaded": false, '
                    '"missing": "ModuleNotFoundError: no gilfree"}\'\n',
                )
            ),
            "gilfree is not installed there",
        ),
    ],
)
def test_every_bad_python_is_one_line_and_exit_2_before_any_work(
    make, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "run.jsonl"
    started = time.monotonic()
    with pytest.raises(SystemExit) as info:
        main(["run", *QUICK, "--python", make(tmp_path), "--json", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1, err
    assert time.monotonic() - started < 30
    assert not out.exists(), "refused before the JSON log was started"


def test_a_python_without_gilfree_gets_the_pip_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "bare"
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True)
    monkeypatch.chdir(tmp_path)  # not the source folder, which has gilfree in it
    with pytest.raises(SystemExit) as info:
        main(["sweep", *QUICK, "--python", str(venv / "bin" / "python")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "gilfree is not installed there" in err
    assert f"{venv / 'bin' / 'python'} -m pip install" in err


def test_the_same_build_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", *QUICK, "--python", PY, "--python", PY])
    assert info.value.code == 2
    assert "are the same build" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """One run on two builds, shared by the tests that read it: its report,
    its saved JSON (``--format json -o``) and its JSON lines log (``--json``)."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("two-builds")
    saved, log = folder / "run.json", folder / "run.jsonl"
    args = ["run", "-k", "python,cython-nogil", "-b", "threads", "-w", "2", *QUICK, *BOTH]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "--format", "json", "-o", str(saved), "--json", str(log)])
    assert code == 0
    return out.getvalue(), saved, log


def test_two_builds_side_by_side(two_builds: tuple[str, Path, Path]) -> None:
    err, saved, _ = two_builds  # the report, as usual beside --format json -o PATH
    run = load(str(saved))
    labels = [build_label(r.context) for r in run.results]
    assert len(run.results) == 4 and len(set(labels)) == 2
    other = [r for r in run.results if r.context.settings == {"GILFREE_BUILD_TEST": "2"}]
    assert len(other) == 2 and all(r.ok for r in run.results)
    # One thread's cost against the first build, measured in the same run,
    # kept in the file; the same interpreter costs about the same.
    for r in other:
        cost = r.thread_cost
        assert isinstance(cost, ThreadCost) and cost.rounds >= 3
        assert cost.against == build_label(run.results[0].context)
        assert cost.low <= cost.ratio <= cost.high and 0.5 < cost.ratio < 2
    assert all(r.thread_cost is None for r in run.results if r not in other)
    # The table has a build column, and one verdict per kernel spans both builds.
    assert " build " in err
    line = next(ln for ln in err.splitlines() if ln.startswith("python: "))
    assert " on " in line and "GILFREE_BUILD_TEST=2" in " ".join(err.split())
    assert across_builds(run.results, "python").count(" on ") >= 2


def test_check_runs_the_users_function_on_each_build(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    code = main(["check", "userfuncs:nap", "0.02", "-b", "threads", *QUICK[2:], *BOTH])
    assert code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "userfuncs:nap: threads" in out and "GILFREE_BUILD_TEST=2" in out


def test_a_check_target_missing_on_a_build_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "onlyhere.py").write_text("def f():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable here, not in the child's folder
    with pytest.raises(SystemExit) as info:
        main(["check", "onlyhere:f", *QUICK[2:], "--python", PY])
    assert info.value.code == 2
    assert "onlyhere" in capsys.readouterr().err


def _crashing_python(tmp_path: Path) -> Path:
    """An interpreter that answers the probe and times one thread, but is
    killed as soon as it starts measuring."""
    return _fake_python(
        tmp_path,
        f'if [ "$1" = "-m" ] && [ "$2" = "gilfree" ]; then\n'
        f"  exec {PY} -c 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'\n"
        f'fi\nexec {PY} "$@"\n',
        name="python-crashing",
    )


def test_a_build_that_crashes_fails_its_cells_and_keeps_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crashing = _crashing_python(tmp_path)
    saved = tmp_path / "run.jsonl"
    args = ["run", "-k", "python", "-b", "threads,processes", *QUICK, "--json", str(saved)]
    code = main([*args, "--python", PY, "--python", f"CRASH=1 {crashing}"])
    assert code == 1
    run = load(str(saved))
    ok = [r for r in run.results if not r.context.settings]
    lost = [r for r in run.results if r.context.settings == {"CRASH": "1"}]
    assert [r.status for r in ok] == ["ok", "ok"]
    assert [(r.backend, r.status) for r in lost] == [("threads", "failed"), ("processes", "failed")]
    assert "was killed by signal SIGKILL" in lost[0].reason
    assert "failed" in capsys.readouterr().out


def test_ctrl_c_stops_every_build_and_leaves_no_process(tmp_path: Path) -> None:
    saved = tmp_path / "run.jsonl"
    # A short one-thread timing comes first (no calibration: n is given), so
    # that the first build is measuring well within the wait below; many
    # cells after it, so that it is still measuring when Ctrl-C comes.
    cmd = [PY, "-m", "gilfree", "sweep", "-k", "python", "-b", "threads,processes"]
    cmd += ["-w", "1,2,3,4", "-n", "10**6", "--rounds", "3", "--precision", "off"]
    cmd += ["--max-time", "600", "--no-progress", *BOTH, "--json", str(saved)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until the first build measures
        seen |= _children(proc.pid)
        if any("-m gilfree " in _cmdline(p) for p in seen):
            break
        time.sleep(0.1)
    assert any("-m gilfree " in _cmdline(p) for p in seen), "no build started measuring"
    time.sleep(0.5)  # into its first cells
    seen |= _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert _gone(seen), "a child outlived gilfree"
    assert load(str(saved)).status == "interrupted"


def _gone(pids: set[int], within_s: float = 5.0) -> bool:
    """Whether every one of ``pids`` has exited within ``within_s`` (a child
    killed by its parent's clean-up, or by its own watch on the parent, needs
    a moment to be reaped)."""
    deadline = time.monotonic() + within_s
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pids)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_python_does_not_apply_to_the_article(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["demo", "--article", "--python", PY])
    assert info.value.code == 2
    assert "--python does not apply to --article" in capsys.readouterr().err


def test_a_saved_multi_build_run_reads_back_with_its_builds(
    two_builds: tuple[str, Path, Path],
) -> None:
    _, _, log = two_builds
    lines = [json.loads(ln) for ln in log.read_text().splitlines()]
    cells = [ln for ln in lines if ln["record"] == "cell"]
    other = [c for c in cells if c["context"]["settings"] == {"GILFREE_BUILD_TEST": "2"}]
    assert len(cells) == 4 and len(other) == 2
    first = build_label(load(str(log)).results[0].context)
    assert all(c["thread_cost"]["against"] == first for c in other)


# ------------------------------------------------------------- the report, from chosen results


def _on(result, python: str, free: bool = False, gil: bool = True, cost=None, **settings: str):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    ctx = replace(
        result.context, python=python, free_threaded_build=free, gil_enabled=gil, settings=settings
    )
    return replace(result, context=ctx, thread_cost=cost)


def _three_builds():  # type: ignore[no-untyped-def]
    from test_measure import fake

    slower = ThreadCost("3.13.0", 1.3, 1.25, 1.35, 9)
    same = ThreadCost("3.13.0", 1.01, 0.98, 1.04, 9)
    return [
        _on(fake("python", "threads", [1.0] * 7, contention=0.9, busy=1.0), "3.13.0"),
        _on(
            fake("python", "threads", [1.9] * 7, gil_enabled=False, busy=1.9),
            "3.13.5",
            free=True,
            gil=False,
            cost=slower,
        ),
        _on(
            fake("python", "threads", [1.0] * 7, contention=0.9, busy=1.0),
            "3.13.5",
            free=True,
            cost=same,
            PYTHON_GIL="1",
        ),
    ]


def test_the_table_gains_a_build_column_only_with_several_builds() -> None:
    from rich.console import Console

    from gilfree.report import table

    results = _three_builds()
    console = Console(width=120, record=True)
    console.print(table(results))
    text = console.export_text()
    assert " build " in text and "3.13.5t PYTHON_GIL=1" in text and "3.13.5t " in text
    console = Console(width=120, record=True)
    console.print(table(results[:1]))
    assert " build " not in console.export_text()


def test_one_verdict_per_kernel_across_builds_with_one_threads_cost() -> None:
    line = across_builds(_three_builds(), "python")
    assert line.startswith("threads 1.00x [1.00, 1.00] on 3.13.0 (")
    assert "1.90x [1.90, 1.90] on 3.13.5t (no GIL), where one thread runs 1.30x slower" in line
    assert "[1.25, 1.35] than on 3.13.0" in line
    assert "on 3.13.5t PYTHON_GIL=1 (" in line and "runs as fast as on 3.13.0 (1.01x" in line


def test_a_faster_build_is_called_faster() -> None:
    from gilfree.report import _cost_words

    assert _cost_words(ThreadCost("3.11.7", 0.5, 0.45, 0.55, 5)).startswith(
        "runs 2.00x faster [1.82, 2.22] than on 3.11.7"
    )


def test_a_difference_within_two_percent_reads_as_fast() -> None:
    from gilfree.report import _cost_words

    assert _cost_words(ThreadCost("3.11.7", 1.004, 1.001, 1.01, 9)).startswith(
        "runs as fast as on 3.11.7 (1.00x [1.00, 1.01])"
    )
    assert "slower" in _cost_words(ThreadCost("3.11.7", 1.03, 1.021, 1.04, 9))


def test_the_classic_experiment_has_a_line_per_build() -> None:
    from gilfree.report import classic_summary

    lines = classic_summary(_three_builds())
    assert [ln.split(":", 1)[0] for ln in lines] == ["3.13.0", "3.13.5t", "3.13.5t PYTHON_GIL=1"]
    assert "2 threads 1.90x" in lines[1]


def test_csv_and_markdown_name_the_build(tmp_path: Path) -> None:
    import csv
    import io

    from gilfree.formats import render

    results = _three_builds()
    rows = list(csv.DictReader(io.StringIO(render("csv", results))))
    assert [r["build"] for r in rows] == ["3.13.0", "3.13.5t", "3.13.5t PYTHON_GIL=1"]
    markdown = render("markdown", results, title="t")
    assert "| kernel | build |" in markdown and "| python | 3.13.5t PYTHON_GIL=1 |" in markdown
    html = render("html", results, title="t")
    assert "<th>build</th>" in html and "3.13.5t PYTHON_GIL=1" in html


def test_compare_matches_the_cells_of_several_builds_by_build() -> None:
    from gilfree.compare import compare

    before = _three_builds()
    pairs, only_before, only_after = compare(before, list(reversed(before)))
    assert not only_before and not only_after
    assert (
        all(build_label(p.before.context) == build_label(p.after.context) for p in pairs)
        and len(pairs) == 3
    )


def test_demo_puts_the_classic_experiment_of_each_build_side_by_side(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["demo", *QUICK, "--rounds", "1", "--max-time", "4", *BOTH])
    out = " ".join(capsys.readouterr().out.split())
    version = probe(parse_build(PY)).label  # 3.13.5t on a free-threaded build
    assert code == 0
    assert f"{version}: python one thread " in out
    assert f"{version} GILFREE_BUILD_TEST=2: python one thread " in out
    assert f"Python {version} and {version} GILFREE_BUILD_TEST=2" in out


def test_a_killed_gilfree_takes_its_builds_with_it(tmp_path: Path) -> None:
    cmd = [PY, "-m", "gilfree", "sweep", "-k", "python", "-b", "threads", "-w", "1,2,3,4"]
    cmd += ["-n", "10**6", "--rounds", "3", "--precision", "off", "--max-time", "600"]
    cmd += ["--no-progress", *BOTH]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("-m gilfree " in _cmdline(p) for p in seen):
        seen |= _children(proc.pid)
        time.sleep(0.1)
    assert seen, "no build started"
    proc.kill()  # SIGKILL: gilfree runs no clean-up of its own
    proc.wait()
    assert _gone(seen), "a build outlived a killed gilfree"
