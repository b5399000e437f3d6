"""gilfree: measure where releasing the GIL restores parallelism.

The classic GIL experiment (count down from a big number in one thread, in two
threads, in two processes) as a library: the same countdown loop in several
forms, compiled and interpreted, with and without the GIL.

>>> from gilfree import countdown, KERNELS
>>> countdown(10**6)                      # compiled, releases the GIL
1000000
>>> countdown(10**5, kernel="python")     # the interpreted loop
100000
>>> sorted(KERNELS)
['cython-gil', 'cython-nogil', 'cython-object', 'numpy', 'python']
"""

# kernels comes first: it turns a missing compiled module into a clear ImportError.
from gilfree._registry import UnknownNameError
from gilfree.kernels import KERNELS, MAX_N, Cancelled, Kernel, cancel_running, countdown

__version__ = "0.1.0"

__all__ = [
    "KERNELS",
    "MAX_N",
    "Cancelled",
    "Kernel",
    "UnknownNameError",
    "__version__",
    "cancel_running",
    "countdown",
]
