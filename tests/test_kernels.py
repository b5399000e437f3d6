"""Correctness of every kernel in the registry: counts, inputs, errors."""

from __future__ import annotations

import fractions
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gilfree
from gilfree import KERNELS, MAX_N, Kernel, UnknownNameError, _countdown, countdown
from gilfree._pykernels import NUMPY_LANES

# Sizes around every chunk boundary the kernels use.
EDGE_SIZES = sorted(
    {
        0,
        1,
        2,
        3,
        7,
        1000,
        NUMPY_LANES - 1,
        NUMPY_LANES,
        NUMPY_LANES + 1,
        3 * NUMPY_LANES + 5,
        _countdown.CHUNK - 1,
        _countdown.CHUNK,
        _countdown.CHUNK + 1,
        2 * _countdown.CHUNK + 3,
    }
)


@pytest.mark.parametrize("n", EDGE_SIZES)
def test_returns_iterations_performed(kernel: Kernel, n: int) -> None:
    assert kernel(n) == n
    assert countdown(n, kernel=kernel.name) == n


def test_default_kernel_is_cython_nogil() -> None:
    assert countdown(12345) == 12345
    assert gilfree.kernels.DEFAULT_KERNEL == "cython-nogil"


@pytest.mark.parametrize(
    "n", [np.int64(1000), np.int32(17), np.uint8(255), np.uint64(3), np.intp(0)]
)
def test_numpy_integers_accepted(kernel: Kernel, n: object) -> None:
    result = kernel(n)
    assert result == int(n)  # type: ignore[call-overload]
    assert type(result) is int


@pytest.mark.parametrize(
    ("bad", "type_name"),
    [
        (1e8, "float"),
        (10.0, "float"),
        (float("nan"), "float"),
        ("100", "str"),
        (None, "NoneType"),
        (True, "bool"),
        (False, "bool"),
        (np.float64(5), "float64"),
        (np.bool_(True), "bool"),
        (fractions.Fraction(3, 1), "Fraction"),
        ([5], "list"),
    ],
)
def test_non_integers_raise_type_error(kernel: Kernel, bad: object, type_name: str) -> None:
    with pytest.raises(TypeError) as info:
        kernel(bad)
    message = str(info.value)
    assert type_name in message  # names the type
    assert "pass an int" in message  # and the fix


@pytest.mark.parametrize("bad", [-1, -(10**30), np.int64(-5)])
def test_negative_raises_value_error(kernel: Kernel, bad: object) -> None:
    with pytest.raises(ValueError, match=r"must be >= 0"):
        kernel(bad)


@pytest.mark.parametrize("bad", [MAX_N + 1, 2**64, 10**40])
def test_beyond_range_raises_overflow_error(kernel: Kernel, bad: int) -> None:
    with pytest.raises(OverflowError) as info:
        kernel(bad)
    assert str(MAX_N) in str(info.value)  # says the largest accepted value


def test_max_n_is_the_c_limit() -> None:
    assert MAX_N == 2**63 - 1


def test_unknown_kernel_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        countdown(10, kernel="cython-fast")
    message = str(info.value)
    assert "cython-fast" in message
    for name in KERNELS:
        assert name in message
    # usable both as a mapping miss and as bad input
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ValueError)


def test_registry_is_read_only_mapping() -> None:
    assert list(KERNELS) == ["python", "cython-object", "cython-gil", "cython-nogil", "numpy"]
    assert KERNELS.get("nope") is None
    with pytest.raises(TypeError):
        KERNELS["x"] = KERNELS["python"]  # type: ignore[index]


def test_registry_properties(kernel: Kernel) -> None:
    assert kernel.description and "\n" not in kernel.description
    assert kernel.gil in ("held", "released", "switched", "between-calls")
    assert kernel.releases_gil == (kernel.gil in ("released", "between-calls"))
    if not kernel.subinterpreters:
        assert kernel.unsupported_reason
    module = kernel.func.__module__ if hasattr(kernel.func, "__module__") else ""
    if kernel.name in ("cython-object", "cython-gil", "cython-nogil"):
        assert module == "gilfree._countdown" and kernel.compiled
    if kernel.name == "python":
        assert not kernel.compiled
        assert kernel.func.__code__.co_filename.endswith(".py")  # type: ignore[attr-defined]


def test_public_api() -> None:
    for name in gilfree.__all__:
        assert hasattr(gilfree, name), name
    assert gilfree.__version__


def test_missing_compiled_module_gives_build_instructions() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["gilfree._countdown"] = None  # as if it was never compiled
        try:
            import gilfree
        except ImportError as exc:
            print(exc)
        else:
            print("imported without the compiled module")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "has it been compiled?" in out
    assert "pip install -e ." in out
