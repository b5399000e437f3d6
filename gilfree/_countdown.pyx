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


cdef extern from *:
    """
    #if defined(__linux__)
      #include <sys/prctl.h>
      /* The io kernel's waits should end when asked: the default 50 us of
         timer slack would lengthen each by up to that much. Returns the
         slack it replaced (-1 where there is none to set). */
      static long gilfree_set_slack(long ns) {
          long old = (long)prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
          if (old >= 0) (void)prctl(PR_SET_TIMERSLACK, (unsigned long)ns, 0, 0, 0);
          return old;
      }
    #else
      static long gilfree_set_slack(long ns) { (void)ns; return -1; }
    #endif
    """
    long gilfree_set_slack(long ns) noexcept nogil


#: Spins per nanosecond on this machine, measured on first use of a
#: ground-truth kernel (0: not yet).
cdef double _spin_rate = 0.0


def spins_per_ns():
    """How many iterations of the countdown this machine performs per
    nanosecond (the fastest of three timings of 2**20 iterations, measured
    once): the ground-truth kernels size their sections with it."""
    global _spin_rate
    cdef long long t0, t1, best = 0
    cdef int i
    if _spin_rate == 0.0:
        with nogil:
            for i in range(3):
                t0 = _monotonic_ns()
                gilfree_spin(1 << 20)
                t1 = _monotonic_ns()
                if best == 0 or t1 - t0 < best:
                    best = t1 - t0
        _spin_rate = (1 << 20) / <double>(best if best > 0 else 1)
    return _spin_rate


cdef long long _section_iterations(double section_us) except -1:
    if not (section_us >= 1.0 and section_us <= 1e6):  # NaN fails too
        raise ValueError(f"section_us must be between 1 and 1e6 microseconds, got {section_us!r}")
    cdef long long its = <long long>(section_us * 1000.0 * spins_per_ns())
    return its if its > 0 else 1


cdef inline long long _nogil_part(long long step) noexcept nogil:
    return step - gilfree_spin(step)


def countdown_mixed(long long n, int since=-1, double gil_share=0.5, double section_us=50.0):
    """Typed C countdown that holds the GIL for a known share of its time.

    The count runs in sections of about ``section_us`` microseconds: in each,
    the first ``gil_share`` of its iterations count with the GIL held, the
    rest inside ``with nogil:``. Both halves run the same loop at the same
    speed, so the share of iterations is the share of time: ground truth for
    the GIL sampler. (``gilfree.countdown(n, "mixed", gil_share=...)``
    validates the share; this raw loop trusts it.)
    """
    cdef long long block = _section_iterations(section_us)
    cdef long long left = n
    cdef long long b, h, f, since_check = 0
    cdef int gen = gilfree_generation() if since < 0 else since
    cdef bint check_signals = _in_main_thread()
    cdef bint cancelled = False
    if gil_share <= 0.0:
        # No held part: one nogil block, checking for a cancel as often as
        # the other kernels do.
        with nogil:
            while left > 0:
                b = left if left < _CHUNK else _CHUNK
                left -= _nogil_part(b)
                if left > 0 and gilfree_generation() != gen:
                    cancelled = True
                    break
                if left > 0 and check_signals:
                    with gil:
                        PyErr_CheckSignals()
        if cancelled:
            raise Cancelled(n - left)
        return n - left
    while left > 0:
        b = left if left < block else block
        h = <long long>(b * gil_share + 0.5)
        f = b - h
        if h > 0:
            left -= h - gilfree_spin(h)
        if f > 0:
            with nogil:
                left -= _nogil_part(f)
        since_check += b
        if left > 0 and since_check >= _CHUNK:
            since_check = 0
            if gilfree_generation() != gen:
                raise Cancelled(n - left)
            PyErr_CheckSignals()
    return n - left


cdef inline void _sleep_ns(long long ns) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = ns // 1000000000
    ts.tv_nsec = ns % 1000000000
    while nanosleep(&ts, &ts) != 0 and errno == EINTR:
        pass


def countdown_io(long long n, int since=-1, double gil_share=0.5, double section_us=50.0):
    """A countdown whose GIL-free part waits, as a thread blocked on a socket
    does: it holds the GIL for a known share of its time.

    In each section it counts ``gil_share`` of about ``section_us``
    microseconds' worth of iterations with the GIL held, then releases the GIL
    and sleeps. A sleep overshoots what it asks for (timer slack, wake-up), so
    the waits are timed against the clock and kept on account: each asks for
    what the waits so far owe to ``held time * (1 - share) / share``, and an
    overshoot is taken off the next. The share of time the GIL is held is
    then ``gil_share`` by construction, whatever a wait costs here; only the
    last section can leave a remainder. Waiting for the GIL back (another
    thread holds it) is not counted as waiting: like a real socket read, the
    wait does not shrink because the GIL was busy.

    ``gil_share`` 0 has nothing to wait beside: it counts without the GIL, as
    ``mixed`` does at 0. The iterations counted are the return value, as for
    every kernel; the time taken is about ``n / rate / gil_share``.
    """
    if gil_share <= 0.0:
        return countdown_mixed(n, since, 0.0, section_us)
    cdef long long block = _section_iterations(section_us)
    cdef long long h = <long long>(block * gil_share + 0.5)
    cdef long long left = n
    cdef long long b, t0, t1, t2, since_check = 0
    cdef double held_ns = 0.0, waited_ns = 0.0, owed
    cdef double ratio = (1.0 - gil_share) / gil_share
    cdef int gen = gilfree_generation() if since < 0 else since
    cdef long old_slack
    if h <= 0:
        h = 1
    old_slack = gilfree_set_slack(1)
    try:
        while left > 0:
            b = left if left < h else h
            t0 = _monotonic_ns()
            left -= b - gilfree_spin(b)
            t1 = _monotonic_ns()
            held_ns += t1 - t0
            if left <= 0:
                break
            owed = held_ns * ratio - waited_ns
            if owed > 0.0:
                with nogil:
                    t1 = _monotonic_ns()
                    _sleep_ns(<long long>owed)
                    t2 = _monotonic_ns()
                waited_ns += t2 - t1
            since_check += b
            if since_check >= _CHUNK // 8 or owed > 0.0:
                since_check = 0
                if gilfree_generation() != gen:
                    raise Cancelled(n - left)
                PyErr_CheckSignals()
    finally:
        if old_slack >= 0:
            gilfree_set_slack(old_slack)
    return n - left


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
