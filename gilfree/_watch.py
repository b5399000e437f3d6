"""Stopping workers: Ctrl-C and a run's deadline, seen without the GIL.

A backend waits for its workers inside ``with Watch(deadline, on_fire):``.
A helper thread waits in :func:`gilfree._countdown.watch`, in C, without the
GIL, for the deadline or for SIGINT (through :func:`signal.set_wakeup_fd`,
which CPython's C-level handler writes to). When either comes it bumps the
cancel generation at once, so compiled kernels stop within a chunk even when
one of them holds the GIL and the main thread cannot run Python; then, with
the GIL, it calls ``on_fire`` (which stops interpreted loops, see
:meth:`Running.stop`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from gilfree._countdown import (
    WATCH_DEADLINE,
    WATCH_INTERRUPT,
    Cancelled,
    raise_in_thread,
    watch,
)
from gilfree._startstop import StartStop

Outcome = Literal["deadline", "interrupt"]

#: How long a stopped worker may take to return before it is given up on.
STOP_GRACE_S = 5.0


class Running:
    """The threads now inside a kernel call, which :meth:`stop` interrupts.

    How loops that check no cancel generation (the interpreted kernel, a
    user's function) are stopped: :meth:`stop` raises :class:`Cancelled` in
    each at its next bytecode. A thread that leaves :meth:`kernel` withdraws a
    request that came too late, and a thread that enters it after
    :meth:`stop` is refused at once, so no loop escapes a stop by starting
    just after it.

    An exception raised in a thread from outside lands in whatever Python code
    that thread runs next, a weakref callback or a ``__del__`` included, where
    it cannot propagate and is reported as unraisable. So kernels that stop
    through the cancel generation (the compiled ones) are never sent one:
    they enter with ``kernel(interrupt=False)``, and the exception is kept
    for the loops that have no other way to stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idents: set[int] = set()
        self._stopped = False

    @contextlib.contextmanager
    def kernel(self, interrupt: bool = True) -> Iterator[None]:
        """Run the block as a kernel call that :meth:`stop` interrupts;
        ``interrupt=False`` for a kernel the cancel generation stops, which
        the block then runs untouched."""
        if not interrupt:
            yield
            return
        ident = threading.get_ident()
        with self._lock:
            if self._stopped:
                raise Cancelled()
            self._idents.add(ident)
        try:
            yield
        finally:
            with self._lock:
                self._idents.discard(ident)
                raise_in_thread(ident, None)

    def stop(self) -> None:
        """Raise :class:`Cancelled` in every thread now in :meth:`kernel`
        (the caller's own excepted), once: a second stop (the deadline, then
        Ctrl-C) must not land in a thread already unwinding from the first."""
        with self._lock:
            self._stopped = True
            me = threading.get_ident()
            for ident in self._idents - {me}:
                raise_in_thread(ident, Cancelled)
            self._idents &= {me}


def join_all(threads: Iterable[threading.Thread], grace: float = STOP_GRACE_S) -> list[str]:
    """Join ``threads`` within ``grace`` seconds in all; the names of those
    still running after it (code blocked in C that nothing can interrupt)."""
    end = time.monotonic() + grace
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


class Watch(StartStop):
    """Watches one run for its deadline (``time.monotonic()`` seconds, or
    None) and for Ctrl-C. After the ``with`` block, :attr:`outcome` says what
    fired, if anything. ``on_fire(outcome)`` runs in the helper thread, with
    the GIL, once, and never after the block has ended."""

    def __init__(
        self,
        deadline: float | None,
        on_fire: Callable[[Outcome], None] | None = None,
        signals: bool = True,
    ) -> None:
        self.deadline = deadline
        self.on_fire = on_fire
        self.signals = signals
        self.outcome: Outcome | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._fds: list[int] = []
        self._old_wakeup: int | None = None

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed (the helper thread may not have
        had the GIL yet to record it: a kernel holding the GIL saw the cancel
        first)."""
        return self.outcome == "deadline" or (
            self.deadline is not None and time.monotonic() >= self.deadline
        )

    def start(self) -> Watch:
        """Start watching (``with Watch(...)`` calls it)."""
        wake = forward = -1
        if self.signals and _can_watch_sigint():
            wake_r, wake_w = os.pipe()
            self._fds += [wake_r, wake_w]
            os.set_blocking(wake_r, False)
            os.set_blocking(wake_w, False)
            try:
                self._old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
            except ValueError:  # not the main thread of the main interpreter
                self._old_wakeup = None
            else:
                wake, forward = wake_r, self._old_wakeup
        if wake < 0 and self.deadline is None:
            return self  # nothing to watch for
        stop_r, self._stop_w = os.pipe()
        self._fds += [stop_r, self._stop_w]
        seconds = -1.0 if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        self._thread = threading.Thread(
            target=self._wait, args=(stop_r, seconds, wake, forward), name="gilfree-watch"
        )
        self._thread.daemon = True
        try:
            self._thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, stop_fd: int, seconds: float, wake_fd: int, forward_fd: int) -> None:
        seen = watch(stop_fd, seconds, wake_fd, forward_fd)
        if seen not in (WATCH_DEADLINE, WATCH_INTERRUPT):
            return
        with self._lock:
            if self._closed:
                return
            self.outcome = "deadline" if seen == WATCH_DEADLINE else "interrupt"
            if self.on_fire is not None:
                self.on_fire(self.outcome)

    def stop(self) -> None:
        """Stop watching; ``on_fire`` never runs after this returns."""
        with self._lock:
            self._closed = True
        if self._thread is not None:
            with contextlib.suppress(OSError):
                os.write(self._stop_w, b"x")
            self._thread.join()
        if self._old_wakeup is not None:
            signal.set_wakeup_fd(self._old_wakeup)
            self._old_wakeup = None
        for fd in self._fds:
            os.close(fd)
        self._fds = []


@functools.cache
def in_main_interpreter() -> bool:
    """Whether this code runs in the main interpreter (not a subinterpreter).

    Signals belong to the main interpreter. On CPython 3.12, a subinterpreter
    with its own GIL that merely reads the SIGINT handler
    (``signal.getsignal``) takes a reference to the main interpreter's object
    under another GIL, and the process can die of a double free; so nothing
    here touches signals outside the main interpreter. Cached per
    interpreter: each imports this module afresh."""
    for name in ("_interpreters", "_xxsubinterpreters"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return bool(module.get_current() == module.get_main())
    return True  # no subinterpreters on this Python


def _can_watch_sigint() -> bool:
    """Ctrl-C is worth watching when it raises KeyboardInterrupt (Python's
    default handler, or :func:`counting_sigints`') in the main thread of the
    main interpreter."""
    if not in_main_interpreter() or threading.current_thread() is not threading.main_thread():
        return False
    try:
        return signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _count_sigint)
    except ValueError:
        return False


# ------------------------------------------------------------ real Ctrl-C, counted

_sigints = 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be (the command line's handler
    raises it), so a terminated run stops its workers, prints the cells
    measured so far and ends its JSON log ``interrupted``, exactly as Ctrl-C
    does (exit status 143). It comes from a signal, so :func:`is_ctrl_c`
    never takes it for a user's function raising KeyboardInterrupt."""


def _count_sigint(signum: int, frame: object) -> None:
    global _sigints
    _sigints += 1
    signal.default_int_handler(signum, frame)  # type: ignore[arg-type]


@contextlib.contextmanager
def counting_sigints() -> Iterator[None]:
    """While the block runs, count the SIGINTs that reach this process
    (Ctrl-C raises KeyboardInterrupt as before). Python runs the handler in
    the main thread before the exception is raised, so code that catches a
    KeyboardInterrupt can tell a real Ctrl-C (the count moved,
    :func:`sigint_count`) from one that a user's function raised itself.
    Outside the main thread, or where another handler is set, it does nothing."""
    try:
        if (
            not in_main_interpreter()
            or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        ):
            yield
            return
        previous = signal.signal(signal.SIGINT, _count_sigint)
    except ValueError:  # not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sigint_count() -> int | None:
    """SIGINTs counted so far, or None where they are not being counted (and
    always in a subinterpreter, see :func:`in_main_interpreter`)."""
    if not in_main_interpreter():
        return None
    try:
        counting = signal.getsignal(signal.SIGINT) is _count_sigint
    except ValueError:
        return None
    return _sigints if counting else None


def is_ctrl_c(exc: BaseException, count_before: int | None) -> bool:
    """Whether ``exc``, caught in this thread, may be a real Ctrl-C: a
    KeyboardInterrupt in the main thread, unless SIGINTs are counted and none
    came since ``count_before``; a :class:`Terminated` always is a signal.
    Another thread never receives one: there
    a KeyboardInterrupt was raised by the code itself."""
    if not isinstance(exc, KeyboardInterrupt):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if isinstance(exc, Terminated):  # raised by the SIGTERM handler, never by user code
        return True
    return count_before is None or sigint_count() != count_before
