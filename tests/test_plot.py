"""`gilfree sweep --plot`: what is drawn, the formats, and the errors that
must come before a long sweep rather than after it."""

from __future__ import annotations

import builtins
import sys
from pathlib import Path
from typing import Any

import pytest

from gilfree import report
from gilfree.cli import main
from gilfree.measure import sweep


@pytest.fixture(scope="module")
def results() -> list[Any]:
    return sweep(
        ["python", "cython-nogil"],
        ["threads", "processes"],
        [1, 2],
        n=200_000,
        repeats=2,
        precision=None,  # two rounds: the plot's lines are under test, not their precision
    )


@pytest.mark.parametrize("ending", [".png", ".svg"])
def test_plot_draws_one_line_per_kernel_and_backend(
    results: list[Any], tmp_path: Path, ending: str
) -> None:
    path = tmp_path / f"speedup{ending}"
    fig = report.plot(results, str(path))
    data = path.read_bytes()
    if ending == ".png":
        assert data.startswith(b"\x89PNG")
    else:
        assert b"<svg" in data[:2000]
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for kernel in ("python", "cython-nogil"):
        for backend in ("threads", "processes"):
            assert f"{kernel} on {backend}" in labels
    assert "ideal (speedup = workers)" in labels
    cpus = results[0].context.cpus_available
    assert f"{cpus} CPUs available" in labels
    title = fig.texts[0].get_text()  # suptitle: machine and Python version
    assert results[0].context.python in title
    assert results[0].context.processor in title


def test_plot_refuses_other_formats_and_empty_results(results: list[Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        report.plot(results, str(tmp_path / "speedup.pdf"))
    with pytest.raises(ValueError, match="nothing to plot"):
        report.plot([r for r in results if not r.ok], str(tmp_path / "x.png"))


def test_without_matplotlib_the_message_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(report.PlotUnavailableError, match=r'pip install "gilfree\[plot\]"'):
        report.require_matplotlib()
    # The command line refuses it before measuring anything.
    with pytest.raises(SystemExit) as info:
        main(["sweep", "--plot", str(tmp_path / "x.png")])
    assert info.value.code == 2
    assert 'pip install "gilfree[plot]"' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("speedup.pdf", "must end in .png or .svg"),
        ("/nonexistent/dir/speedup.png", "does not exist"),
        ("/", "must end in .png or .svg"),
    ],
)
def test_cli_plot_path_errors_come_first(
    path: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["sweep", "--plot", path])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_sweep_writes_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sweep.svg"
    argv = ["sweep", "-k", "cython-nogil", "-b", "threads", "-w", "1,2", "-n", "10**6"]
    code = main([*argv, "--repeats", "1", "--plot", str(path)])
    assert code == 0
    assert b"<svg" in path.read_bytes()[:2000]
    assert "plot written to" in capsys.readouterr().err


def test_a_dollar_in_a_name_is_drawn_as_typed(results: list[Any], tmp_path: Path) -> None:
    # Two $ would start matplotlib's mathematics: the name is drawn as typed.
    from dataclasses import replace

    from matplotlib.cbook import is_math_text

    typed = "cost: $5 to $8"  # two: unescaped, the text between them would be maths
    renamed = [replace(r, kernel=typed) if r.kernel == "python" else r for r in results]
    fig = report.plot(renamed, str(tmp_path / "dollars.svg"))  # drawn: no mathtext error
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    mine = [label for label in labels if "cost:" in label]
    assert mine and all(not is_math_text(label) for label in mine)
    assert f"{typed} on threads" in [label.replace("\\$", "$") for label in mine]
