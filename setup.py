"""Build the compiled modules.

Compiler directives live in the header of ``gilfree/_countdown.pyx``; this file only
says which extensions to build and how to compile them.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "gilfree._countdown",
        ["gilfree/_countdown.pyx"],
        # Cython declares per-interpreter-GIL support (the
        # ``subinterpreters_compatible`` directive) only when the module keeps
        # its state in a module-state struct instead of C globals.
        define_macros=[("CYTHON_USE_MODULE_STATE", "1")],
    ),
    # The GIL sampler reads CPython's internal GIL state: plain C, compiled on
    # its own so that Py_BUILD_CORE is defined before the first include.
    Extension(
        "gilfree._gilstate",
        ["csrc/gilstate.c"],
        define_macros=[("Py_BUILD_CORE_MODULE", "1")],
        libraries=["m"],
    ),
]

setup(ext_modules=cythonize(extensions))
