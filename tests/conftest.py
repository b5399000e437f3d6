from __future__ import annotations

import pytest

from gilfree import KERNELS, Kernel


@pytest.fixture(params=list(KERNELS), ids=list(KERNELS))
def kernel(request: pytest.FixtureRequest) -> Kernel:
    """Every registered kernel: a new entry in the registry is tested automatically."""
    return KERNELS[request.param]


def live_children() -> list[object]:
    """Child processes of this process that are still running."""
    import multiprocessing

    return list(multiprocessing.active_children())


def interpreter_count() -> int:
    """Number of interpreters alive in this process (1 where there are none)."""
    import importlib

    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            return len(importlib.import_module(name).list_all())
        except ImportError:
            continue
    return 1
