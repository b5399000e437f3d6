"""What the user gave, shown as typed: on the terminal and in documents.

Names, paths, a module's file name, a function's ARGs and the fields of a
saved run are the user's text. gilfree shows them as typed everywhere:

- **Terminal.** Every rich console gilfree makes reads no markup and no emoji
  codes (:func:`console`), and tables hold :class:`rich.text.Text`, never
  markup strings (:func:`plain`): ``cafe:coffee`` stays ``cafe:coffee``, not
  a cup, ``a[red]b`` keeps its brackets, and ``[/]`` is text, not an error.
  Control characters (an escape code in a saved run) are shown escaped
  (:func:`shown`), so that no file can drive the terminal.
- **Markdown.** :func:`markdown` escapes what Markdown would read as syntax:
  a ``|`` cannot break the table, raw HTML does not pass through.
- **CSV.** :func:`csv_cell` neutralises a cell a spreadsheet would run as a
  formula (a leading ``=``, ``+``, ``-`` or ``@``), as OWASP advises: a
  ``'`` before it, which spreadsheets do not show.
- **HTML** escapes with :func:`html.escape` (in :mod:`gilfree.formats`).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["console", "csv_cell", "markdown", "plain", "shown"]


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


#: Control characters, the separators that end a line as one does, and the
#: invisible marks that reorder the text around them (bidirectional controls).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def shown(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``,
    ``\\n``, ``\\u202e``): printable text, emoji and every script stay as
    typed."""
    return _CONTROL.sub(_escaped, str(text))


def plain(text: str, style: str = "") -> Any:
    """``text`` as a rich :class:`~rich.text.Text` that no markup is read in."""
    from rich.text import Text

    return Text(shown(text), style=style)


def console(**options: Any) -> Any:
    """A rich console that reads no markup or emoji codes in what it prints
    and highlights nothing: gilfree styles its own words with
    :class:`~rich.text.Text`, and user text is printed as typed."""
    from rich.console import Console

    options.setdefault("highlight", False)
    return Console(markup=False, emoji=False, **options)


#: What Markdown (CommonMark, GitHub's tables) reads as syntax inside a line;
#: an underscore only at a word's edge (``PYTHON_GIL`` is no emphasis).
_MARKDOWN = re.compile(r"([\\`*\[\]<>|~&#!]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def markdown(text: str) -> str:
    """``text`` for a Markdown line or table cell, shown as typed: each
    character Markdown would read as syntax gets a backslash."""
    return _MARKDOWN.sub(r"\\\1", shown(text))


def csv_cell(text: str) -> str:
    """``text`` for a CSV cell that a spreadsheet shows rather than runs: a
    leading ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a ``'``
    before it. Control characters are shown escaped."""
    text = str(text)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        text = "'" + text
    return shown(text)


def workers(count: int) -> str:
    """``"1 worker"``, ``"2 workers"``: a worker count in words."""
    return f"{count} worker" if count == 1 else f"{count} workers"
