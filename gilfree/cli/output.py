"""Where a command's output goes: progress, the --json recorder, -o files, stderr messages."""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from gilfree import _text
from gilfree.cli.options import _why
from gilfree.measure import ProgressHook, Result, context

# ----------------------------------------------------------------------- commands


@contextlib.contextmanager
def _progress(args: argparse.Namespace) -> Iterator[ProgressHook]:
    """A rich progress bar on stderr (when it is a terminal), as a sweep hook."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = _text.console(stderr=True)
    show = not args.no_progress and console.is_terminal
    # auto_refresh=False: no refresh thread, so forking worker processes
    # never happens in a multi-threaded parent.
    progress = Progress(
        TextColumn("{task.description:<40}", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        auto_refresh=False,
        transient=True,
        disable=not show,
    )
    with progress:
        task = progress.add_task("calibrating", total=None)
        started = [False]

        def hook(label: str, steps: int) -> None:
            if started[0]:
                progress.advance(task)
            started[0] = True
            progress.update(task, description=_text.shown(label), total=steps)
            progress.refresh()

        yield hook


class _Recorder:
    """The cells of one measuring command, kept as they complete and streamed
    to ``--json``, so an interrupted run can still print and keep them.

    :meth:`open` writes the start line once the arguments are checked and
    before any work, so a path that cannot be written (``/dev/full``) is
    refused at once; arguments refused after it (:meth:`discard`) leave no
    file behind. A write that fails during the run stops the log, not the
    measurement: the table still shows every cell, stderr says what the file
    lacks, and the exit status is 1.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.path: str | None = args.json
        self.option = "--json"  # how the user named the stream's path
        if args.format == "jsonl":  # the same stream, to -o or stdout
            if args.json:
                raise _Usage("--json already writes JSON Lines; give it or --format jsonl")
            self.path, self.option = args.output or "-", "-o"
        #: json, csv, markdown or html: written whole when the run ends, to ``out``.
        self.document = args.format if args.format in ("json", "csv", "markdown", "html") else None
        self.out: _Output = args.out
        if (
            args.json not in (None, "-")
            and self.out.path != "-"
            and (_same_file(args.json, self.out.path))
        ):
            raise _Usage(
                f"--json and -o both name {args.json}: each would overwrite the other; give "
                "them two paths"
            )
        if self.document and args.json == "-" and self.out.path == "-":
            raise _Usage(
                f"--json - and --format {args.format} would both write to standard output; "
                "send one of them to a file (--json PATH or -o PATH)"
            )
        self.argv: list[str] = args.argv
        self.results: list[Result] = []
        self.meta: dict[str, Any] = {}
        self.log: Any = None
        self.created = False
        self.lost: str | None = None  # why the log stopped early

    def open(self) -> None:
        if not self.path:
            return
        from gilfree.results import JsonLog

        existed = self.path == "-" or os.path.exists(self.path)
        try:
            self.log = JsonLog(self.path, command=self.argv, context=context().__dict__)
        except OSError as exc:
            if not existed and os.path.exists(self.path):
                os.unlink(self.path)
            raise _Usage(f"cannot write {self.option} {self.path}: {_why(exc)}") from None
        self.created = not existed

    def discard(self) -> None:
        """The arguments were refused after :meth:`open`: remove what it wrote."""
        if self.log is not None:
            self.log.close()
            if self.created and self.path:
                os.unlink(self.path)
        self.log = self.path = None

    def _write(self, write: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        if self.log is None:
            return
        try:
            write(*args, **kwargs)
        except OSError as exc:
            where = "to standard output" if self.path == "-" else self.path
            self.lost = (
                f"writing the JSON log {where} failed ({_why(exc)}); it holds "
                f"{self.log.cells} of the cells, and the table shows them all"
            )
            _say(f"gilfree: {self.lost}")
            if self.path == "-":
                _silence_stdout()  # the reader left: later output would fail again
            self.log.close()  # (its line left in the buffer is dropped, not retried)
            self.log = None

    def add(self, result: Result) -> None:
        self.results.append(result)
        self._write(lambda: self.log.cell(result))

    def end(self, status: str) -> None:
        failed = sum(r.failed for r in self.results)
        self._write(lambda: self.log.end(status, failed_cells=failed, **self.meta))
        self.path = self.log = None  # ended: nothing more is written
        if self.document:
            fmt, self.document = self.document, None
            self._write_document(fmt, status)

    def _write_document(self, fmt: str, status: str) -> None:
        from gilfree.formats import render

        meta = {"command": self.argv, **self.meta} if fmt == "json" else {}
        if fmt in ("markdown", "html"):
            meta = {"title": "gilfree " + " ".join(self.argv)}
        self.out.write(render(fmt, self.results, status, **meta))
        self.lost = self.lost or self.out.lost


class _Output:
    """Where ``--format``'s output goes: ``-o PATH`` or standard output.

    The path is tried before any work, so that the results are never
    measured only to be lost to it: it must not be a file the command reads
    (``show v.json -o v.json``), its folder must have room, and a device that
    is not a terminal (``/dev/full``) is written one newline. If writing
    still fails at the end (the disk filled during the run), the text is
    saved to a file of its own in the temporary folder, and stderr names it.
    """

    def __init__(self, path: str | None, reads: Sequence[str] = ()) -> None:
        self.path = path or "-"
        self.lost: str | None = None  # what went wrong, and where the text went
        if self.path == "-":
            return
        for given in reads:
            if _same_file(given, self.path):
                raise _Usage(
                    f"-o {self.path} is {given}, the file this command reads; writing there "
                    "would replace it: give another path"
                )
        try:
            _try_writing(self.path)
        except OSError as exc:
            raise _Usage(f"cannot write -o {self.path}: {_why(exc)}") from None

    def write(self, text: str) -> None:
        """``text`` to the path or standard output; see the class for a failure."""
        try:
            if self.path == "-":
                sys.stdout.write(text)
                sys.stdout.flush()
                return
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            where = "to standard output" if self.path == "-" else f"to {self.path}"
            if self.path == "-":
                _silence_stdout()  # the reader left: later output would fail again
            saved = _save_elsewhere(text, self.path)
            self.lost = f"writing the output {where} failed ({_why(exc)}); " + (
                f"it is saved in {saved} instead" if saved else "it could not be saved elsewhere"
            )
            _say(f"gilfree: {self.lost}")


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _try_writing(path: str) -> None:
    """Raise the OSError that writing ``path`` would give, writing nothing to
    a regular file (it is opened to append, or created and removed)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISCHR(mode):
        with open(path, "w", encoding="utf-8") as f:
            if not f.isatty():  # /dev/null takes it, /dev/full refuses it
                f.write("\n")
        return
    folder = os.path.dirname(os.path.abspath(path))
    if mode is None or stat.S_ISREG(mode):
        free = os.statvfs(folder)
        if free.f_bavail == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if mode is None:
        open(path, "x", encoding="utf-8").close()
        os.unlink(path)
    elif stat.S_ISREG(mode):  # (a named pipe is left alone: opening it waits for a reader)
        open(path, "a", encoding="utf-8").close()


def _save_elsewhere(text: str, path: str) -> str | None:
    """``text`` in a new file of the temporary folder (named after ``path``'s
    suffix); its path, or None if that fails too."""
    import tempfile

    suffix = os.path.splitext(path)[1] if path != "-" else ".txt"
    try:
        fd, saved = tempfile.mkstemp(prefix="gilfree-output-", suffix=suffix or ".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        return None
    return saved


@contextlib.contextmanager
def _prints_to_stderr() -> Iterator[None]:
    """While measuring, what the measured code prints goes to stderr, where
    the user still sees it: standard output carries gilfree's own data (a
    ``--format`` document, the ``--json -`` stream, the table), and a print
    from a checked function must never land in it. Both Python's
    ``sys.stdout`` and file descriptor 1 are redirected (worker processes
    and C code write to the descriptor); a ``--json -`` log keeps a
    descriptor of its own onto the real standard output."""
    sys.stdout.flush()
    try:
        moved = sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # a capturing test: no descriptor
        moved = False
    saved = os.dup(1) if moved else -1
    if moved:
        os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if moved:
            sys.stdout.flush()
            if not _stdout_silenced:  # (its reader left meanwhile: it stays on /dev/null)
                os.dup2(saved, 1)
            os.close(saved)


def _silence_stdout() -> None:
    """Point standard output at /dev/null (its reader closed the pipe), so the
    interpreter's flush at exit does not fail too."""
    global _stdout_silenced
    _stdout_silenced = True
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ else 1
    except (OSError, ValueError):  # pragma: no cover - no standard output at all
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


#: Set once standard output's reader has gone (:func:`_silence_stdout`).
_stdout_silenced = False


class _Usage(Exception):
    pass


def _console(args: argparse.Namespace) -> Any:
    """Where the report goes: stdout, or stderr when stdout carries JSON or
    another ``--format``; a file for ``--format table -o PATH``."""
    machine_out = getattr(args, "json", None) == "-" or (
        args.format != "table" and (args.output or "-") == "-"
    )
    if args.format == "table" and args.out.path != "-":  # kept, then written by _report
        return _text.console(file=io.StringIO(), width=200 if args.wide else 80)
    console = _text.console(stderr=machine_out)
    if args.wide and not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 200  # a file or pipe: keep each wide row on one line
    return console


def _failed(results: Sequence[Result]) -> int:
    """Exit status: 1 if a cell failed or timed out (the table says which), else 0."""
    return 1 if any(r.failed for r in results) else 0


def _say(message: str) -> None:
    """One message on stderr, the user's text in it shown as typed
    (control characters escaped, :func:`gilfree._text.shown`)."""
    print(_text.shown(message), file=sys.stderr)


def _usage_error(args: argparse.Namespace, message: str) -> NoReturn:
    """Exit 2 with one line, naming the command and where its help is."""
    prog = f"gilfree {args.command}"
    _say(f"{prog}: error: {message} (see {prog} --help)")
    raise SystemExit(2)
