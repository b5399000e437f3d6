"""One line describing where a figure was measured (for tables and plots)."""

from __future__ import annotations

from gilfree.measure import context


def describe() -> str:
    c = context()
    gil = "GIL enabled" if c.gil_enabled else "GIL disabled"
    cpus = c.cpus_available
    python = f"{c.implementation} {c.python} ({gil})"
    return f"{c.processor}, {cpus} CPUs available; {python}; {c.platform}"
