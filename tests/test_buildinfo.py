"""`gilfree info`'s build and GIL lines. This machine has no free-threaded
CPython, so the free-threaded answers are simulated (as the issue allows); the
real probe runs on this interpreter too."""

from __future__ import annotations

import sysconfig

import pytest

from gilfree.buildinfo import IMPORTS, GILStatus, describe, gil_status

NUMPY_WARNING = (
    "The global interpreter lock (GIL) has been enabled to load module "
    "'numpy._core._multiarray_umath', which has not declared that it can run safely "
    "without the GIL. To override this behavior and keep the GIL disabled (at your own "
    "risk), run with PYTHON_GIL=0 or -Xgil=0."
)


def steps(*states: tuple[str, bool, list[str]]) -> tuple[dict[str, object], ...]:
    return tuple({"module": m, "gil": g, "warnings": w} for m, g, w in states)


def test_free_threaded_build_with_the_gil_off_says_so() -> None:
    status = GILStatus(True, False, steps(("gilfree", False, []), ("numpy", False, [])))
    assert not status.gil_now and status.causes == []
    assert describe(status) == [
        "build         free-threaded (Py_GIL_DISABLED)",
        "GIL           disabled right now, after importing gilfree and its dependencies",
    ]


def test_the_module_that_re_enabled_the_gil_is_named() -> None:
    status = GILStatus(
        True,
        False,
        (
            *steps(("gilfree", False, []), ("gilfree.measure", False, [])),
            *steps(("numpy", True, [NUMPY_WARNING]), ("rich", True, [])),
            {"module": "distributed", "missing": "No module named 'distributed'"},
        ),
    )
    assert status.gil_now
    (cause,) = status.causes  # numpy turned it on; rich found it on already
    assert cause.startswith("importing numpy enabled it: The global interpreter lock")
    lines = describe(status)
    assert lines[1] == "GIL           enabled right now, though this build starts without it:"
    assert "numpy._core._multiarray_umath" in lines[2]
    assert "PYTHON_GIL=0" in lines[-1]


def test_gilfree_itself_must_not_enable_it() -> None:
    # If gilfree's own import turned the GIL on, the report would name gilfree:
    # the freethreading_compatible directive is what keeps this from happening.
    status = GILStatus(
        True, False, steps(("gilfree", True, ["... module 'gilfree._countdown' ..."]))
    )
    assert status.causes[0].startswith("importing gilfree enabled it")


def test_gil_forced_on_from_the_start() -> None:
    status = GILStatus(True, True, steps(("gilfree", True, [])))
    assert "PYTHON_GIL=1" in describe(status)[1]


def test_a_gil_build_says_so() -> None:
    assert describe(GILStatus(False, True)) == [
        "build         with GIL (Py_GIL_DISABLED not set)",
        "GIL           enabled (always, on this build)",
    ]


def test_the_real_probe_on_this_interpreter() -> None:
    status = gil_status()
    assert status.free_threaded_build == bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    assert [s["module"] for s in status.steps] == list(IMPORTS)
    gilfree_step = status.steps[0]
    assert gilfree_step["module"] == "gilfree" and "gil" in gilfree_step  # imported fine
    if not status.free_threaded_build:
        assert status.gil_now and status.causes == []


def test_info_prints_the_build_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from gilfree.cli import main

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "build         with GIL" in out or "build         free-threaded" in out
    assert "GIL           " in out
