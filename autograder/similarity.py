"""Similarity of answers: ``python -m autograder similarity ASSIGNMENT`` compares the answer cells
of every submission in ``submitted/*/ASSIGNMENT`` (and its language variants) and writes an HTML
report, ``similarity/ASSIGNMENT.html``, that ranks the pairs and shows their matching code side
by side.

- Answer cells are the cells with nbgrader metadata ``solution: true``: code and written
  (markdown) answers, of the assignment's notebooks.
- Matching is copydetect's (https://github.com/blingenf/copydetect) winnowing: code is
  tokenised and every identifier replaced by one letter, so renamed variables still match;
  fingerprints are k-grams of that text, compared as sets, so reordered lines still match.
  Written answers are fingerprinted as plain text.
- The release's own code and text (the scaffold inside answer cells, the given code, the
  instructions) are boilerplate: their fingerprints are removed before comparing, so
  untouched or nearly untouched submissions do not look alike.
- A pair's score is the mean of the two shares: how much of A's answers is found in B, and how
  much of B's in A.

Pairs are listed for an instructor to read, never penalised: nothing here touches the gradebook.
Similar answers have innocent causes too (a short answer with one natural form, a study group,
the same tutorial). Every student string is escaped in the report, which also forbids scripts
(Content-Security-Policy), so a submission cannot run code in the browser that opens it.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nbformat
from jinja2 import Environment
from markupsafe import Markup, escape

from autograder import grading
from autograder.i18n import split_variant

#: copydetect's noise threshold: characters of (filtered) text a fingerprint spans. Shorter
#: matches are noise; its default, 25, is what the course's test class was checked with.
K = 25
#: Pairs shown side by side in the report (all pairs are in its table, up to TABLE_ROWS).
DETAIL = 20
TABLE_ROWS = 500


@dataclass
class Answers:
    """One submission's answer cells, joined into a code document and a text document."""

    student: str
    assignment: str
    code: str = ""
    text: str = ""
    cells: int = 0

    @property
    def label(self) -> str:
        _, lang = split_variant(self.assignment)
        return f"{self.student} ({lang})" if lang else self.student


@dataclass
class Pair:
    """Two submissions compared: ``share_a`` is how much of A's answers is found in B."""

    a: Answers
    b: Answers
    share_a: float
    share_b: float
    code: tuple[float, float]
    text: tuple[float, float]
    identical: bool
    highlights: dict[str, tuple[Markup, Markup]] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return (self.share_a + self.share_b) / 2


@dataclass
class Result:
    """What :func:`similarity` found; ``pairs`` are ranked, the most similar first."""

    assignment: str
    submissions: list[Answers]
    pairs: list[Pair]
    notes: list[str]
    report: Path | None = None


def _tag(text: str) -> str:
    """A notebook or cell name, reduced to characters that cannot break a comment line."""
    return re.sub(r"[^\w.-]+", "_", str(text))[:80]


def _answer_ids(release: Path) -> dict[str, set[str]]:
    ids = {}
    for path in sorted(release.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        ids[path.name] = {c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells
                          if c.metadata.get("nbgrader", {}).get("solution")} - {None}
    return ids


def read_answers(folder: Path, student: str, assignment: str,
                 answer_ids: dict[str, set[str]]) -> tuple[Answers, list[str]]:
    """The answer cells of one submission folder, and notes on what could not be read."""
    answers = Answers(student, assignment)
    notes = []
    code, text = [], []
    for notebook, ids in answer_ids.items():
        path = folder / notebook
        if not path.is_file():
            notes.append(f"{student}, {assignment}: no {notebook}")
            continue
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is reported, not fatal
            notes.append(f"{student}, {assignment}: {notebook} is not a readable notebook "
                         f"({type(exc).__name__})")
            continue
        count = 0
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if not (isinstance(meta, dict) and meta.get("solution")
                    and meta.get("grade_id") in ids):
                continue
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            head = f"{_tag(notebook)} · {_tag(meta['grade_id'])}"
            if cell.get("cell_type") == "code":
                code.append(f"# ── {head} ──\n{source.rstrip()}\n")
            else:
                text.append(f"── {head} ──\n{source.rstrip()}\n")
            count += 1
        answers.cells += count
        if not count:
            notes.append(f"{student}, {assignment}: {notebook} has no answer cell with its "
                         f"nbgrader metadata (a notebook rebuilt by hand?)")
    answers.code, answers.text = "\n".join(code), "\n".join(text)
    return answers, notes


def _release_text(release: Path) -> tuple[str, str]:
    """Every code and markdown cell of a release: the boilerplate."""
    code, text = [], []
    for path in sorted(release.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            (code if cell.cell_type == "code" else text).append(cell.source)
    return "\n\n".join(code), "\n\n".join(text)


class _Fingerprints:
    """copydetect fingerprints of the code and text documents, with the boilerplate removed."""

    def __init__(self, k: int, boilerplate_code: str, boilerplate_text: str) -> None:
        import numpy as np

        self.k = k
        self.bp_code = np.unique(np.array(
            list(self._fingerprint(boilerplate_code, code=True).hashes), dtype=np.int64))
        self.bp_text = np.unique(np.array(
            list(self._fingerprint(boilerplate_text, code=False).hashes), dtype=np.int64))

    def _fingerprint(self, doc: str, *, code: bool, boilerplate=None):
        from copydetect import CodeFingerprint

        return CodeFingerprint(
            "answers.py" if code else "answers.md", self.k, 1, boilerplate=boilerplate,
            filter=code, language="python" if code else None, fp=io.StringIO(doc))

    def of(self, answers: Answers) -> tuple:
        return (self._fingerprint(answers.code, code=True, boilerplate=self.bp_code),
                self._fingerprint(answers.text, code=False, boilerplate=self.bp_text))


def _highlight(doc: str, slices) -> Markup:
    """The document, escaped, with the matching spans in <mark>. (copydetect's
    highlight_overlap escapes, but returns the text unescaped when nothing matches.)"""
    from copydetect.utils import highlight_overlap

    if getattr(slices, "size", 0) == 0 or len(slices.shape) != 2 or slices.shape[1] == 0:
        return Markup(escape(doc))
    marked, _ = highlight_overlap(doc, slices, "<mark>", "</mark>", escape_html=True)
    return Markup(marked)


def compare(submissions: list[Answers], boilerplate: tuple[str, str], *, k: int = K,
            detail: int = DETAIL) -> list[Pair]:
    """Every pair of submissions of different students, the most similar first; the first
    ``detail`` pairs carry their highlighted code."""
    from copydetect import compare_files

    prints = _Fingerprints(k, *boilerplate)
    docs = [prints.of(s) for s in submissions]
    found = []
    for i, a in enumerate(submissions):
        for j in range(i + 1, len(submissions)):
            b = submissions[j]
            if a.student == b.student:  # one student's two language variants
                continue
            parts, slices = {}, {}
            share = [0.0, 0.0]
            size = [0.0, 0.0]
            for kind, fa, fb in (("code", docs[i][0], docs[j][0]),
                                 ("text", docs[i][1], docs[j][1])):
                _, (sa, sb), slices[kind] = compare_files(fa, fb)
                sa = float(sa) if fa.token_coverage else 0.0
                sb = float(sb) if fb.token_coverage else 0.0
                parts[kind] = (sa, sb)
                share[0] += sa * fa.token_coverage
                share[1] += sb * fb.token_coverage
                size[0] += fa.token_coverage
                size[1] += fb.token_coverage
            pair = Pair(a, b, float(share[0] / size[0]) if size[0] else 0.0,
                        float(share[1] / size[1]) if size[1] else 0.0, parts["code"], parts["text"],
                        identical=bool(size[0]) and (a.code, a.text) == (b.code, b.text))
            found.append((pair, slices))
    found.sort(key=lambda f: (-f[0].score, f[0].a.label, f[0].b.label))
    for pair, slices in found[:detail]:
        pair.highlights = {
            kind: (_highlight(getattr(pair.a, kind), slices[kind][0]),
                   _highlight(getattr(pair.b, kind), slices[kind][1]))
            for kind in ("code", "text")}
    return [pair for pair, _ in found]


def family(root: Path, assignment: str, variants: bool = True) -> list[str]:
    """The assignment and, with ``variants``, its language variants that the course has."""
    base, _ = split_variant(assignment)
    names = grading.assignments(root)
    if not variants:
        return [assignment]
    return [n for n in names if split_variant(n)[0] == base]


def similarity(root: str | os.PathLike | None, assignment: str, *, to: str | os.PathLike | None = None,
               variants: bool = True, k: int = K, detail: int = DETAIL) -> Result:
    """Compare the answers of every submission of ``assignment`` (and its variants) and write
    the HTML report (``similarity/<assignment>.html`` unless ``to`` is given)."""
    root = grading.course_root(root)
    known = grading.assignments(root)
    if assignment not in known:
        raise grading.GradingError(f"no assignment {assignment!r} in {root / 'source'}; the "
                                   f"course has: {', '.join(known) or 'none'}")
    submissions, notes = [], []
    code_bp, text_bp = [], []
    for name in family(root, assignment, variants):
        release = root / "release" / name
        if not release.is_dir():
            notes.append(f"{name}: no release/{name} (run `python -m autograder release`); "
                         f"its submissions were compared without removing its boilerplate")
            release = root / "source" / name
        ids = _answer_ids(release)
        code, text = _release_text(release)
        # the untouched answer cells, joined as a submission's are: their cell headings too
        scaffold, _ = read_answers(release, "release", name, ids)
        code_bp += [code, scaffold.code]
        text_bp += [text, scaffold.text]
        for student in grading.submissions(root, name):
            answers, found = read_answers(root / "submitted" / student / name, student, name, ids)
            notes += found
            if answers.cells:
                submissions.append(answers)
    pairs = compare(submissions, ("\n\n".join(code_bp), "\n\n".join(text_bp)), k=k,
                    detail=detail)
    result = Result(assignment, submissions, pairs, notes)
    path = Path(to) if to else root / "similarity" / f"{assignment}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result, k=k), encoding="utf-8")
    result.report = path
    return result


def summary(result: Result, rows: int = 10) -> str:
    """The top pairs as the command prints them."""
    lines = [(f"{len(result.submissions)} submissions of {result.assignment}, "
             f"{len(result.pairs)} pairs compared")]
    if result.pairs:
        width = max(len(p.a.label) for p in result.pairs[:rows])
        lines.append(f"{'rank':>4}  {'score':>5}  {'student':<{width}}  student")
        for rank, pair in enumerate(result.pairs[:rows], 1):
            lines.append(f"{rank:>4}  {pair.score:>5.0%}  {pair.a.label:<{width}}  {pair.b.label}"
                         + ("  (identical answers)" if pair.identical else ""))
    lines += [f"note: {n}" for n in result.notes]
    if result.report:
        lines.append(f"report: {result.report}")
    return "\n".join(lines)


TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Similar answers: {{ result.assignment }}</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 110rem; padding: 0 1rem; }
table { border-collapse: collapse; } td, th { padding: .2rem .6rem; border-bottom: 1px solid #ddd; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.note { background: #f4f6fb; border-left: 4px solid #5470c6; padding: .5rem 1rem; }
.pair { margin-top: 2.5rem; border-top: 2px solid #333; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
pre { background: #fafafa; border: 1px solid #e3e3e3; padding: .6rem; overflow-x: auto;
      white-space: pre-wrap; word-break: break-word; font-size: 13px; }
mark { background: #ffd86b; }
</style></head><body>
<h1>Similar answers: {{ result.assignment }}</h1>
<p class="note">These pairs are listed for you to read; nothing here changes a grade. Similar
answers have innocent causes too: a short answer with one natural form, a study group, the same
tutorial. Read the matching code before you talk to anyone.</p>
<p>{{ result.submissions|length }} submissions ({{ assignments }}), {{ result.pairs|length }}
pairs, compared {{ when }}. Answer cells only (nbgrader <code>solution</code> cells). Code is
compared after every identifier is renamed, with {{ k }}-character fingerprints (copydetect's
winnowing); the release's own code and text are ignored. <b>score</b>: the mean of the two
shares; <b>A in B</b>: how much of A's answers is found in B.</p>
{% if result.notes %}<h2>Not compared</h2><ul>{% for n in result.notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
<h2>Pairs, most similar first</h2>
<table><tr><th>#</th><th>A</th><th>B</th><th>score</th><th>A in B</th><th>B in A</th>
<th>code</th><th>written</th><th></th></tr>
{% for p in result.pairs[:rows] %}<tr><td class="n">{{ loop.index }}</td><td>{{ p.a.label }}</td><td>{{ p.b.label }}</td>
<td class="n">{{ pct(p.score) }}</td><td class="n">{{ pct(p.share_a) }}</td><td class="n">{{ pct(p.share_b) }}</td>
<td class="n">{{ pct(p.code[0]) }} / {{ pct(p.code[1]) }}</td><td class="n">{{ pct(p.text[0]) }} / {{ pct(p.text[1]) }}</td>
<td>{% if p.highlights %}<a href="#pair-{{ loop.index }}">side by side</a>{% endif %}{% if p.identical %} identical{% endif %}</td></tr>
{% endfor %}</table>
{% if result.pairs|length > rows %}<p>{{ result.pairs|length - rows }} more pairs, less similar, not listed.</p>{% endif %}
{% for p in result.pairs if p.highlights %}
<section class="pair" id="pair-{{ loop.index }}">
<h2>#{{ loop.index }} {{ p.a.label }} and {{ p.b.label }}: {{ pct(p.score) }}</h2>
{% for kind, title in (("code", "Code answers"), ("text", "Written answers")) %}
<h3>{{ title }}</h3>
<div class="sides"><div><b>{{ p.a.label }}</b><pre>{{ p.highlights[kind][0] }}</pre></div>
<div><b>{{ p.b.label }}</b><pre>{{ p.highlights[kind][1] }}</pre></div></div>
{% endfor %}</section>
{% endfor %}
</body></html>
"""


def render(result: Result, *, k: int = K, rows: int = TABLE_ROWS) -> str:
    """The self-contained HTML report. Jinja escapes every value; the highlighted documents
    are escaped before their <mark> tags are added (:func:`_highlight`)."""
    env = Environment(autoescape=True)
    names = sorted({s.assignment for s in result.submissions}) or [result.assignment]
    return env.from_string(TEMPLATE).render(
        result=result, k=k, rows=rows, assignments=", ".join(names),
        when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        pct=lambda x: f"{x:.0%}")
