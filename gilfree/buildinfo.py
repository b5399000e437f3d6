"""Is there a GIL here, and if it is on in a free-threaded build, who turned it on?

On a free-threaded CPython (3.13t, 3.14t) the GIL starts disabled, but
importing an extension module that has not declared itself free-threading
compatible turns it back on, with a RuntimeWarning naming the module.
gilfree's own compiled module declares itself compatible (the
``freethreading_compatible`` directive), so importing gilfree alone must leave
the GIL off. Its dependencies may not.

:func:`gil_status` answers in a fresh interpreter. It imports gilfree, then
each dependency in turn, and records after each one whether the GIL is enabled
and which warning, if any, said why. A fresh interpreter, because in this one
the imports have already happened and their warnings are gone.
:func:`describe` turns those answers into the lines ``gilfree info`` prints.
The tests feed it simulated answers, since this machine has no free-threaded
build.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IMPORTS", "GILStatus", "describe", "gil_status"]

#: What ``gilfree info`` imports, in order, to see whether any of it turns the
#: GIL back on: gilfree itself, then what its features load.
IMPORTS = ("gilfree", "gilfree.measure", "numpy", "rich", "matplotlib", "distributed")

_PROBE = r"""
import importlib, json, sys, warnings
check = getattr(sys, "_is_gil_enabled", None)
state = lambda: True if check is None else bool(check())
steps = []
before = state()
for name in sys.argv[1:]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importlib.import_module(name)
        except ImportError as exc:
            steps.append({"module": name, "missing": str(exc)})
            continue
    notes = [str(w.message) for w in caught if "GIL" in str(w.message)]
    steps.append({"module": name, "gil": state(), "warnings": notes})
print(json.dumps({"before": before, "steps": steps}))
"""


@dataclass(frozen=True)
class GILStatus:
    """The answers: the build, the GIL state before any import, and after each
    of :data:`IMPORTS` (``steps``: module, gil, warnings; or missing)."""

    free_threaded_build: bool
    gil_before: bool
    steps: tuple[dict[str, Any], ...] = field(default=())

    @property
    def gil_now(self) -> bool:
        """Whether the GIL is enabled once everything is imported."""
        states = [s["gil"] for s in self.steps if "gil" in s]
        return states[-1] if states else self.gil_before

    @property
    def causes(self) -> list[str]:
        """The imports that turned the GIL on, with the warning's words."""
        out = []
        state = self.gil_before
        for s in self.steps:
            if "gil" not in s:
                continue
            if s["gil"] and not state:
                why = "; ".join(s.get("warnings") or []) or "no warning was given"
                out.append(f"importing {s['module']} enabled it: {why}")
            state = s["gil"]
        return out


def gil_status(python: str | None = None, timeout: float = 120.0) -> GILStatus:
    """Ask a fresh interpreter (``python``, default this one) the questions."""
    exe = python or sys.executable
    proc = subprocess.run(
        [exe, "-c", _PROBE, *IMPORTS],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the GIL probe failed in {exe}: {proc.stderr.strip()[-500:]}")
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    build = bool(sysconfig.get_config_var("Py_GIL_DISABLED")) if python is None else None
    if build is None:
        build = _build_of(exe)
    return GILStatus(build, bool(answers["before"]), tuple(answers["steps"]))


def _build_of(exe: str) -> bool:
    code = "import sysconfig; print(bool(sysconfig.get_config_var('Py_GIL_DISABLED')))"
    out = subprocess.run([exe, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.strip() == "True"


def describe(status: GILStatus) -> list[str]:
    """The lines ``gilfree info`` prints about the build and the GIL."""
    if not status.free_threaded_build:
        return [
            "build         with GIL (Py_GIL_DISABLED not set)",
            "GIL           enabled (always, on this build)",
        ]
    lines = ["build         free-threaded (Py_GIL_DISABLED)"]
    if not status.gil_now:
        lines.append(
            "GIL           disabled right now, after importing gilfree and its dependencies"
        )
        return lines
    if status.gil_before:
        lines.append(
            "GIL           enabled before any import: PYTHON_GIL=1 or -X gil=1 turned it on"
        )
        return lines
    lines.append("GIL           enabled right now, though this build starts without it:")
    lines += [f"  {cause}" for cause in status.causes]
    lines.append("  (PYTHON_GIL=0 keeps it off at your own risk; better, upgrade those modules)")
    return lines
