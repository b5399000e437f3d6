# cython: language_level=3
# cython: freethreading_compatible=True
# cython: subinterpreters_compatible=own_gil
# cython: boundscheck=False, wraparound=False, cdivision=True, embedsignature=True
# cython: autotestdict=False
"""Compiled countdown kernels.

Each kernel counts ``n`` down to zero and returns the number of iterations it
performed. They differ only in what they do with the GIL:

``countdown_object``
    ``while n > 0: n -= 1`` compiled by Cython with ``n`` a Python int object.
    Compiled code never enters the interpreter's eval loop, so the GIL is held
    throughout.
``countdown_gil``
    A typed C loop that holds the GIL from start to finish.
``countdown_nogil``
    The same C loop inside ``with nogil:``.

Honesty: a C compiler deletes ``while (n > 0) n -= 1;`` (it knows the answer is
zero). ``gilfree_spin`` keeps the loop alive with an empty inline-asm statement
that takes the counter as an in/out register operand, so the optimizer must
assume every intermediate value is observed. The amount subtracted is itself
hidden behind such a barrier, so each iteration is one ``sub reg, reg``: a true
one-cycle dependency. (With ``sub reg, 1`` some cores fold the immediate in the
register renamer and retire almost two iterations per cycle.)

Interruptibility: long loops are cut into chunks of ``CHUNK`` iterations (about
one millisecond). Between chunks a kernel looks at the process-wide cancel
generation (see :func:`cancel_running`) and, in the main thread, runs
``PyErr_CheckSignals()`` so that Ctrl-C raises ``KeyboardInterrupt`` promptly.
A kernel stops when the generation differs from ``since``: the value a caller
read before starting its workers (default: the value when the kernel starts).
Passing it closes the race where one worker fails and cancels before another
has even entered its kernel.
"""

from cpython.exc cimport PyErr_CheckSignals
from cpython.ref cimport PyObject
from libc.errno cimport EINTR, errno
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, nanosleep, timespec
from posix.unistd cimport read, write

import threading

cdef extern from *:
    """
    /* How this module was built, read back by build_info(). */
    #if defined(__clang__)
      #define GILFREE_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
      #define GILFREE_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
      #define GILFREE_STR2(x) #x
      #define GILFREE_STR(x) GILFREE_STR2(x)
      #define GILFREE_COMPILER "MSVC " GILFREE_STR(_MSC_FULL_VER)
    #else
      #define GILFREE_COMPILER "unknown"
    #endif
    static const char *gilfree_compiler(void) { return GILFREE_COMPILER; }
    static long gilfree_cython_hex(void) { return (long)CYTHON_HEX_VERSION; }
    """
    const char *gilfree_compiler() noexcept
    long gilfree_cython_hex() noexcept

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
      /* The counter goes through a register the optimizer cannot see into. */
      #define GILFREE_OPAQUE(x) __asm__ volatile("" : "+r"(x))
      #define GILFREE_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
      #define GILFREE_BUMP(p) __atomic_add_fetch((p), 1, __ATOMIC_RELAXED)
    #else
      /* Portable fallback: a volatile round trip the compiler may not elide. */
      #define GILFREE_OPAQUE(x) do { volatile long long gilfree_v_ = (x); (x) = gilfree_v_; } while (0)
      #define GILFREE_LOAD(p) (*(volatile int *)(p))
      #define GILFREE_BUMP(p) (++*(volatile int *)(p))
    #endif

    /* Count n down to zero; return what is left (0 unless n was negative). */
    static long long gilfree_spin(long long n) {
        long long one = 1;
        GILFREE_OPAQUE(one);
        while (n > 0) {
            n -= one;
            GILFREE_OPAQUE(n);
        }
        return n;
    }

    /* Process-wide (shared by all threads and subinterpreters): bumping it
       asks every countdown in flight to stop at its next chunk boundary. */
    static int gilfree_cancel_gen = 0;
    static int gilfree_generation(void) { return GILFREE_LOAD(&gilfree_cancel_gen); }
    static void gilfree_cancel(void) { (void)GILFREE_BUMP(&gilfree_cancel_gen); }
    """
    long long gilfree_spin(long long n) noexcept nogil
    int gilfree_generation() noexcept nogil
    void gilfree_cancel() noexcept nogil

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, unsigned long nfds, int timeout)
    enum:
        POLLIN

cdef extern from "Python.h":
    int PyThreadState_SetAsyncExc(unsigned long id, PyObject *exc)

#: Iterations between two signal/cancel checks in the typed C kernels (~1 ms).
CHUNK = 1 << 22
#: Iterations between two checks in the Python-object kernel (~1 ms).
OBJECT_CHUNK = 1 << 16
#: The largest ``n`` the C kernels accept (``LLONG_MAX``).
MAX_N = 9223372036854775807

cdef long long _CHUNK = CHUNK
cdef long long _OBJECT_CHUNK = OBJECT_CHUNK


class Cancelled(RuntimeError):
    """A countdown stopped early because :func:`cancel_running` was called.

    ``performed`` holds the number of iterations done before it stopped.
    """

    def __init__(self, performed=None):
        if performed is None:  # raised in a thread from outside: count unknown
            super().__init__("countdown cancelled")
        else:
            super().__init__(f"countdown cancelled after {performed} iterations")
        self.performed = performed


def build_info():
    """How this compiled module was built: ``{"cython": "3.3.1", "compiler":
    "gcc 12.2.0"}`` (the Cython that generated its C, and the C compiler's own
    version string), read from constants compiled into it."""
    cdef long h = gilfree_cython_hex()
    return {
        "cython": f"{(h >> 24) & 0xff}.{(h >> 16) & 0xff}.{(h >> 8) & 0xff}",
        "compiler": gilfree_compiler().decode("utf-8", "replace"),
    }


def cancel_running():
    """Ask every countdown now running in this process to stop.

    Kernels check between chunks (about once a millisecond) and raise
    :class:`Cancelled`. Countdowns started afterwards are not affected.
    """
    gilfree_cancel()


def cancel_after(double seconds):
    """Sleep ``seconds`` without holding the GIL, then :func:`cancel_running`.

    A watchdog for kernels that never release the GIL: while ``cython-gil``
    counts in one thread, no other Python thread of the interpreter can run to
    call :func:`cancel_running`, but a thread already waiting in here can.
    Blocks the calling thread; run it in a helper thread.
    """
    if not seconds >= 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    cdef timespec delay
    delay.tv_sec = <long>seconds
    delay.tv_nsec = <long>((seconds - delay.tv_sec) * 1e9)
    with nogil:
        nanosleep(&delay, NULL)
        gilfree_cancel()


def cancel_generation():
    """The current cancel generation (a counter bumped by :func:`cancel_running`)."""
    return gilfree_generation()


cdef inline bint _in_main_thread():
    # Only the main thread of the main interpreter receives signals; elsewhere
    # PyErr_CheckSignals() is a no-op and retaking the GIL would only add waits.
    return threading.current_thread() is threading.main_thread()


def countdown_nogil(long long n, int since=-1):
    """Typed C countdown that releases the GIL while counting."""
    cdef long long left = n
    cdef long long step
    cdef int gen = gilfree_generation() if since < 0 else since
    cdef bint cancelled = False
    cdef bint check_signals = n > _CHUNK and _in_main_thread()
    with nogil:
        while left > 0:
            step = left if left < _CHUNK else _CHUNK
            left -= step - gilfree_spin(step)
            if left <= 0:
                break
            if gilfree_generation() != gen:
                cancelled = True
                break
            if check_signals:
                with gil:
                    # Declared ``except -1``: a KeyboardInterrupt propagates.
                    PyErr_CheckSignals()
    if cancelled:
        raise Cancelled(n - left)
    return n - left


def countdown_gil(long long n, int since=-1):
    """Typed C countdown that holds the GIL from start to finish."""
    cdef long long left = n
    cdef long long step
    cdef int gen = gilfree_generation() if since < 0 else since
    while left > 0:
        step = left if left < _CHUNK else _CHUNK
        left -= step - gilfree_spin(step)
        if left <= 0:
            break
        if gilfree_generation() != gen:
            raise Cancelled(n - left)
        # Runs the Python-level signal handlers (main thread only) without
        # ever releasing the GIL.
        PyErr_CheckSignals()
    return n - left


def countdown_object(n, int since=-1):
    """``while n > 0: n -= 1`` compiled by Cython on Python int objects."""
    start = n
    cdef long long budget = _OBJECT_CHUNK
    cdef int gen = gilfree_generation() if since < 0 else since
    while n > 0:
        n -= 1
        budget -= 1
        if budget == 0:
            budget = _OBJECT_CHUNK
            if gilfree_generation() != gen:
                raise Cancelled(start - n)
            PyErr_CheckSignals()
    return start - n


def spin_unchecked(long long n):
    """Reference loop for benchmarks: one nogil block, no signal or cancel checks.

    Not interruptible; used to measure what the checks in
    :func:`countdown_nogil` cost.
    """
    cdef long long left
    with nogil:
        left = gilfree_spin(n)
    return n - left if n > 0 else 0


cdef inline long long _monotonic_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000LL + ts.tv_nsec


def gil_probe(long long interval_ns, list state):
    """The measuring loop of :class:`gilfree.GILMeter`; runs in the calling thread.

    Releases the GIL, sleeps ``interval_ns``, takes the GIL back and records
    how long taking it took, until ``state[0]`` is true. ``state`` is
    ``[stop, samples, waited_ns, probed_ns, max_wait_ns]``, cumulative; it is
    written only while the GIL is held, in one slice assignment, so a reader
    (who holds the GIL too) always sees a consistent set.

    A plain function and a list, not a ``cdef class``: with Cython 3.3's
    module-state mode an extension type in this module made a second
    interpreter's import abort with ``free(): invalid pointer`` (the same
    family as Cython issues #8006 and #8007: per-type state kept in process
    globals).
    """
    if interval_ns <= 0:
        raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
    if len(state) != 5:
        raise ValueError("state must be [stop, samples, waited_ns, probed_ns, max_wait_ns]")
    cdef timespec delay
    cdef long long t0, t1, t2
    cdef long long samples = state[1], waited = state[2], probed = state[3], longest = state[4]
    delay.tv_sec = interval_ns // 1000000000
    delay.tv_nsec = interval_ns % 1000000000
    while not state[0]:
        with nogil:
            t0 = _monotonic_ns()
            nanosleep(&delay, NULL)
            t1 = _monotonic_ns()
        # Leaving the nogil block waited for the GIL: t2 - t1 is that wait.
        t2 = _monotonic_ns()
        samples += 1
        waited += t2 - t1
        probed += t2 - t0
        if t2 - t1 > longest:
            longest = t2 - t1
        state[1:5] = [samples, waited, probed, longest]


def raise_in_thread(unsigned long ident, exc_type):
    """Raise ``exc_type`` in the thread ``ident`` of this interpreter the next
    time it runs Python code (``None``: withdraw a pending one).

    How interpreted loops, which check no cancel generation, are stopped: the
    exception arrives at the loop's next bytecode. Code blocked in C (a
    ``time.sleep``, a compiled kernel) sees it only when it returns to Python.
    Returns the number of threads it was set for (0: no such thread).
    """
    if exc_type is None:
        return PyThreadState_SetAsyncExc(ident, NULL)
    if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
        raise TypeError(f"exc_type must be an exception class or None, not {exc_type!r}")
    return PyThreadState_SetAsyncExc(ident, <PyObject *>exc_type)


cdef long long _MAX_POLL_NS = 1000000000000  # poll() takes int milliseconds

cdef enum:
    _STOPPED = 0
    _DEADLINE = 1
    _INTERRUPT = 2
    _SIGINT = 2  # the signal number, the same on every POSIX system

#: What :func:`watch` saw: a stop request, the deadline, or SIGINT.
WATCH_STOPPED = _STOPPED
WATCH_DEADLINE = _DEADLINE
WATCH_INTERRUPT = _INTERRUPT


def watch(int stop_fd, double seconds=-1.0, int wake_fd=-1, int forward_fd=-1):
    """Wait without the GIL until a byte arrives on ``stop_fd``, ``seconds``
    pass (negative: no deadline), or SIGINT is signalled on ``wake_fd``.

    ``wake_fd`` is the read end of the pipe given to
    :func:`signal.set_wakeup_fd`: CPython's C-level handler writes each
    signal's number there without needing the GIL. Bytes read from it are
    copied to ``forward_fd`` (the previous wakeup fd, or -1).

    On the deadline or SIGINT it calls :func:`cancel_running` at once, still
    without the GIL. That is the point: a kernel that holds the GIL
    (``cython-gil`` in a worker thread) keeps the main thread from running
    Python, so neither Ctrl-C's handler nor a Python-level timer could stop
    it; the cancel generation does, within a chunk (about 1 ms).

    Returns :data:`WATCH_STOPPED`, :data:`WATCH_DEADLINE` or :data:`WATCH_INTERRUPT`.
    """
    cdef pollfd fds[2]
    cdef unsigned long nfds = 2 if wake_fd >= 0 else 1
    cdef long long deadline = -1
    cdef long long left
    cdef int timeout_ms, rc, i
    cdef int outcome = -1
    cdef Py_ssize_t got
    cdef unsigned char buf[64]
    if seconds >= 0:
        deadline = _monotonic_ns() + <long long>(seconds * 1e9)
    with nogil:
        while outcome < 0:
            timeout_ms = -1
            if deadline >= 0:
                left = deadline - _monotonic_ns()
                if left <= 0:
                    outcome = _DEADLINE
                    break
                if left > _MAX_POLL_NS:
                    left = _MAX_POLL_NS
                timeout_ms = <int>(left // 1000000 + 1)
            fds[0].fd = stop_fd
            fds[0].events = POLLIN
            fds[0].revents = 0
            fds[1].fd = wake_fd
            fds[1].events = POLLIN
            fds[1].revents = 0
            rc = poll(fds, nfds, timeout_ms)
            if rc < 0:
                if errno == EINTR:
                    continue
                outcome = _STOPPED  # a closed fd: nothing more to watch
                break
            if fds[0].revents:
                outcome = _STOPPED
                break
            if nfds == 2 and fds[1].revents:
                got = read(wake_fd, buf, 64)
                if got > 0:
                    if forward_fd >= 0:
                        write(forward_fd, buf, got)
                    for i in range(got):
                        if buf[i] == _SIGINT:
                            outcome = _INTERRUPT
        if outcome != _STOPPED:
            gilfree_cancel()
    return outcome
