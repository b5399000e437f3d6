"""``with reader:`` for the readers that start once and stop once (the GIL
meter, the GIL sampler, the hand-off counter): entering starts, leaving stops,
whatever happened inside."""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T", bound="StartStop")


class StartStop:
    """A reader used as a context manager: subclasses define ``start()``
    (returning the reader) and ``stop()``."""

    def start(self: T) -> T:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def stop(self) -> Any:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __enter__(self: T) -> T:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
