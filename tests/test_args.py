"""Command-line values: bounded, so no argument can hang the parser or exhaust memory."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from gilfree._args import MAX_BYTES, ArgumentTooLarge, NotAValue, evaluate
from gilfree.cli import ARG_NAMES, parse_call_args, parse_count


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10**8", 10**8),
        ("b'x'*2**10", b"x" * 1024),
        ("list(range(5))", [0, 1, 2, 3, 4]),
        ("'text'", "text"),
        ("-3", -3),
        ("(1, [2], {'a': 3})", (1, [2], {"a": 3})),
        ("bytes(16)", bytes(16)),
        ("2.5 * 4", 10.0),
    ],
)
def test_ordinary_values_evaluate_as_before(text: str, value: object) -> None:
    assert evaluate(text, ARG_NAMES) == value


@pytest.mark.parametrize(
    "text", ["data.csv", "open('x')", "__import__('os')", "[x for x in range(3)]", "1/0", "a b"]
)
def test_what_is_not_a_value_is_not_evaluated(text: str) -> None:
    with pytest.raises(NotAValue):
        evaluate(text, ARG_NAMES)
    # ... and the command line passes such text on as the string itself.
    assert parse_call_args([text]) == ((text,), {})


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10**10**10", "digits"),  # a plain eval spins a CPU for minutes
        ("10**99999999", "digits"),
        ("1 << 10**9", "digits"),
        ("b'x'*2**45", "32.0 TiB of memory"),  # a plain eval raised MemoryError: passed as text
        ("2**45*'ab'", "TiB of memory"),
        ("[0]*10**12", "TiB of memory"),
        ("list(range(10**12))", "TiB of memory"),
        ("bytearray(2**40)", "1.0 TiB of memory"),
    ],
)
def test_too_large_a_value_is_refused_at_once(text: str, words: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ArgumentTooLarge, match=words):
        evaluate(text, ARG_NAMES)
    # The point of the bound: refused before computing (a wide margin on any host).
    assert time.perf_counter() - t0 < 2


def test_the_bound_on_memory_is_inclusive() -> None:
    assert len(evaluate(f"b'x'*{MAX_BYTES}", ARG_NAMES)) == MAX_BYTES
    with pytest.raises(ArgumentTooLarge):
        evaluate(f"b'x'*{MAX_BYTES + 1}", ARG_NAMES)


def test_n_refuses_an_enormous_power_at_once() -> None:
    import argparse

    t0 = time.perf_counter()
    with pytest.raises(argparse.ArgumentTypeError, match="too large"):
        parse_count("10**99999999")
    assert time.perf_counter() - t0 < 2
    assert parse_count("10**8") == 10**8


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["check", "hashlib:sha256", "10**10**10"], "argument 1"),
        (["check", "hashlib:sha256", "b'x'*2**45"], "32.0 TiB of memory"),
        (["check", "hashlib:sha256", "data=list(range(10**12))"], "argument data="),
        (["run", "-n", "10**99999999"], "too large"),
    ],
)
def test_the_command_line_exits_2_with_one_line_before_any_work(
    argv: list[str], words: str
) -> None:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gilfree", *argv], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""
    assert time.monotonic() - t0 < 30  # a hang would take minutes


def test_calls_takes_a_power_like_n() -> None:
    from gilfree.cli import build_parser

    args = build_parser().parse_args(["check", "hashlib:sha256", "--calls", "10**3"])
    assert args.calls == 1000
