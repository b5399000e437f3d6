"""Values typed on the command line, evaluated within bounds.

``gilfree check mod:f 10**8 "b'x'*2**24"`` passes Python values to a function.
A plain ``eval`` of such text can spin a CPU for minutes (``10**10**10``) or
ask for terabytes (``b'x'*2**45``). :func:`evaluate` walks the expression
instead, and bounds the evaluation as a whole:

- before each step computes, it estimates what the step would build (a
  power's digits, a repetition, a concatenation, a ``%`` format with its
  widths, a list or a string made from another value), and every step's
  estimate is charged to one budget of :data:`MAX_BYTES` for the whole
  expression, so neither one large step nor many steps each under it can
  pass (``'x'*2**30+'x'*2**30``); past the budget,
  :class:`ArgumentTooLarge` names the size;
- on Linux the evaluation also runs under an address-space limit a little
  above the budget, so anything the estimates miss fails with
  ``MemoryError`` (reported as :class:`ArgumentTooLarge`) instead of
  taking the machine's memory.

Only literals, the operators of arithmetic and repetition, displays (lists,
tuples, sets, dicts) and calls of the names given are evaluated; anything
else (attributes, subscripts, comprehensions, lambdas) is not a value
expression, and :class:`NotAValue` says so and why (its ``kind``), so that
the caller can take the text itself as a string (``data.csv``) and tell the
user when it did.
"""

from __future__ import annotations

import ast
import contextlib
import math
import operator
import os
import re
from collections.abc import Callable, Iterator, Mapping
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
    """The text is not an expression of literals and the allowed names.

    ``kind`` says why: ``syntax`` (not Python), ``name`` (a name or a form
    an argument may not use, as in ``data.csv``), ``operator`` (an operator
    not supported, as ``~5``) or ``error`` (the expression raised, as
    ``1/0`` or ``2.0**100000``)."""

    def __init__(self, message: str, kind: str = "name") -> None:
        super().__init__(message)
        self.kind = kind


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


def _bytes_of(value: Any) -> int:
    """About what ``value`` holds in memory: its items (not what they point to)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return int(_bits(value) // 8) + 8
    if isinstance(value, (str, bytes, bytearray, list, tuple)):
        return len(value) * _item_bytes(value)
    if isinstance(value, (set, frozenset, dict)):
        return len(value) * 4 * _POINTER
    return 8  # a float, a range, None...


class _Budget:
    """What one expression may build, all its steps together."""

    def __init__(self) -> None:
        self.spent = 0

    def charge(self, need: float) -> None:
        self.spent += max(0, int(need))
        if self.spent > MAX_BYTES:
            raise ArgumentTooLarge(
                f"it would need {_size(self.spent)} of memory (the most an argument may "
                f"build is {_size(MAX_BYTES)})"
            )


#: ``%`` conversions: flags, width, precision (``*`` takes them from the values).
_CONVERSION = re.compile(rb"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _format_bytes(template: str | bytes | bytearray, values: Any) -> float:
    """About what ``template % values`` builds: the template, every width and
    precision it names (or takes from the values with ``*``), and each value
    written out (a ``repr`` takes up to four characters a byte)."""
    raw = template.encode("utf-8", "surrogatepass") if isinstance(template, str) else template
    items = values if isinstance(values, tuple) else (values,)
    numbers = [abs(v) for v in items if isinstance(v, int) and not isinstance(v, bool)]
    need = float(len(raw)) + 16 * len(items)
    for m in _CONVERSION.finditer(bytes(raw)):
        for part in m.groups():
            if part == b"*":
                need += max(numbers, default=0)
            elif part:
                need += int(part)
    return need + 4 * sum(_bytes_of(v) for v in items)


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


def _binop(op: ast.operator, left: Any, right: Any, budget: _Budget) -> Any:
    ints = isinstance(left, int) and isinstance(right, int)
    if isinstance(op, ast.Pow) and ints and right > 0:
        _check_int(_bits(left) * right)
    elif isinstance(op, ast.LShift) and ints and right > 0:
        _check_int(_bits(left) + right)
    elif isinstance(op, ast.Mult):
        if ints:
            _check_int(_bits(left) + _bits(right))
        elif isinstance(left, _SEQUENCES) and isinstance(right, int):
            budget.charge(max(0, right) * _bytes_of(left))
        elif isinstance(right, _SEQUENCES) and isinstance(left, int):
            budget.charge(max(0, left) * _bytes_of(right))
    elif isinstance(op, ast.Mod) and isinstance(left, (str, bytes, bytearray)):
        budget.charge(_format_bytes(left, right))
    elif not ints and isinstance(op, (ast.Add, ast.BitOr, ast.BitXor, ast.BitAnd)):
        budget.charge(_bytes_of(left) + _bytes_of(right))
    value = _ARITHMETIC[type(op)](left, right)
    if isinstance(value, int) and not ints:
        _check_int(_bits(value))
    return value


def _call(func: Any, args: list[Any], budget: _Budget) -> Any:
    """``func(*args)``, its result estimated from its input first: a count
    (``bytes(n)``), or what an iterable (a range too) or a value written
    out (``str(...)``) becomes."""
    if len(args) == 1:
        (arg,) = args
        if func in (bytes, bytearray) and isinstance(arg, int):
            budget.charge(arg)
        elif func is str:
            budget.charge(4 * _bytes_of(arg) + 64)
        elif func in (bytes, bytearray, list, tuple, set, frozenset, dict):
            try:
                items = len(arg)
            except TypeError:  # no length (an int to list()): the call raises TypeError
                items = 0
            per = {bytes: 1, bytearray: 1, list: _POINTER, tuple: _POINTER}.get(func, 32)
            made = isinstance(arg, (str, range))  # each item a new object (a char, an int)
            budget.charge(items * per + (items * 32 if made else 0))
    return func(*args)


@contextlib.contextmanager
def _memory_bounded() -> Iterator[None]:
    """On Linux, an address-space limit a little above the budget while the
    block runs, so that whatever the estimates miss fails with MemoryError
    instead of taking the machine's memory. Elsewhere, nothing."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = used + 2 * MAX_BYTES + 2**29
        if soft != resource.RLIM_INFINITY and soft <= limit:
            limit = soft
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError, AttributeError):
        yield
        return
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def evaluate(text: str, names: Mapping[str, Any]) -> Any:
    """The value of ``text``, an expression of literals, arithmetic and calls
    of ``names``; :class:`NotAValue` if it is not one, :class:`ArgumentTooLarge`
    if it would cost too much to compute."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise NotAValue(f"it is not a Python expression ({exc.msg})", "syntax") from None
    except ValueError as exc:  # a NUL character
        raise NotAValue(f"it is not a Python expression ({exc})", "syntax") from None
    budget = _Budget()

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):  # (typed out: already in memory)
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise NotAValue(f"{node.id!r} is not one of the names an argument may use")
            return names[node.id]
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                symbol = {ast.Invert: "~", ast.Not: "not"}.get(type(node.op), "?")
                raise NotAValue(f"the operator {symbol} is not supported", "operator")
            operand = value(node.operand)
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp):
            if type(node.op) not in _ARITHMETIC:
                raise NotAValue("the operator @ is not supported", "operator")
            return _binop(node.op, value(node.left), value(node.right), budget)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [value(e) for e in node.elts]
            budget.charge(len(items) * _POINTER)
            kind = {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)]
            return kind(items)
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise NotAValue("a ** unpacking in a dict display")
            budget.charge(len(node.keys) * 4 * _POINTER)
            return {value(k): value(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
        if isinstance(node, ast.Call) and not node.keywords:
            return _call(value(node.func), [value(a) for a in node.args], budget)
        raise NotAValue(f"{type(node).__name__} is not allowed in an argument")

    try:
        with _memory_bounded():
            return value(tree.body)
    except (ArgumentTooLarge, NotAValue):
        raise
    except MemoryError:
        raise ArgumentTooLarge(
            f"it does not fit in the memory an argument may use (about {_size(MAX_BYTES)})"
        ) from None
    except Exception as exc:  # 1/0, int('x'), 2.0**100000: not a value after all
        raise NotAValue(f"evaluating it raised {type(exc).__name__}: {exc}", "error") from None
