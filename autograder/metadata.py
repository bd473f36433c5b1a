"""Putting back the nbgrader metadata a submission changed, before nbgrader reads it.

nbgrader's ``OverwriteCells`` restores a known cell's source, points and lock, but trusts the
rest of the submitted metadata: an answer cell that a student marks as a graded cell (``grade:
true, points: 50``) makes it look the cell up among the graded cells, fail, and stop grading that
whole submission; a cell marked ``solution`` or ``task`` gets treated as one. :class:`RestoreMetadata`
runs just before ``OverwriteCells`` (``nbgrader_config.py``) and sets every cell's nbgrader flags
from the gradebook, which holds what the instructor's source notebook says: ``grade``,
``solution``, ``task``, ``locked`` and ``points`` of each known grade id; a cell with a grade id
the source does not have loses its nbgrader metadata (it is the student's own cell). Each change
is logged the way ``OverwriteCells`` logs one ("Attribute 'grade' for cell X has changed!"), so
the grading reasons say it was restored.
"""

from __future__ import annotations

from typing import Any

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor


class RestoreMetadata(NbGraderPreprocessor):
    """Set every cell's nbgrader flags from the gradebook (see the module's doc)."""

    def preprocess(self, nb: Any, resources: Any) -> Any:
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gradebook:
            try:
                notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
            except MissingEntry:
                return nb, resources
            self._source = {c.name: c for c in notebook.source_cells}
            self._graded = {c.name: c.max_score for c in notebook.grade_cells}
            self._solutions = {c.name for c in notebook.solution_cells}
            self._tasks = {c.name: c.max_score for c in notebook.task_cells}
        return super().preprocess(nb, resources)

    def _changed(self, grade_id: str, attribute: str, should: Any, got: Any) -> None:
        self.log.warning("Attribute '%s' for cell %s has changed! (should be: %s, got: %s)",
                         attribute, grade_id, should, got)

    def preprocess_cell(self, cell: Any, resources: Any, cell_index: int) -> Any:
        meta = cell.metadata.get("nbgrader")
        if not meta or "grade_id" not in meta:
            return cell, resources
        grade_id = meta["grade_id"]
        if grade_id not in self._source:
            if meta.get("grade") or meta.get("solution") or meta.get("task"):
                self._changed(grade_id, "grade_id", "a cell of the source notebook", grade_id)
            del cell.metadata["nbgrader"]
            return cell, resources
        source = self._source[grade_id]
        should = {
            "grade": grade_id in self._graded,
            "solution": grade_id in self._solutions,
            "task": grade_id in self._tasks,
            "locked": bool(source.locked),
        }
        for attribute, value in should.items():
            if bool(meta.get(attribute, False)) != value:
                self._changed(grade_id, attribute, value, meta.get(attribute))
            meta[attribute] = value
        points = self._graded.get(grade_id, self._tasks.get(grade_id))
        if points is None:
            meta.pop("points", None)
        elif meta.get("points") != points:
            if meta.get("points") is not None and float(meta["points"]) != float(points):
                self._changed(grade_id, "points", points, meta.get("points"))
            meta["points"] = points
        return cell, resources
