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


def mixed_half(n: int) -> int:
    """Holds the GIL half its time, in 50 us sections (the mixed kernel)."""
    return countdown(n, kernel="mixed", gil_share=0.5)


def boom(*args: object, **kwargs: object) -> None:
    raise ValueError(f"boom {args} {kwargs}")


def needs_numpy(n: int) -> float:
    """Imports NumPy when called: fine in the main interpreter and in worker
    processes, refused in an own-GIL subinterpreter."""
    import numpy as np

    return float(np.arange(n).sum())


NOT_CALLABLE = 42


def die_in_worker(how: str) -> None:
    """Dies the way ``how`` says when called in a worker process (one that
    has a multiprocessing parent); returns at once anywhere else, so the
    serial baseline, threads and subinterpreters run it fine."""
    import multiprocessing
    import os
    import signal

    if multiprocessing.parent_process() is None:
        return
    if how == "exit":
        os._exit(3)
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "segfault":  # a crash in native code
        import ctypes
        import faulthandler

        faulthandler.disable()  # the crash is the point: no dump of it

        ctypes.string_at(0)


def blocked_in_c(seconds: float) -> None:
    """Sleeps in one C call: nothing can interrupt it in a thread."""
    time.sleep(seconds)


def ignore_sigterm(seconds: float) -> None:
    """In a worker process, ignores SIGTERM and then sleeps: only SIGKILL
    stops it early. Returns at once anywhere else."""
    import multiprocessing
    import signal

    if multiprocessing.parent_process() is None:
        return
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


def interrupt_in_workers() -> None:
    """Raises KeyboardInterrupt itself in a worker thread or process only:
    the serial baseline (in the main thread) runs fine, the cell fails."""
    import multiprocessing
    import threading

    if (
        threading.current_thread() is not threading.main_thread()
        or multiprocessing.parent_process() is not None
    ):
        raise KeyboardInterrupt("raised by the function, not Ctrl-C")


def exit_now(code: int) -> None:
    """Calls sys.exit(code), wherever it runs."""
    import sys

    sys.exit(code)


def sigint_self() -> None:
    """A real SIGINT to this process, as Ctrl-C sends; then waits for it."""
    import os
    import signal

    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)


def sleep_in_subinterpreters(seconds: float) -> None:
    """Sleeps in one C call in a subinterpreter only (nothing can stop it
    there); returns at once in the main interpreter, so the serial baseline
    runs fine."""
    try:
        import _interpreters as interpreters  # type: ignore[import-not-found]
    except ImportError:
        try:
            import _xxsubinterpreters as interpreters  # type: ignore[import-not-found]
        except ImportError:
            return

    def number(x: object) -> int:
        return int(x[0] if isinstance(x, tuple) else x)  # type: ignore[call-overload]

    if number(interpreters.get_current()) != number(interpreters.get_main()):
        time.sleep(seconds)


def blas_threads_seen() -> None:
    """Records, in BLAS_SEEN, the thread count of every BLAS pool while it runs."""
    import numpy as np
    from threadpoolctl import threadpool_info

    np.ones((64, 64)) @ np.ones((64, 64))  # loads BLAS
    BLAS_SEEN.append([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])
    time.sleep(0.002)


BLAS_SEEN: list[list[int]] = []


def chatty(n: int = 1000) -> int:
    """Prints a line at every call, as a user's function may: the print must
    never land in gilfree's data stream on standard output."""
    print("chatty: a line from the checked function")
    return sum(range(n))


def gen(n: int) -> object:
    """A generator function: calling it runs none of its body."""
    yield from range(n)


async def coro(n: int) -> int:
    """A coroutine function: calling it runs none of its body."""
    return n


def makes_a_generator(n: int) -> object:
    """A plain function whose call returns a generator (its body unrun)."""
    return (i for i in range(n))


def exits(status: int = 0) -> None:
    """Ends the process at once, as a badly behaved function might."""
    import os

    os._exit(status)
