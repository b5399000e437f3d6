"""Saved runs: the JSON document and the JSON Lines stream gilfree writes,
and reading back every version of either (:func:`load`)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from gilfree.results.context import context
from gilfree.results.result import Result
from gilfree.results.serialise import FORMAT, FORMAT_VERSION


def to_json(results: Sequence[Result], status: str = "complete", **meta: Any) -> dict[str, Any]:
    """Every raw timing and the metadata, as one JSON-ready document:
    ``format``, ``version``, the gilfree version, ``status``, the context
    (once: a cell keeps its own only where it differs), ``meta`` (such as the
    command) and the cells. :func:`load` reads it back."""
    from gilfree._version import __version__

    cells = [r.to_dict() for r in results]
    shared = cells[0]["context"] if cells else asdict(context())
    for cell in cells:
        if cell["context"] == shared:
            del cell["context"]
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "gilfree": __version__,
        "status": status,
        "context": shared,
        **meta,
        "results": cells,
    }


@dataclass(frozen=True)
class SavedRun:
    """A run read back by :func:`load`: its cells as :class:`Result` objects,
    how it ended (``complete``, ``failed``, ``interrupted``, or ``cut off``
    for a stream whose process was killed), and what else it recorded
    (``command``, a ``check``'s verdict, ...)."""

    path: str
    results: list[Result]
    status: str
    meta: dict[str, Any]
    version: int


def load(path: str) -> SavedRun:
    """Any file gilfree wrote with ``--json`` or ``--format json|jsonl``, in
    any format version it knows, as a :class:`SavedRun`.

    Raises ValueError naming the file and the problem: not a gilfree file, a
    newer format version, an empty file, a stream cut inside its first line.
    A stream cut later reads as ``"cut off"`` with the cells it holds.
    OSError where it cannot be read."""
    with open(path, encoding="utf-8-sig") as f:  # (a byte-order mark an editor added is skipped)
        text = f.read()
    if not text.strip():
        raise ValueError(f"{path}: the file is empty; is it the output of gilfree --json?")
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ValueError(f"{path}: not a gilfree results file (nested too deeply)") from None
    except json.JSONDecodeError as exc:
        if not text.lstrip().startswith(("{", "[")):
            raise ValueError(
                f"{path}: not a gilfree results file (not JSON: it starts {text.lstrip()[:20]!r})"
            ) from None
        if not text.lstrip().startswith('{"record"'):  # not a JSON Lines log either
            what = "text after the JSON document" if exc.msg == "Extra data" else exc.msg.lower()
            raise ValueError(
                f"{path}: not valid JSON: {what} (line {exc.lineno}, column {exc.colno})"
                + ("; was the file cut short?" if exc.msg != "Extra data" else "")
            ) from None
        doc = None  # JSON Lines: one value per line
    if isinstance(doc, dict) and "record" not in doc:
        if not isinstance(doc.get("results"), list):
            raise ValueError(f"{path}: not a gilfree results file (no list of results)")
        version = _version(path, doc, legacy=1)
        shared = doc.get("context")
        meta = {k: v for k, v in doc.items() if k not in ("results", "context")}
        results = [_cell(path, i, c, shared) for i, c in enumerate(doc["results"], 1)]
        return SavedRun(path, results, str(doc.get("status", "complete")), meta, version)
    if isinstance(doc, list) or (doc is not None and not isinstance(doc, dict)):
        raise ValueError(f"{path}: not a gilfree results file (a JSON {type(doc).__name__})")
    log = read_json(path)
    version = _version(path, log["start"], legacy=2)
    shared = log["start"].get("context")
    results = [_cell(path, i, c, shared) for i, c in enumerate(log["results"], 1)]
    meta = {**log["start"], **(log["end"] or {})}
    return SavedRun(path, results, log["status"], meta, version)


def _version(path: str, header: dict[str, Any], legacy: int) -> int:
    """The format version a file declares (``legacy`` where it declares none,
    as gilfree 0.1's files did), refusing a newer one or another format."""
    kind = header.get("format", FORMAT)
    if kind != FORMAT:
        raise ValueError(f"{path}: a {kind!r} file, not gilfree results")
    version = header.get("version", legacy)
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path}: format version {version!r} is not one gilfree wrote")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {version}, newer than this gilfree reads (up to "
            f"{FORMAT_VERSION}); upgrade it: pip install -U gilfree"
        )
    return version


def _cell(path: str, number: int, data: Any, shared: dict[str, Any] | None) -> Result:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: cell {number} is not an object")
    try:
        return Result.from_dict(data, shared)
    except ValueError as exc:
        raise ValueError(f"{path}: cell {number}: {exc}") from None


class JsonLog:
    """A measurement written as JSON Lines while it runs, so that nothing
    measured is lost when a later cell, Ctrl-C or a crash stops it.

    The first line is ``{"record": "start", ...}`` (the command and context),
    then one ``{"record": "cell", ...}`` per cell as it completes
    (:meth:`Result.to_dict`), then ``{"record": "end", "status": ...}`` with
    ``"complete"``, ``"failed"`` (some cells failed or timed out) or
    ``"interrupted"``. A file without an end line was cut off (the process
    was killed). :func:`read_json` reads it back.
    """

    def __init__(self, path: str, **meta: Any) -> None:
        from gilfree._version import __version__

        self.path = path
        self.cells = 0
        self._file = _own_stdout() if path == "-" else open(path, "w", encoding="utf-8")  # noqa: SIM115
        try:
            self._write(
                {
                    "record": "start",
                    "format": FORMAT,
                    "version": FORMAT_VERSION,
                    "gilfree": __version__,
                    **meta,
                }
            )
        except BaseException:
            self.close()
            raise

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(_clean(record), allow_nan=False) + "\n")
        self._file.flush()

    def cell(self, result: Result) -> None:
        """Append one measured cell."""
        self.cells += 1
        self._write({"record": "cell", **result.to_dict()})

    def end(self, status: str, **meta: Any) -> None:
        """Write the end line and close the file (standard output stays open)."""
        self._write({"record": "end", "status": status, "cells": self.cells, **meta})
        self.close()

    def close(self) -> None:
        """Close the file (standard output stays open). A failed write leaves
        its line in the buffer; closing drops it rather than failing again."""
        if self._file in (sys.stdout, sys.__stdout__) or self._file.closed:
            return
        with contextlib.suppress(OSError):
            self._file.close()


def _own_stdout() -> TextIO:
    """A stream of its own onto standard output (a duplicate of its file
    descriptor), so that a log written to ``-`` keeps going to standard output
    while the measured code's prints are sent to stderr. Where standard
    output has no descriptor (a capturing test), standard output itself."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stdout
    sys.stdout.flush()
    return os.fdopen(os.dup(fd), "w", encoding="utf-8")


def read_json(path: str) -> dict[str, Any]:
    """A :class:`JsonLog` file as ``{"start": ..., "results": [...], "end": ...}``;
    ``end`` is None when the run was cut off before it could write one, and
    ``status`` is the end line's status, or ``"cut off"``.

    Raises ValueError, naming the file and line, for anything that is not
    one such log: a line that is not a record, a file cut inside its first
    line, two logs joined end to end, a record after the end line."""
    start: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    cells: list[dict[str, Any]] = []
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            kind = record.get("record") if isinstance(record, dict) else None
            cut = line.lstrip().startswith("{")  # the start of a record, never its end
            if record is None and not line.endswith("\n") and cut:
                # A last line cut off mid-write: the process was killed.
                if start is None:
                    raise ValueError(
                        f"{path}: cut off inside its first line (the run was killed as it "
                        "started), so it holds no cells"
                    )
                break
            if kind not in ("start", "cell", "end"):
                what = (
                    "text that is not JSON" if record is None else f"a JSON {type(record).__name__}"
                )
                raise ValueError(f"{path}:{number}: not a gilfree JSON Lines record ({what})")
            assert isinstance(record, dict)
            del record["record"]
            if end is not None:
                raise ValueError(
                    f"{path}:{number}: a {kind} record after the end line"
                    + ("; two logs joined end to end? Keep one per file" if kind == "start" else "")
                )
            if kind == "start":
                if start is not None:
                    raise ValueError(
                        f"{path}:{number}: a second start record; two logs joined end to end? "
                        "Keep one per file"
                    )
                start = record
            elif start is None:
                raise ValueError(f"{path}:{number}: a {kind} record before the start record")
            elif kind == "cell":
                cells.append(record)
            else:
                end = record
    if start is None:
        raise ValueError(f"{path}: no start record; is it a gilfree --json file?")
    return {
        "start": start,
        "results": cells,
        "end": end,
        "status": end["status"] if end else "cut off",
    }


def write_json(data: dict[str, Any], path: str) -> None:
    """Write ``data`` to ``path`` (``-``: standard output)."""
    text = json.dumps(_clean(data), indent=2, allow_nan=False)
    if path == "-":
        sys.stdout.write(text + "\n")
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _clean(value: Any) -> Any:
    """NaN (no measurement) becomes null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value
