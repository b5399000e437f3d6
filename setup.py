"""Build the compiled countdown kernels.

Compiler directives live in the header of ``gilfree/_countdown.pyx``; this file only
says which extension to build and how to compile it.
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
    )
]

setup(ext_modules=cythonize(extensions))
