"""Rendering submissions safely: no student HTML or JavaScript runs in an instructor's or a
student's page.

A submitted notebook is untrusted input: its markdown answers, its outputs and its error
messages are written by the student (or by code the student ran). The formgrader (the
instructor's page, which holds a session able to change every grade) and the feedback HTML render
them. nbconvert's ``HTMLExporter.sanitize_html`` alone still let a markdown answer's script run in
the formgrader (measured in this course); its ``SanitizeHTML`` preprocessor (bleach) escapes the
raw HTML of markdown cells and ``text/html`` outputs and drops script outputs. :class:`SafeHTML`
adds what bleach leaves to the markdown renderer: link and image targets with a ``javascript:``,
``vbscript:`` or ``data:`` scheme (written as markdown, not HTML), and LaTeX outputs, which the
page's MathJax would render (``\\href{javascript:...}``).

:class:`FeedbackHiddenTests` is nbgrader's ``ClearHiddenTests`` for feedback: it removes the
hidden tests from test cells (whose source comes from the instructor's notebook) and leaves every
other cell alone. nbgrader's own one stops the whole feedback run when a student's answer merely
contains the text ``### BEGIN HIDDEN TESTS``.

``nbgrader_config.py`` installs both, for the formgrader, the feedback and the graded notebooks.
"""

from __future__ import annotations

import html
import re
from typing import Any

from nbconvert.preprocessors.sanitize import SanitizeHTML
from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests

#: URL schemes that run code or smuggle content when a rendered link or image is used, where a
#: URL can start: a markdown link or image target, a reference definition, an autolink, an
#: attribute, LaTeX's \\href and \\url (prose such as "Training data: 44 examples" is left alone).
_SCHEMES = re.compile(
    r"(?i)(\]\(\s*<?|\]:\s*<?|<|&lt;|\\href\s*\{|\\url\s*\{|(?:href|src|action)\s*=\s*[\"']?)"
    r"\s*(java\s*script|vb\s*script|data|livescript)\s*:"
)
#: HTML character references an attacker can use to spell a scheme (``&#106;avascript:``).
_ENTITY = re.compile(r"&#[xX]?[0-9a-fA-F]+;?|&(?:colon|tab|newline);", re.IGNORECASE)


def _plain_entity(match: re.Match) -> str:
    """A character reference that spells a letter, digit or separator, written out (so that
    ``&#106;avascript:`` is seen as ``javascript:``); any other reference is kept."""
    decoded = html.unescape(match.group(0))
    return decoded if len(decoded) == 1 and (decoded.isalnum() or decoded in ":\t\n") else (
        match.group(0))


def _blocked(match: re.Match) -> str:
    return match.group(1) + "blocked-" + re.sub(r"\s+", "", match.group(2)).lower() + "-"


def neutralise_schemes(text: str) -> str:
    """``text`` with every dangerous URL scheme defused (``javascript:`` -> ``blocked-javascript-``),
    also when spelled with character references."""
    return _SCHEMES.sub(_blocked, _ENTITY.sub(_plain_entity, text))


class SafeHTML(SanitizeHTML):
    """nbconvert's ``SanitizeHTML`` plus defused URL schemes and no LaTeX outputs."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.safe_output_keys = set(self.safe_output_keys) - {"text/latex"}

    def sanitize_html_tags(self, html_str: str) -> str:
        return neutralise_schemes(super().sanitize_html_tags(html_str))

    def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> Any:
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [neutralise_schemes(str(line))
                                           for line in output.get("traceback", [])]
        return cell, resources


class FeedbackHiddenTests(ClearHiddenTests):
    """Remove hidden tests from test cells only (see the module's doc)."""

    def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> Any:
        is_test = utils.is_grade(cell) and not utils.is_solution(cell) and cell.cell_type == "code"
        if not is_test:
            return cell, resources
        try:
            return super().preprocess_cell(cell, resources, cell_index)
        except RuntimeError:  # unbalanced markers in a test cell: show none of its code
            cell.source = "# (this test's code is not shown)"
            return cell, resources
