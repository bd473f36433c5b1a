"""LMS in: ``python -m autograder collect ARCHIVE.zip ASSIGNMENT`` imports the submissions an LMS
lets you download (Canvas's *Download Submissions*, Moodle's *Download all submissions*; their
file naming is in :mod:`autograder.lms_names`) into ``submitted/<student>/<assignment>/``.

The roster (:mod:`autograder.roster`) maps the LMS's ids or names to the course's student ids.
A student's own zip inside the download is unpacked too. Data files stay beside the notebook
(a flat Canvas upload of ``training_set.jsonl`` lands where the release keeps it,
``data/training_set.jsonl``). A notebook of a language variant (``metadata.course_i18n``) goes
to that variant's folder (``02-gpt4o-jsonl-de``).

Reported: files whose LMS identity is not in the roster, names that fit neither LMS, late
submissions, duplicates (the same file twice, two LMS identities for one student, submissions
for two language variants), roster students with no submission, and an existing different
submission, which is never overwritten without ``--replace``.

Built on nbgrader's ``zip_collect`` where that serves: the file-name parsers are its
``FileNameCollectorPlugin`` (:mod:`autograder.lms_names`). Not its ``ExtractorPlugin``
(setuptools' ``unpack_archive`` writes every member and every archive inside with no limit on
size, count or expansion ratio, so a zip bomb fills the disk, and a symbolic-link member becomes
a file) nor ``ZipCollectApp``'s transfer (it aborts the whole run on a duplicate file without
timestamps, which LMS downloads never carry, clears an existing submission folder with
``--force``, and knows neither a roster nor a late marker). Here :mod:`autograder.safezip`
checks the whole archive before a byte is written: an unsafe member stops the import with a
message naming it; in a student's own zip it rejects that student's submission only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from autograder import grading
from autograder import roster as roster_mod
from autograder.i18n import split_variant
from autograder.lms_names import COLLECTORS, LMSCollector, strip_copy_suffix
from autograder.safezip import ArchiveError, Budget, Limits, copy_member, members, safe_path

#: Files an operating system adds to an archive; never part of a submission.
JUNK = re.compile(r"(?i)^(?:\.ds_store|thumbs\.db|desktop\.ini|\._.*)$")
JUNK_DIRS = {"__MACOSX", ".ipynb_checkpoints", "__pycache__"}


class CollectError(grading.GradingError):
    """The archive cannot be imported; the message names the file or member and the fix."""


def _strip_wrapper(members: list, pattern: Callable[[str], bool]) -> list:
    """Remove one folder that wraps every member (a download re-zipped with its folder), unless
    that folder is itself part of the LMS's naming."""
    tops = {m[1].parts[0] for m in members if len(m[1].parts) > 1}
    if len(tops) == 1 and all(len(m[1].parts) > 1 for m in members):
        top = tops.pop()
        if not pattern(f"{top}/x"):
            return [(m[0], PurePosixPath(*m[1].parts[1:])) + tuple(m[2:]) for m in members]
    return members


def _is_junk(path: PurePosixPath) -> bool:
    return bool(JUNK.match(path.name)) or any(p in JUNK_DIRS for p in path.parts[:-1])


# --------------------------------------------------------------------------- the report

@dataclass
class StudentResult:
    """What happened to one student's submission."""

    student: str
    assignment: str
    lms: str  # the LMS identity, e.g. "Canvas user 48213 (doejane)"
    #: collected, replaced, unchanged (the same files are there), kept existing (a different
    #: submission is there), rejected (see notes), no file; dry run: would collect / replace
    status: str
    files: list[str] = field(default_factory=list)
    late: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class CollectReport:
    """The outcome of one import; :func:`format_report` prints it."""

    archive: str
    assignment: str
    lms: str
    dry_run: bool = False
    students: list[StudentResult] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    unrecognised: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def late(self) -> list[StudentResult]:
        return [s for s in self.students if s.late]

    @property
    def needs_attention(self) -> bool:
        """Something was not imported: an unknown identity or name, a rejected or kept
        submission, or an unresolved duplicate."""
        return bool(self.unmatched or self.unrecognised or any(
            s.status in ("rejected", "kept existing", "no file") for s in self.students))

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"late": [s.student for s in self.late]}, indent=1,
                          ensure_ascii=False)


def format_report(report: CollectReport) -> str:
    """The report as the command prints it: one section per kind of outcome."""
    counts: dict[str, int] = {}
    for student in report.students:
        counts[student.status] = counts.get(student.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing"
    lines = [(f"{report.archive} ({report.lms}) -> submitted/*/{report.assignment}"
              f"{' (dry run: nothing written)' if report.dry_run else ''}: "
              f"{len(report.students)} matched submissions: {tally}")]

    def section(title: str, items: list[str]) -> None:
        if items:
            lines.append(f"\n{title} ({len(items)}):")
            lines.extend(f"  {item}" for item in items)

    section("submissions", [
        f"{s.student:<16} {s.status:<13} {s.assignment}  {', '.join(s.files) or '-'}"
        + ("  LATE" if s.late else "") + "".join(f"\n{'':18}{n}" for n in s.notes)
        for s in report.students])
    section("late", [f"{s.student} ({s.lms})" for s in report.late])
    section("not in the roster: not imported", report.unmatched)
    section("file names that fit no LMS naming: not imported", report.unrecognised)
    section("duplicates", report.duplicates)
    section("ignored", report.ignored)
    section("in the roster, no submission in this archive", report.missing)
    return "\n".join(lines)


# --------------------------------------------------------------------------- collecting

@dataclass
class _Entry:
    path: PurePosixPath  # inside the student's submission
    order: int
    size: int
    open: Callable[[], IO[bytes]]
    origin: str  # for messages


@dataclass
class _Upload:
    key: str  # the LMS identity
    name: str
    late: bool = False
    entries: list[_Entry] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _expected(root: Path, assignment: str) -> tuple[set[str], dict[str, str]]:
    """The assignment's notebook names, and its data files by name -> path in the release."""
    source = root / "source" / assignment
    release = root / "release" / assignment
    notebooks = {p.name for p in source.glob("*.ipynb")}
    base = release if release.is_dir() else source
    data = {}
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base)
        if path.is_file() and path.suffix != ".ipynb" and not _is_junk(PurePosixPath(*rel.parts)):
            data.setdefault(path.name, rel.as_posix())
    return notebooks, data


def _detect(listed: list, lms: str) -> tuple[str, LMSCollector, list]:
    """The LMS whose naming fits the most members (or the one asked for), its collector, and
    the members without a folder that wraps them all."""
    if lms != "auto" and lms not in COLLECTORS:
        raise CollectError(f"unknown LMS {lms!r}: use canvas, moodle or auto")
    best = None
    for name, cls in COLLECTORS.items():
        if lms not in ("auto", name):
            continue
        collector = cls()
        stripped = _strip_wrapper(listed, lambda p, c=collector: bool(c.parse(p)))
        fits = sum(1 for _, p in stripped if not _is_junk(p) and collector.parse(p.as_posix()))
        if best is None or fits > best[0]:
            best = (fits, name, collector, stripped)
    fits, name, collector, stripped = best
    if not fits:
        paths = [p.as_posix() for _, p in listed if not _is_junk(p)]
        shown = ", ".join(paths[:4]) + (" ..." if len(paths) > 4 else "")
        examples = {"canvas": "Canvas's ('doejane_48213_901_notebook.ipynb')",
                    "moodle": "Moodle's ('Jane Doe_1234567_assignsubmission_file_/notebook.ipynb')"}
        wanted = " or ".join(v for k, v in examples.items() if lms in ("auto", k))
        raise CollectError(
            f"no member's name fits {wanted} naming: {shown or 'the archive is empty'}. Is this "
            f"the LMS's bulk download of submissions?")
    return name, collector, stripped


def _expand(upload: _Upload, stack: ExitStack, budget: Budget, tmp: Path) -> None:
    """Unpack each zip the student uploaded into its members (one level)."""
    expanded = []
    for entry in upload.entries:
        if entry.path.suffix.lower() != ".zip":
            expanded.append(entry)
            continue
        where = f"{entry.origin} (the student's own zip)"
        handle, name = tempfile.mkstemp(suffix=".zip", dir=tmp)
        os.close(handle)
        local = Path(name)
        try:
            with entry.open() as source:
                copy_member(source, local, entry.size, budget.limits.member_bytes, where)
            inner = stack.enter_context(zipfile.ZipFile(local))
            found = members(inner, where, budget)
        except zipfile.BadZipFile as exc:
            upload.problems.append(f"{where} is not a readable zip ({exc})")
            continue
        except ArchiveError as exc:
            upload.problems.append(str(exc).replace("Nothing was imported", "Not imported"))
            continue
        found = _strip_wrapper([(i, p) for i, p in found if not _is_junk(p)], lambda _: False)
        prefix = entry.path.parent
        for info, path in found:
            expanded.append(_Entry(prefix / path, entry.order, info.file_size,
                                   lambda z=inner, i=info: z.open(i), f"{where}: {path}"))
    upload.entries = expanded


def _place(upload: _Upload, notebooks: set[str], data: dict[str, str],
           canvas: bool) -> tuple[dict[str, _Entry], list[str], list[str]]:
    """Where each file of one submission goes: {destination: entry}, notes, duplicates."""
    notes: list[str] = []
    duplicates: list[str] = []
    expected_names = notebooks | set(data)
    candidates = []
    for entry in upload.entries:
        name = entry.path.name
        plain = strip_copy_suffix(name)
        if name not in expected_names and plain in expected_names:
            notes.append(f"{entry.path} taken as {plain} (a re-upload's or copy's number)")
            candidates.append((entry, entry.path.with_name(plain), False))
        else:
            candidates.append((entry, entry.path, True))
    books = [c for c in candidates if c[1].suffix == ".ipynb"]
    known = sorted((c for c in books if c[1].name in notebooks), key=lambda c: len(c[1].parts))
    base = known[0][1].parent if known else PurePosixPath()
    if not known and len(books) == 1 and len(notebooks) == 1:
        entry, path, _ = books[0]
        target = next(iter(notebooks))
        notes.append(f"{entry.path} renamed to {target}: the assignment's only notebook")
        candidates = [(e, p.with_name(target) if e is entry else p, exact)
                      for e, p, exact in candidates]
        base = path.parent
    placed: dict[str, list[tuple[_Entry, bool]]] = {}
    for entry, path, exact in candidates:
        rel = path.relative_to(base) if path.is_relative_to(base) else path
        dest = rel.as_posix()
        if len(rel.parts) == 1 and rel.name in data:
            dest = data[rel.name]  # a flat upload of a data file goes where the release has it
        placed.setdefault(dest, []).append((entry, exact))
    chosen = {}
    for dest, options in placed.items():
        if len(options) == 1:
            chosen[dest] = options[0][0]
            continue
        names = ", ".join(str(e.path) for e, _ in options)
        if canvas:  # attachment ids grow with every upload: the largest is the newest
            keep = max(options, key=lambda o: o[0].order)[0]
            duplicates.append(f"{dest} uploaded {len(options)} times ({names}): kept "
                              f"{keep.path}, the newest")
            chosen[dest] = keep
            continue
        exact = [e for e, is_exact in options if is_exact]
        if len(exact) == 1:
            duplicates.append(f"{dest} present {len(options)} times ({names}): kept "
                              f"{exact[0].path}, the one with that exact name")
            chosen[dest] = exact[0]
        else:
            duplicates.append(f"{dest} present {len(options)} times ({names}) with nothing to "
                              f"tell which is the submission: none imported")
            chosen[dest] = None
    if any(e is None for d, e in chosen.items() if d.endswith(".ipynb")):
        raise CollectError("; ".join(duplicates))
    return {d: e for d, e in chosen.items() if e is not None}, notes, duplicates


def _language(path: Path) -> str | None:
    """A notebook's language: its variant's (``metadata.course_i18n.language``), ``"en"``
    without one, None when it is not a readable notebook (grading will say so)."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        lang = (meta.get("course_i18n") or {}).get("language", "en")
    except (OSError, ValueError, AttributeError):
        return None
    return lang if isinstance(lang, str) else None


def _same_tree(a: Path, b: Path) -> bool:
    def files(root: Path) -> dict[str, Path]:
        return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}

    fa, fb = files(a), files(b)
    return fa.keys() == fb.keys() and all(fa[k].read_bytes() == fb[k].read_bytes() for k in fa)


def _iter_uploads(zf: zipfile.ZipFile, listed: list, collector: LMSCollector,
                  report: CollectReport) -> Iterator[_Upload]:
    uploads: dict[str, _Upload] = {}
    for info, path in listed:
        text = path.as_posix()
        if _is_junk(path):
            report.ignored.append(f"{text} (a file the operating system adds)")
            continue
        parsed = collector.parse(text)
        if parsed is None:
            report.unrecognised.append(text)
            continue
        upload = uploads.setdefault(parsed["student_id"],
                                    _Upload(parsed["student_id"], parsed["name"]))
        upload.late |= parsed["late"]
        upload.name = upload.name or parsed["name"]
        if parsed.get("text"):
            upload.texts.append(f"{text} ({parsed['text']}, not a file: not imported)")
            continue
        file_path = safe_path(parsed["file_id"], report.archive)
        if file_path is None or _is_junk(file_path):
            report.ignored.append(f"{text} (a file the operating system adds)")
            continue
        upload.entries.append(_Entry(file_path, parsed["order"], info.file_size,
                                     lambda i=info: zf.open(i), text))
    yield from uploads.values()


def collect(root: str | os.PathLike | None, archive: str | os.PathLike, assignment: str, *,
            roster: roster_mod.Roster, lms: str = "auto", replace: bool = False,
            dry_run: bool = False, limits: Limits | None = None) -> CollectReport:
    """Import an LMS download into ``submitted/<student>/<assignment>/``; see the module's doc.
    Raises CollectError (an ArchiveError for an unsafe archive) before writing anything when
    the archive itself cannot be imported."""
    root = grading.course_root(root)
    archive = Path(archive)
    known = grading.assignments(root)
    if assignment not in known:
        raise CollectError(f"no assignment {assignment!r} in {root / 'source'}; the course has: "
                           f"{', '.join(known) or 'none'}")
    base, _ = split_variant(assignment)
    family = {lang or "en": name for name in known for b, lang in [split_variant(name)]
              if b == base}
    notebooks, data = _expected(root, assignment)
    if not archive.is_file():
        raise CollectError(f"no file {archive}: pass the zip the LMS let you download")
    limits = limits or Limits()
    budget = Budget(limits)
    submitted = root / "submitted"
    with ExitStack() as stack:
        try:
            zf = stack.enter_context(zipfile.ZipFile(archive))
        except zipfile.BadZipFile as exc:
            raise CollectError(f"{archive}: not a zip archive ({exc}); pass the LMS's download "
                               f"as it is") from exc
        listed = members(zf, archive.name, budget)
        style, collector, listed = _detect(listed, lms)
        report = CollectReport(str(archive), assignment, collector.lms, dry_run)
        if not dry_run:
            submitted.mkdir(parents=True, exist_ok=True)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix=".collect-", dir=None if dry_run else submitted)))
        seen: dict[str, list[str]] = {}
        plans = []
        for upload in _iter_uploads(zf, listed, collector, report):
            who = f"{collector.lms} {'user' if style == 'canvas' else 'participant'} {upload.key}"
            who += f" ({upload.name})" if upload.name else ""
            person, how = roster.match(collector.lms_column, upload.key, upload.name)
            if person is None:
                files = [str(e.origin) for e in upload.entries] + upload.texts
                report.unmatched.append(f"{who}: {how}; files: {', '.join(files) or 'none'}")
                continue
            seen.setdefault(person.student, []).append(who)
            plans.append((person, how, who, upload))
        for student, identities in seen.items():
            if len(identities) > 1:
                report.duplicates.append(f"{student}: {len(identities)} LMS identities map to "
                                         f"this student ({'; '.join(identities)}): none imported")
        for person, how, who, upload in plans:
            result = StudentResult(person.student, assignment, who, "rejected", late=upload.late)
            report.students.append(result)
            if how:
                result.notes.append(f"{how}: add this student's {collector.lms_column} to the "
                                    f"roster")
            result.notes.extend(upload.texts)
            if len(seen[person.student]) > 1:
                result.notes.append("two LMS identities for one student: see duplicates")
                continue
            _expand(upload, stack, budget, tmp)
            if upload.problems:
                result.notes.extend(upload.problems)
                continue
            if not upload.entries:
                result.status = "no file"
                continue
            try:
                placed, notes, dups = _place(upload, notebooks, data, style == "canvas")
            except CollectError as exc:
                result.notes.append(str(exc))
                report.duplicates.append(f"{person.student}: {exc}")
                continue
            result.notes.extend(notes)
            report.duplicates.extend(f"{person.student}: {d}" for d in dups)
            stage = tmp / person.student / "files"
            try:
                for dest, entry in sorted(placed.items()):
                    target = stage / dest
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with entry.open() as source:
                        copy_member(source, target, entry.size, limits.member_bytes, entry.origin)
            except (ArchiveError, zipfile.BadZipFile, OSError) as exc:
                result.notes.append(f"could not unpack: {exc}")
                continue
            result.files = sorted(placed)
            langs = {_language(stage / d) for d in placed if d.endswith(".ipynb")} - {None}
            if len(langs) == 1 and (lang := langs.pop()) in family and family[lang] != assignment:
                result.assignment = family[lang]
                result.notes.append(f"a notebook in {lang!r}: imported into {result.assignment}")
            _install(result, stage, submitted, family, replace, dry_run, report)
        matched = {s.student for s in report.students} | set(seen)
        report.missing = [f"{p.student}" + (f" ({p.name})" if p.name else "")
                          for p in roster.people if p.student not in matched]
    return report


def _install(result: StudentResult, stage: Path, submitted: Path, family: dict,
             replace: bool, dry_run: bool, report: CollectReport) -> None:
    """Move a staged submission into place, never over a different one without ``replace``."""
    target = submitted / result.student / result.assignment
    for other in sorted(set(family.values()) - {result.assignment}):
        if (submitted / result.student / other).is_dir():
            report.duplicates.append(
                f"{result.student}: also has a submission for {other}; grade one of them and "
                f"remove the other folder")
    exists = target.is_dir() and any(target.iterdir())
    if exists and _same_tree(stage, target):
        result.status = "unchanged"
        return
    if exists and not replace:
        result.status = "kept existing"
        result.notes.append(f"submitted/{result.student}/{result.assignment} already holds a "
                            f"different submission: nothing written (--replace overwrites it)")
        return
    if dry_run:
        result.status = "would replace" if exists else "would collect"
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if exists:
        shutil.rmtree(target)
    elif target.exists():  # an empty folder or a stray file
        target.rmdir() if target.is_dir() else target.unlink()
    os.replace(stage, target)
    result.status = "replaced" if exists else "collected"
