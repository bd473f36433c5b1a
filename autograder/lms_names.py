"""The file names of the LMSs' bulk downloads of submissions, read by nbgrader collector plugins.

- **Canvas**, *Download Submissions*: a flat zip of
  ``{name}[_late]_{user id}_{attachment id}_{file name}``, where ``name`` is the student's sortable
  name in lower case without spaces or punctuation ("Doe, Jane" -> ``doejane``), ``late`` marks a
  submission after the due date, and the file name gets a ``-1``, ``-2`` ... suffix when the
  student uploaded a file of that name before. Text and URL submissions are
  ``{name}[_late]_{user id}_text.html`` / ``_link.html``.
- **Moodle**, assignment *Download all submissions*: a folder per participant,
  ``{Full Name}_{participant id}_assignsubmission_file_/{the student's files and folders}``
  (``Participant_{id}_...`` under blind marking; without "download submissions in folders",
  the same prefix on flat file names).

The parsers are nbgrader ``FileNameCollectorPlugin`` subclasses: ``python -m autograder collect``
uses their :meth:`parse`, and nbgrader's own ``nbgrader zip_collect
--collector=autograder.lms_names.CanvasCollector ASSIGNMENT`` their :meth:`collect`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Unicode

from autograder import roster as roster_mod

#: ``doejane_late_48213_901_nb.ipynb``; Canvas before 2019: ``doe-jane-late_48213_901_...``
CANVAS_FILE = re.compile(
    r"(?i)^(?:(?P<name>[^/]*?)(?:[-_](?P<late>late))?_)?(?P<student_id>\d+)"
    r"_(?P<attachment_id>\d+)_(?P<file_id>[^/]+)$")
CANVAS_TEXT = re.compile(
    r"(?i)^(?:(?P<name>[^/]*?)(?:[-_](?P<late>late))?_)?(?P<student_id>\d+)"
    r"_(?P<kind>text|link)\.html$")
MOODLE_FILE = re.compile(
    r"^(?P<name>[^/]*)_(?P<student_id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_"
    r"(?:/(?P<file_id>.+)|(?P<flat>[^/]+))$")
#: ``name-1.ipynb`` (Canvas, a re-upload) or ``name (1).ipynb`` (a browser's second download).
COPY_SUFFIX = re.compile(r"^(?P<stem>.+?)(?:-\d+| ?\(\d+\))(?P<ext>\.[^.]+)$")


def strip_copy_suffix(name: str) -> str:
    """``gpt2_imdb-1.ipynb`` -> ``gpt2_imdb.ipynb``; other names unchanged."""
    match = COPY_SUFFIX.match(name)
    return match["stem"] + match["ext"] if match else name


class LMSCollector(FileNameCollectorPlugin):
    """A FileNameCollectorPlugin for one LMS's naming. :meth:`parse` reads a path inside the
    download; :meth:`collect` is nbgrader ``zip_collect``'s entry point."""

    lms = ""
    lms_column = ""
    roster = Unicode(
        "", help="A roster CSV (autograder/roster.py) mapping the LMS's ids to student ids; "
                 "without it the student ids are the LMS's ids.").tag(config=True)

    def parse(self, path: str) -> dict | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def collect(self, submitted_file: str) -> dict | None:
        """For ``nbgrader zip_collect``: the student id (mapped through ``roster`` when set) and
        the file id of one extracted file, or None to skip it."""
        if os.path.splitext(submitted_file)[1] not in self.valid_ext:
            return None
        parts = PurePosixPath(Path(submitted_file).as_posix()).parts
        info = None
        for start in range(len(parts) - 1, -1, -1):  # the shortest tail that parses
            info = self.parse("/".join(parts[start:]))
            if info:
                break
        if not info or info.get("text"):
            self.log.warning("%s: not a %s submission file name", submitted_file, self.lms)
            return None
        student = info["student_id"]
        if self.roster:
            if getattr(self, "_roster", None) is None:
                self._roster = roster_mod.load(self.roster)
            person, why = self._roster.match(self.lms_column, student, info["name"])
            if person is None:
                self.log.warning("%s: %s", submitted_file, why)
                return None
            student = person.student
        return {"student_id": student, "file_id": strip_copy_suffix(info["file_id"])}


class CanvasCollector(LMSCollector):
    """Canvas's *Download Submissions* names (see the module's doc)."""

    lms, lms_column = "Canvas", "canvas_id"
    named_regexp = Unicode(CANVAS_FILE.pattern).tag(config=True)

    def parse(self, path: str) -> dict | None:
        """``{name, student_id, late, order, file_id}`` of a Canvas member name (``order`` is
        the attachment id: a later upload has a larger one), ``{..., text: kind}`` for a text or
        URL submission, None for another name."""
        match = re.match(self.named_regexp, path)
        text = None if match else CANVAS_TEXT.match(path)
        if not (match or text):
            return None
        found = match or text
        name, late = found["name"] or "", bool(found["late"])
        if name.casefold() == "late":  # no name (anonymous grading), late
            name, late = "", True
        if text:
            return {"name": name, "student_id": text["student_id"], "late": late, "order": 0,
                    "file_id": path,
                    "text": "text entry" if text["kind"].lower() == "text" else "URL"}
        return {"name": name, "student_id": match["student_id"], "late": late,
                "order": int(match["attachment_id"]), "file_id": match["file_id"]}


class MoodleCollector(LMSCollector):
    """Moodle's *Download all submissions* names, in folders or flat (see the module's doc)."""

    lms, lms_column = "Moodle", "moodle_id"
    named_regexp = Unicode(MOODLE_FILE.pattern).tag(config=True)

    def parse(self, path: str) -> dict | None:
        match = re.match(self.named_regexp, path)
        if not match:
            return None
        name = match["name"]
        if name.casefold().startswith("participant"):  # blind marking: no name
            name = ""
        info = {"name": name, "student_id": match["student_id"], "late": False, "order": 0,
                "file_id": match["file_id"] or match["flat"]}
        if match["plugin"] != "file":
            info["text"] = "online text" if match["plugin"] == "onlinetext" else match["plugin"]
        return info


COLLECTORS: dict[str, type[LMSCollector]] = {"canvas": CanvasCollector, "moodle": MoodleCollector}
