"""The interpreted and NumPy countdown kernels.

Kept in a plain Python module on purpose: ``countdown_python`` must run in the
interpreter's eval loop, exactly as in the classic GIL experiment. NumPy is
imported lazily so that gilfree stays importable where NumPy is not (NumPy
does not support subinterpreters with their own GIL).
"""

from __future__ import annotations

from gilfree import _countdown

#: Elements per NumPy array (512 KiB of int64: large enough that per-call
#: overhead is small, small enough to stay in cache).
NUMPY_LANES = 1 << 16
#: Ufunc calls between two cancel checks (about a millisecond of work).
_NUMPY_CHECK_EVERY = 64


def countdown_python(n: int) -> int:
    """``while n > 0: n -= 1``, interpreted: the loop of the classic experiment."""
    start = n
    while n > 0:
        n -= 1
    return start - n


def countdown_numpy(n: int, since: int = -1) -> int:
    """Count down with NumPy: ``n`` element decrements spread over ufunc calls.

    ``n`` is split across up to ``NUMPY_LANES`` lanes of an int64 array; each
    ``np.subtract(lanes, 1, out=lanes)`` call decrements every lane once with
    the GIL released in its inner loop. The count returned is the drop of the
    array's sum, so it reports decrements that really happened. ``since`` is
    the cancel generation to compare against (see ``gilfree._countdown``).
    """
    import numpy as np

    if n <= 0:
        return 0
    width = min(n, NUMPY_LANES)
    rounds, extra = divmod(n, width)
    lanes = np.full(width, rounds, dtype=np.int64)
    lanes[:extra] += 1
    before = int(lanes.sum(dtype=np.int64))
    generation = _countdown.cancel_generation() if since < 0 else since
    for done in range(rounds):
        np.subtract(lanes, 1, out=lanes)
        if done % _NUMPY_CHECK_EVERY == 0 and _countdown.cancel_generation() != generation:
            raise _countdown.Cancelled(before - int(lanes.sum(dtype=np.int64)))
    if extra:
        head = lanes[:extra]
        np.subtract(head, 1, out=head)
    return before - int(lanes.sum(dtype=np.int64))
