"""A read-only name -> entry mapping whose lookup errors list the valid names."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """An unknown kernel or backend name. The message lists the valid names.

    Subclasses both :class:`KeyError` (so mapping code behaves as usual) and
    :class:`ValueError` (it is bad input to a function).
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class Registry(Mapping[str, T], Generic[T]):
    """An immutable, ordered registry of named entries."""

    def __init__(self, what: str, entries: Mapping[str, T]) -> None:
        self._what = what
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(
                f"unknown {self._what} {name!r}; valid names are: {', '.join(self._entries)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<{self._what} registry: {', '.join(self._entries)}>"
