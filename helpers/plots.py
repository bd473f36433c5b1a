"""Figures the helpers return for a notebook to show.

Figures are made without pyplot: no backend switch, no global figure left open, nothing shown
twice. A plain matplotlib ``Figure`` made that way displays as ``<Figure size ...>`` in a notebook
that never imported pyplot, so :func:`new_figure` returns one that Jupyter shows as a PNG when it
is a cell's value (rendered with Agg).
"""

from __future__ import annotations

import functools
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@functools.cache
def _figure_class() -> type[Figure]:
    from matplotlib.figure import Figure

    class CourseFigure(Figure):
        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", dpi=100)
            return buffer.getvalue()

    return CourseFigure


def new_figure(**kwargs: Any) -> Figure:
    """A matplotlib ``Figure`` (``figsize=``, ``layout=``, ...) that Jupyter displays as a PNG."""
    return _figure_class()(**kwargs)
