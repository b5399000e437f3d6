/* Read the GIL's own state: is it held, by whom, and how often it changed hands.
 *
 * A native sampler thread, which holds no Python thread state and never takes
 * the GIL, reads the interpreter's GIL state at exponentially distributed
 * random instants. The share of samples that found the GIL held estimates the
 * share of time it was held, whatever the length of the held sections
 * (random, memoryless instants cannot lock on to the work's rhythm). The
 * GIL's switch counter, read when sampling starts and stops, counts its
 * hand-offs between threads.
 *
 * The GIL state is CPython's internal ``struct _gil_runtime_state``:
 *   3.10, 3.11  _PyRuntime.ceval.gil        one GIL for the process
 *   3.12, 3.13  interp->ceval.gil           the GIL of the interpreter that
 *                                           asks (a subinterpreter may have
 *                                           its own); 3.13t adds ``enabled``
 * Its layout is read from each version's own internal headers. They need
 * Py_BUILD_CORE before the first include: this file is compiled on its own,
 * with that macro defined from the start, instead of inside the Cython
 * module, whose generated code includes Python.h first.
 */
#ifndef Py_BUILD_CORE_MODULE
#  define Py_BUILD_CORE_MODULE 1
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030A0000
#  error "gilfree reads the GIL of CPython 3.10 and later"
#elif PY_VERSION_HEX < 0x030C0000
#  include "internal/pycore_runtime.h"
#  define GILFREE_GIL_OF(interp) (&_PyRuntime.ceval.gil)
#  define GILFREE_LAYOUT "_PyRuntime.ceval.gil (one GIL for the process)"
#else
#  include "internal/pycore_interp.h"
#  define GILFREE_GIL_OF(interp) ((interp)->ceval.gil)
#  define GILFREE_LAYOUT "PyInterpreterState.ceval.gil (the asking interpreter's GIL)"
#endif

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#ifdef __linux__
#  include <sys/prctl.h>
#endif

/* 3.10-3.12 wrap ``locked`` and ``last_holder`` in one-member atomic structs;
   3.13 has a plain int and pointer. Either way the value is the first (only)
   member, read here with a relaxed atomic load: a torn or stale read is
   impossible for an aligned word, and a read a few nanoseconds old is as good
   as a fresh one for sampling. */
#define GILFREE_LOCKED(gil) __atomic_load_n((int *)&(gil)->locked, __ATOMIC_RELAXED)
#define GILFREE_HOLDER(gil) __atomic_load_n((uintptr_t *)&(gil)->last_holder, __ATOMIC_RELAXED)
#define GILFREE_SWITCHES(gil) \
    __atomic_load_n((unsigned long *)&(gil)->switch_number, __ATOMIC_RELAXED)

/* Distinct holders tallied per sampler; samples of any further holder are
   counted together. */
#define GILFREE_HOLDERS 64

typedef struct {
    struct _gil_runtime_state *gil;
    PyInterpreterState *interp;
    double mean_ns;
    uint64_t rng;
    int stop;    /* set by the owner, read by the sampler thread */
    int joined;
    pthread_t thread;
    /* Written by the sampler thread only, read after it is joined. */
    uint64_t samples;
    uint64_t held;
    uintptr_t who[GILFREE_HOLDERS];
    uint64_t who_n[GILFREE_HOLDERS];
    uint64_t who_other;
    /* Set by the owner. */
    unsigned long switches0;
    unsigned long switches1;
    double t0;
    double t1;
} sampler_t;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* xorshift64*: fast, and good enough to space samples. */
static double
uniform01(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    /* 53 random bits in (0, 1]: never 0, so the logarithm below is finite. */
    return ((double)((x * 0x2545F4914F6CDD1DULL) >> 11) + 1.0) / 9007199254740992.0;
}

static void
sleep_ns(double ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1e9);
    ts.tv_nsec = (long)(ns - (double)ts.tv_sec * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR) {
    }
}

static void
tally(sampler_t *s, uintptr_t holder)
{
    for (int i = 0; i < GILFREE_HOLDERS; i++) {
        if (s->who_n[i] == 0) {
            s->who[i] = holder;
            s->who_n[i] = 1;
            return;
        }
        if (s->who[i] == holder) {
            s->who_n[i]++;
            return;
        }
    }
    s->who_other++;
}

static void *
sample_loop(void *arg)
{
    sampler_t *s = (sampler_t *)arg;
#ifdef PR_SET_TIMERSLACK
    /* The default 50 us of timer slack would stretch every interval by up to
       that much; this thread's sleeps should end when asked. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
#endif
    /* Long intervals are slept in pieces, so that a stop is seen within a
       millisecond whatever the mean. */
    const double piece = 1e6;
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        double wait = -log(uniform01(&s->rng)) * s->mean_ns;
        while (wait > piece && !__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
            sleep_ns(piece);
            wait -= piece;
        }
        if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
            break;
        }
        sleep_ns(wait);
        /* A stop asked for during the sleep ends the window: the owner
           releases the GIL to join this thread, and a sample taken then would
           read the join, not the work. */
        if (__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
            break;
        }
        s->samples++;
        if (GILFREE_LOCKED(s->gil) > 0) {
            s->held++;
            tally(s, GILFREE_HOLDER(s->gil));
        }
    }
    return NULL;
}

static const char *CAPSULE = "gilfree._gilstate.sampler";

static void
sampler_join(sampler_t *s)
{
    if (s->joined) {
        return;
    }
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(s->thread, NULL);
    Py_END_ALLOW_THREADS
    s->joined = 1;
}

static void
capsule_free(PyObject *capsule)
{
    sampler_t *s = (sampler_t *)PyCapsule_GetPointer(capsule, CAPSULE);
    if (s == NULL) {
        PyErr_Clear();
        return;
    }
    if (!s->joined) {
        /* Dropped while running: stop the thread, never leave it reading a
           GIL that may go away. No Python API is used while waiting. */
        __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
        pthread_join(s->thread, NULL);
    }
    PyMem_RawFree(s);
}

static int
gil_enabled_here(struct _gil_runtime_state *gil)
{
#ifdef Py_GIL_DISABLED
    return __atomic_load_n(&gil->enabled, __ATOMIC_RELAXED) != 0;
#else
    (void)gil;
    return 1;
#endif
}

static struct _gil_runtime_state *
current_gil(void)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    (void)interp;
    return GILFREE_GIL_OF(interp);
}

/* start(mean_interval_s, seed) -> capsule */
static PyObject *
gs_start(PyObject *module, PyObject *args)
{
    double mean_s;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "dK:start", &mean_s, &seed)) {
        return NULL;
    }
    if (!(mean_s >= 1e-6 && mean_s <= 1.0)) {
        PyErr_Format(PyExc_ValueError,
                     "the mean interval must be between 1 us and 1 s, got %R",
                     PyTuple_GET_ITEM(args, 0));
        return NULL;
    }
    struct _gil_runtime_state *gil = current_gil();
    if (gil == NULL || !gil_enabled_here(gil)) {
        PyErr_SetString(PyExc_RuntimeError, "this interpreter runs without a GIL");
        return NULL;
    }
    sampler_t *s = (sampler_t *)PyMem_RawCalloc(1, sizeof(sampler_t));
    if (s == NULL) {
        return PyErr_NoMemory();
    }
    s->gil = gil;
    s->interp = PyInterpreterState_Get();
    s->mean_ns = mean_s * 1e9;
    s->rng = seed ? (uint64_t)seed : 0x9E3779B97F4A7C15ULL;
    s->joined = 1; /* until the thread exists */
    PyObject *capsule = PyCapsule_New(s, CAPSULE, capsule_free);
    if (capsule == NULL) {
        PyMem_RawFree(s);
        return NULL;
    }
    s->switches0 = GILFREE_SWITCHES(gil);
    s->t0 = now_s();
    int err = pthread_create(&s->thread, NULL, sample_loop, s);
    if (err != 0) {
        Py_DECREF(capsule);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    s->joined = 0;
    return capsule;
}

/* The thread ident of a thread state of this interpreter, or 0 where the
   pointer names none that is alive now. Called holding the GIL. */
static unsigned long
ident_of(PyInterpreterState *interp, uintptr_t holder)
{
    for (PyThreadState *t = PyInterpreterState_ThreadHead(interp); t != NULL;
         t = PyThreadState_Next(t)) {
        if ((uintptr_t)t == holder) {
            return t->thread_id;
        }
    }
    return 0;
}

/* stop(capsule) -> dict: samples, held, switches, seconds, holders
   ({thread ident or 0 for a thread that has ended: samples}), other_holders. */
static PyObject *
gs_stop(PyObject *module, PyObject *capsule)
{
    sampler_t *s = (sampler_t *)PyCapsule_GetPointer(capsule, CAPSULE);
    if (s == NULL) {
        return NULL;
    }
    if (!s->joined) {
        s->switches1 = GILFREE_SWITCHES(s->gil);
        s->t1 = now_s();
        sampler_join(s);
    }
    PyObject *holders = PyDict_New();
    if (holders == NULL) {
        return NULL;
    }
    for (int i = 0; i < GILFREE_HOLDERS && s->who_n[i] > 0; i++) {
        PyObject *key = PyLong_FromUnsignedLong(ident_of(s->interp, s->who[i]));
        PyObject *old = key ? PyDict_GetItemWithError(holders, key) : NULL;
        unsigned long long before = old ? PyLong_AsUnsignedLongLong(old) : 0;
        PyObject *value = PyLong_FromUnsignedLongLong(before + s->who_n[i]);
        if (key == NULL || value == NULL || PyDict_SetItem(holders, key, value) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(value);
            Py_DECREF(holders);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(value);
    }
    return Py_BuildValue("{s:K,s:K,s:k,s:d,s:N,s:K}", "samples",
                         (unsigned long long)s->samples, "held",
                         (unsigned long long)s->held, "switches",
                         s->switches1 - s->switches0, "seconds", s->t1 - s->t0,
                         "holders", holders, "other_holders",
                         (unsigned long long)s->who_other);
}

/* state() -> (locked, switch_number): one reading, now. */
static PyObject *
gs_state(PyObject *module, PyObject *unused)
{
    struct _gil_runtime_state *gil = current_gil();
    if (gil == NULL || !gil_enabled_here(gil)) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(ik)", GILFREE_LOCKED(gil), GILFREE_SWITCHES(gil));
}

/* enabled() -> whether the asking interpreter has a GIL now. */
static PyObject *
gs_enabled(PyObject *module, PyObject *unused)
{
    struct _gil_runtime_state *gil = current_gil();
    return PyBool_FromLong(gil != NULL && gil_enabled_here(gil));
}

static PyMethodDef methods[] = {
    {"start", gs_start, METH_VARARGS,
     "start(mean_interval_s, seed) -> handle: start sampling this interpreter's GIL."},
    {"stop", gs_stop, METH_O,
     "stop(handle) -> dict: stop sampling (once) and return the counts."},
    {"state", gs_state, METH_NOARGS,
     "state() -> (locked, switch_number), or None without a GIL."},
    {"enabled", gs_enabled, METH_NOARGS,
     "enabled() -> whether this interpreter has a GIL right now."},
    {NULL, NULL, 0, NULL},
};

static int
exec_module(PyObject *module)
{
    return PyModule_AddStringConstant(module, "LAYOUT", GILFREE_LAYOUT);
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "gilfree._gilstate",
    .m_doc = "The GIL's own state, sampled by a native thread (see gilfree.sampler).",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__gilstate(void)
{
    return PyModuleDef_Init(&module_def);
}
