"""Functions for the ``check`` tests, in an importable module so that worker
processes and subinterpreters can load them by name, as a user's would be."""

from __future__ import annotations

import time

from gilfree import countdown


def spin(n: int) -> int:
    """Pure Python: holds the GIL (GIL-bound)."""
    while n > 0:
        n -= 1
    return n


def nap(seconds: float) -> None:
    """time.sleep releases the GIL: threads help."""
    time.sleep(seconds)


def count_nogil(n: int, kernel: str = "cython-nogil") -> int:
    return countdown(n, kernel)


def boom(*args: object, **kwargs: object) -> None:
    raise ValueError(f"boom {args} {kwargs}")


def needs_numpy(n: int) -> float:
    """Imports NumPy when called: fine in the main interpreter and in worker
    processes, refused in an own-GIL subinterpreter."""
    import numpy as np

    return float(np.arange(n).sum())


NOT_CALLABLE = 42
