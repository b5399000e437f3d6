"""gilfree: measure where releasing the GIL restores parallelism.

The classic GIL experiment (count down from a big number in one thread, in two
threads, in two processes) as a library: the same countdown loop in several
forms, compiled and interpreted, with and without the GIL, run under serial,
threads, processes and subinterpreters.

>>> from gilfree import countdown, KERNELS
>>> countdown(10**6)                      # compiled, releases the GIL
1000000
>>> countdown(10**5, kernel="python")     # the interpreted loop
100000
>>> sorted(KERNELS)
['cython-gil', 'cython-nogil', 'cython-object', 'numpy', 'python']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gilfree._registry import UnknownNameError
from gilfree._version import __version__

# kernels is the first to touch the compiled module: it turns its absence into
# a clear ImportError.
from gilfree.kernels import KERNELS, MAX_N, Cancelled, Kernel, cancel_running, countdown
from gilfree.meter import GILMeter, GILReading
from gilfree.sampler import GILSampler, SamplerReading

if TYPE_CHECKING:
    from gilfree.backends import BACKENDS, Backend, WorkerError
    from gilfree.checker import CheckReport, check, check_call
    from gilfree.measure import Result, run, sweep
    from gilfree.plan import Plan
    from gilfree.scaling_law import HandoffCost, scaling


__all__ = [
    "BACKENDS",
    "KERNELS",
    "MAX_N",
    "Backend",
    "Cancelled",
    "CheckReport",
    "GILMeter",
    "GILReading",
    "GILSampler",
    "HandoffCost",
    "Kernel",
    "Plan",
    "Result",
    "SamplerReading",
    "UnknownNameError",
    "WorkerError",
    "__version__",
    "cancel_running",
    "check",
    "check_call",
    "countdown",
    "run",
    "scaling",
    "sweep",
]

# The measurement side is imported on first use: worker processes and
# subinterpreters import this package only to reach the kernels, and should not
# pay for multiprocessing, NumPy statistics or rich.
_LAZY = {
    "BACKENDS": "gilfree.backends",
    "Backend": "gilfree.backends",
    "WorkerError": "gilfree.backends",
    "CheckReport": "gilfree.checker",
    "check": "gilfree.checker",
    "check_call": "gilfree.checker",
    "HandoffCost": "gilfree.scaling_law",
    "Plan": "gilfree.plan",
    "Result": "gilfree.measure",
    "run": "gilfree.measure",
    "scaling": "gilfree.scaling_law",
    "sweep": "gilfree.measure",
}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext gilfree``: adds the ``%gilcheck`` / ``%%gilcheck`` magic."""
    from gilfree._magic import register

    register(ipython)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gilfree' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
