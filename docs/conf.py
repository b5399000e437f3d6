"""Sphinx configuration: Markdown pages (myst-parser) and the API from docstrings."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gilfree._version import __version__  # noqa: E402

project = "gilfree"
author = "gilfree developers"
release = version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # numpydoc-style sections in the docstrings
    "sphinx.ext.intersphinx",
]
source_suffix = {".md": "markdown"}
myst_heading_anchors = 3  # [text](#a-heading) links inside and across pages
exclude_patterns = ["_build"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Links to the standard library resolve without the network: the inventory is
# not fetched (the build must work offline); unresolved references stay text.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
html_theme = "alabaster"
html_title = f"gilfree {version}"
