"""Values typed on the command line, evaluated within bounds.

``gilfree check mod:f 10**8 "b'x'*2**24"`` passes Python values to a function.
A plain ``eval`` of such text can spin a CPU for minutes (``10**10**10``) or
ask for terabytes (``b'x'*2**45``). :func:`evaluate` walks the expression
instead and checks, before computing anything large, what the result would
cost: a power or a repetition past the bounds is refused with
:class:`ArgumentTooLarge`, which names the size.

Only literals, the operators of arithmetic and repetition, displays (lists,
tuples, sets, dicts) and calls of the names given are evaluated; anything
else (attributes, subscripts, comprehensions, lambdas) is not a value
expression, and :class:`NotAValue` says so, so that the caller can take the
text itself as a string (``data.csv``).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MAX_BYTES", "MAX_INT_BITS", "ArgumentTooLarge", "NotAValue", "evaluate"]

#: The largest integer an argument may compute: 2**65536 (19,729 digits).
MAX_INT_BITS = 65536
#: The most memory an argument may build (a string, bytes, a list...): 1 GiB.
MAX_BYTES = 2**30
#: Bytes per item of a list or tuple (a pointer), for the estimate.
_POINTER = 8


class ArgumentTooLarge(ValueError):
    """An argument would compute too large a number or build too large a value."""


class NotAValue(ValueError):
    """The text is not an expression of literals and the allowed names."""


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover - the loop returns


def _bits(value: int) -> float:
    return math.log2(abs(value)) if abs(value) > 1 else 0.0


def _check_int(bits: float) -> None:
    if bits > MAX_INT_BITS:
        digits = bits * math.log10(2)
        raise ArgumentTooLarge(
            f"it would compute a number of about {digits:,.0f} digits "
            f"(the most is {MAX_INT_BITS * math.log10(2):,.0f})"
        )


def _item_bytes(value: Any) -> int:
    return 1 if isinstance(value, (bytes, bytearray, str)) else _POINTER


def _check_repeat(seq: Any, times: int) -> None:
    need = max(0, times) * len(seq) * _item_bytes(seq)
    if need > MAX_BYTES:
        raise ArgumentTooLarge(
            f"it would need {_size(need)} of memory (the most an argument may build "
            f"is {_size(MAX_BYTES)})"
        )


_SEQUENCES = (str, bytes, bytearray, list, tuple)
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
}


def _binop(op: ast.operator, left: Any, right: Any) -> Any:
    ints = isinstance(left, int) and isinstance(right, int)
    if isinstance(op, ast.Pow) and ints and right > 0:
        _check_int(_bits(left) * right)
    elif isinstance(op, ast.LShift) and ints and right > 0:
        _check_int(_bits(left) + right)
    elif isinstance(op, ast.Mult):
        if ints:
            _check_int(_bits(left) + _bits(right))
        elif isinstance(left, _SEQUENCES) and isinstance(right, int):
            _check_repeat(left, right)
        elif isinstance(right, _SEQUENCES) and isinstance(left, int):
            _check_repeat(right, left)
    return _ARITHMETIC[type(op)](left, right)


def _call(func: Any, args: list[Any]) -> Any:
    # The builders that can be asked for a size: bytes(n), list(range(n))...
    if func in (bytes, bytearray) and len(args) == 1 and isinstance(args[0], int):
        _check_repeat(b"x", args[0])
    if func in (list, tuple, set, frozenset) and len(args) == 1 and isinstance(args[0], range):
        _check_repeat([0], len(args[0]))
    return func(*args)


def evaluate(text: str, names: Mapping[str, Any]) -> Any:
    """The value of ``text``, an expression of literals, arithmetic and calls
    of ``names``; :class:`NotAValue` if it is not one, :class:`ArgumentTooLarge`
    if it would cost too much to compute."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise NotAValue(f"{text!r} is not a Python expression") from None

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise NotAValue(f"{node.id!r} is not one of the names an argument may use")
            return names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = value(node.operand)
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            return _binop(node.op, value(node.left), value(node.right))
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [value(e) for e in node.elts]
            kind = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
            return kind(items)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise NotAValue("a ** unpacking in a dict display")
            return {value(k): value(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
        if isinstance(node, ast.Call) and not node.keywords:
            return _call(value(node.func), [value(a) for a in node.args])
        raise NotAValue(f"{type(node).__name__} is not allowed in an argument")

    try:
        return value(tree.body)
    except (ArgumentTooLarge, NotAValue):
        raise
    except MemoryError:
        raise ArgumentTooLarge("it does not fit in memory") from None
    except Exception as exc:  # 1/0, int('x'), ... : not a value after all
        raise NotAValue(f"{type(exc).__name__}: {exc}") from None
