"""The kernel registry: one countdown loop in several forms.

Every kernel counts ``n`` down to zero and returns the number of iterations it
performed, so ``countdown(n, kernel=name) == n`` for every name. They differ in
what they do with the GIL while counting; the registry records it, and the test
suite is generated from the registry, so a new entry is tested automatically.

To add a kernel: write a function ``f(n: int) -> int`` (compiled ones go in
``_countdown.pyx``) and add a :class:`Kernel` to ``_KERNELS`` below.

Two more kernels hold the GIL for a *known* share of their time: ground truth
for :class:`gilfree.GILSampler` and the scaling law. They take that share
(``gil_share``) and the length of their sections (``section_us``), so they are
made on demand by :func:`truth_kernel` rather than listed in :data:`KERNELS`:

- ``mixed``: in sections of about ``section_us`` microseconds, a share
  ``gil_share`` of each counts with the GIL held and the rest without it;
- ``io``: the GIL-free part waits (as a socket read does) instead of counting,
  its waits timed against the clock so that the share holds by construction.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

try:
    from gilfree import _countdown
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "gilfree's compiled module gilfree._countdown is missing or cannot be loaded: "
        "has it been compiled? From a source checkout run `python -m pip install -e .` "
        "(needs a C compiler); otherwise reinstall with `python -m pip install gilfree`. "
        f"The import failed with: {exc}"
    ) from exc

from gilfree import _pykernels
from gilfree._registry import Registry

__all__ = [
    "DEFAULT_GIL_SHARE",
    "DEFAULT_SECTION_US",
    "KERNELS",
    "MAX_N",
    "TRUTH_KERNELS",
    "Cancelled",
    "GILUse",
    "Kernel",
    "cancel_running",
    "check_count",
    "check_share",
    "countdown",
    "truth_kernel",
]

#: The largest ``n`` any kernel accepts: the C kernels count in a signed 64-bit
#: integer, and every kernel takes the same inputs.
MAX_N: int = _countdown.MAX_N

Cancelled = _countdown.Cancelled
cancel_running = _countdown.cancel_running

GILUse = Literal["held", "released", "switched", "between-calls", "share", "unknown"]


def check_count(value: object, name: str = "n", minimum: int = 0, maximum: int = MAX_N) -> int:
    """Validate an integer argument the way every gilfree entry point does.

    ``value`` goes through :func:`operator.index`, so NumPy integers work.
    ``bool`` is refused even though it is an ``int``: ``countdown(True)`` is
    almost certainly a bug.

    Raises
    ------
    TypeError
        ``value`` is not an integer (a float, a string, None, a bool...).
    ValueError
        ``value`` is below ``minimum``.
    OverflowError
        ``value`` is above ``maximum``.
    """
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise TypeError(
            f"{name} must be an integer, not a bool ({value!r}); pass an int such as 10**8"
        )
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        hint = ""
        if isinstance(value, float):
            hint = f" (a float such as {value!r} is not a count: write int(x), or 10**8 for 1e8)"
        elif isinstance(value, str):
            hint = f" (convert it first: int({value!r}))"
        raise TypeError(
            f"{name} must be an integer, not {type(value).__name__}{hint}; "
            "pass an int such as 10**8"
        ) from None
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}")
    if number > maximum:
        raise OverflowError(
            f"{name}={number} is too large: the largest accepted value is {maximum}"
            + (" (2**63 - 1)" if maximum == MAX_N else "")
        )
    return number


@dataclass(frozen=True)
class Kernel:
    """One form of the countdown loop, with what it does to the GIL.

    Calling a kernel validates ``n`` (see :func:`check_count`) and returns the
    number of iterations performed.

    Attributes
    ----------
    name
        Registry name, part of the public API.
    func
        The raw loop ``f(n) -> iterations`` (cancellable ones also take
        ``since``, see :meth:`__call__`); it does not validate ``n``.
    compiled
        True if the loop runs as machine code.
    releases_gil
        True if the GIL is released while the loop counts (other Python
        threads can run in parallel with it).
    gil
        How the GIL is used: ``"held"`` (never released), ``"released"``
        (released for the whole count), ``"switched"`` (held, but the
        interpreter hands it over every switch interval) or
        ``"between-calls"`` (released inside each NumPy call, held between),
        ``"share"`` (held for the known share ``gil_share`` of the time);
        ``"unknown"`` for a user's function (:func:`gilfree.check` measures it;
        ``releases_gil`` is then False, meaning "not promised").
    description
        One line for tables and ``--help``.
    subinterpreters
        Whether the kernel can run in a subinterpreter with its own GIL;
        ``unsupported_reason`` says why not when it cannot.
    cancellable
        Whether :func:`gilfree.cancel_running` stops it (between chunks).
    gil_share
        The share of its time it holds the GIL, where that is known by
        construction (the ``mixed`` and ``io`` kernels); None otherwise.
    """

    name: str
    func: Callable[..., int] = field(repr=False)
    compiled: bool
    releases_gil: bool
    gil: GILUse
    description: str
    subinterpreters: bool = True
    unsupported_reason: str = ""
    cancellable: bool = True
    gil_share: float | None = None

    def __call__(self, n: object, since: int | None = None) -> int:
        """Count ``n`` down; with ``since`` (a cancel generation read before the
        caller started its workers), stop on any cancel made after that read."""
        return self.prepare(n, since)()

    def prepare(self, n: object, since: int | None = None) -> Callable[[], int]:
        """Validate the arguments now and return the bare call.

        Timers stamp around the returned callable, so nothing but the loop
        itself runs inside the timed region.
        """
        count = check_count(n)
        if since is None or not self.cancellable:
            return functools.partial(self.func, count)
        return functools.partial(self.func, count, since)


_KERNELS = [
    Kernel(
        name="python",
        func=_pykernels.countdown_python,
        compiled=False,
        releases_gil=False,
        gil="switched",
        description="while n > 0: n -= 1, interpreted (the classic experiment)",
        # The classic loop is kept as it is: no cancel check inside it.
        cancellable=False,
    ),
    Kernel(
        name="cython-object",
        func=_countdown.countdown_object,
        compiled=True,
        releases_gil=False,
        gil="held",
        description="the same loop compiled by Cython on Python int objects",
    ),
    Kernel(
        name="cython-gil",
        func=_countdown.countdown_gil,
        compiled=True,
        releases_gil=False,
        gil="held",
        description="typed C loop, GIL held throughout",
    ),
    Kernel(
        name="cython-nogil",
        func=_countdown.countdown_nogil,
        compiled=True,
        releases_gil=True,
        gil="released",
        description="typed C loop inside `with nogil:`",
    ),
    Kernel(
        name="numpy",
        func=_pykernels.countdown_numpy,
        compiled=True,
        releases_gil=True,
        gil="between-calls",
        description="int64 array decrements in NumPy ufunc calls (GIL released inside each)",
        subinterpreters=False,
        unsupported_reason="NumPy cannot be imported in a subinterpreter with its own GIL",
    ),
]

#: name -> :class:`Kernel`, in a fixed order (interpreted first, NumPy last).
KERNELS: Registry[Kernel] = Registry("kernel", {k.name: k for k in _KERNELS})

DEFAULT_KERNEL = "cython-nogil"

#: The ground-truth kernels' defaults: half the time with the GIL, in
#: sections of about 50 us.
DEFAULT_GIL_SHARE = 0.5
DEFAULT_SECTION_US = 50.0

#: name -> (raw loop, description) of the kernels with a known GIL share.
TRUTH_KERNELS: Registry[tuple[Callable[..., int], str]] = Registry(
    "ground-truth kernel",
    {
        "mixed": (
            _countdown.countdown_mixed,
            "typed C loop holding the GIL for gil_share of each section, "
            "counting without it the rest",
        ),
        "io": (
            _countdown.countdown_io,
            "typed C loop holding the GIL for gil_share of its time, waiting without it the rest",
        ),
    },
)


def check_share(value: object, name: str = "gil_share") -> float:
    """Validate a share of time: a real number from 0 to 1.

    Raises
    ------
    TypeError
        ``value`` is not a real number (a string, None, a bool...).
    ValueError
        ``value`` is NaN or outside [0, 1].
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a number from 0 to 1, not {type(value).__name__} ({value!r})"
        )
    share = float(value)
    if math.isnan(share) or not 0.0 <= share <= 1.0:
        raise ValueError(f"{name} must be in the range [0, 1] (a share of time), got {value!r}")
    return share


def truth_kernel(
    name: str, gil_share: float = DEFAULT_GIL_SHARE, section_us: float = DEFAULT_SECTION_US
) -> Kernel:
    """A ground-truth kernel (``"mixed"`` or ``"io"``) that holds the GIL for
    ``gil_share`` of its time, in sections of about ``section_us``
    microseconds. Like every kernel it returns the iterations it performed;
    run it on any backend, or give it to :class:`gilfree.GILSampler`'s
    checks.

    >>> k = truth_kernel("mixed", gil_share=0.25)
    >>> k(10**6), k.gil_share
    (1000000, 0.25)
    """
    func, description = TRUTH_KERNELS[name]
    share = check_share(gil_share)
    if isinstance(section_us, bool) or not isinstance(section_us, (int, float)):
        raise TypeError(f"section_us must be a number of microseconds, not {section_us!r}")
    if not 1.0 <= section_us <= 1e6:  # NaN fails too
        raise ValueError(f"section_us must be between 1 and 1e6 microseconds, got {section_us!r}")
    return Kernel(
        name=name,
        func=functools.partial(func, gil_share=share, section_us=float(section_us)),
        compiled=True,
        releases_gil=share < 1.0,
        gil="share",
        description=f"{description} (gil_share={share:g}, sections of {section_us:g} us)",
        gil_share=share,
    )


def get_kernel(kernel: str | Kernel) -> Kernel:
    """Return the :class:`Kernel` for a name (or the kernel itself); the
    ground-truth names give their kernel at the default share."""
    if isinstance(kernel, Kernel):
        return kernel
    if isinstance(kernel, str) and kernel in TRUTH_KERNELS:
        return truth_kernel(kernel)
    return KERNELS[kernel]


def countdown(
    n: Any,
    kernel: str | Kernel = DEFAULT_KERNEL,
    *,
    gil_share: float | None = None,
    section_us: float = DEFAULT_SECTION_US,
) -> int:
    """Count down from ``n`` to zero and return the number of iterations performed.

    Parameters
    ----------
    n
        How many iterations: an integer from 0 to :data:`MAX_N` (NumPy integers
        are accepted).
    kernel
        A name from :data:`KERNELS` (default ``"cython-nogil"``, which releases
        the GIL while counting), ``"mixed"`` or ``"io"`` (see
        :func:`truth_kernel`), or a :class:`Kernel`.
    gil_share
        For ``"mixed"`` and ``"io"`` only: the share of the time the GIL is
        held, from 0 to 1 (default 0.5). Every other kernel refuses it.
    section_us
        For ``"mixed"`` and ``"io"``: the length of their sections in
        microseconds (default 50).

    Returns
    -------
    int
        ``n``: the number of iterations the loop performed.

    Raises
    ------
    TypeError, ValueError, OverflowError
        Bad ``n`` (see :func:`check_count`).
    gilfree.UnknownNameError
        ``kernel`` is not a registered name; the message lists the valid ones.
    KeyboardInterrupt
        Ctrl-C, within about a millisecond, whichever kernel runs.
    Cancelled
        :func:`gilfree.cancel_running` was called while it ran.

    Examples
    --------
    >>> from gilfree import countdown
    >>> countdown(10**6)
    1000000
    >>> countdown(10**5, kernel="python")
    100000
    >>> countdown(10**6, kernel="mixed", gil_share=0.25)
    1000000
    """
    if isinstance(kernel, str) and kernel in TRUTH_KERNELS:
        share = DEFAULT_GIL_SHARE if gil_share is None else gil_share
        return truth_kernel(kernel, share, section_us)(n)
    if gil_share is not None:
        name = kernel.name if isinstance(kernel, Kernel) else kernel
        raise TypeError(
            f"gil_share applies to the ground-truth kernels ({', '.join(TRUTH_KERNELS)}), "
            f"not to {name!r}: its share of the GIL is what it is"
        )
    return get_kernel(kernel)(n)
