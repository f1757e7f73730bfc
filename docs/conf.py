"""Sphinx configuration: MyST Markdown pages, API reference from docstrings.

Build with ``python -m sphinx -W -b html docs docs/_build/html``.
"""

import pathlib
import re

from sphinx.application import Sphinx

import optaxswap

project = "optaxswap"
author = "the optaxswap authors"
copyright = "the optaxswap authors"
release = optaxswap.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes as fields of their class, not as objects of their own: autodoc
# documents the NamedTuple fields of module members already.
napoleon_use_ivar = True

# Furo: its content column holds an 88-column code line at 1280 px, and it
# builds offline (nothing is fetched, no intersphinx).
html_theme = "furo"
html_title = f"optaxswap {release}"

# The copy button copies the code, not the prompts: a doctest's ``>>> `` and
# ``... `` are left out (a bare ``...`` leaves the blank line that ends a
# block), and so is its output; a block without prompts copies whole.
copybutton_prompt_text = r">>> |\.\.\.(?: |$)"
copybutton_prompt_is_regexp = True

_DOCS = pathlib.Path(__file__).parent
_TOCTREE_START = re.compile(r"^(```|:::)\{toctree\}")
# A toctree entry that is a bare glob pattern, e.g. ``integrations/*``.
_GLOB_ENTRY = re.compile(r"^(?P<pattern>[\w./-]*[*?][\w./*?-]*)\s*$")


def _drop_empty_globs(app: Sphinx | None, docname: str, source: list[str]) -> None:
    """Removes toctree glob entries that match no page yet.

    Guide pages written alongside (integrations, performance, reliability)
    join the navigation through globs as they appear; Sphinx warns about a
    glob that matches nothing, and ``-W`` makes that warning fail the build.
    """
    folder = (_DOCS / docname).parent
    kept, fence = [], None
    for line in source[0].splitlines(keepends=True):
        if fence is None:
            if start := _TOCTREE_START.match(line):
                fence = start[1]
        elif line.strip() == fence:
            fence = None
        elif (entry := _GLOB_ENTRY.match(line)) and not any(
            folder.glob(entry["pattern"] + ".md")
        ):
            continue
        kept.append(line)
    source[0] = "".join(kept)


def setup(app: Sphinx) -> None:
    app.connect("source-read", _drop_empty_globs)
