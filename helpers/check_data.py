"""``python -m helpers check-data FILE [FILE ...] [--model gpt-4o] [--json]``.

Checks chat fine-tuning JSONL files (``helpers.chat_data``) and shows, per file, the
examples, the errors by line, the warnings, and the distribution of the examples' sizes in tokens
(``chat_data.size_in_tokens``: the text of every message plus an upper bound of the formatting;
counting exactly, and estimating epochs and cost, is assignment 02's task).

Exit code: 0 when every file is valid, 1 when any file has an error, 2 when a file cannot be
read (or the model is unknown); 141 when the output pipe closes early (``| head``).

In a notebook, :func:`check_file` gives the same information as a dict (the ``--json``
object) and :func:`format_report` the text of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "gpt-4o"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="chat fine-tuning JSONL file(s)")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL,
        help="the base model to fine-tune: picks the tokenizer and the per-example token "
             "limit (default: %(default)s; e.g. gpt-4o-mini, gpt-4.1, gpt-35-turbo)",
    )
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per file (one per line) instead of tables")


def _issues(issues) -> list[dict[str, Any]]:
    return [{"line": i.line, "kind": i.kind, "message": i.message} for i in issues]


def check_file(path: str | Path, model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """Check one file and return the ``--json`` object: ``path, model, encoding, examples,
    valid, errors, warnings, size_tokens`` (the distribution of the examples' sizes in tokens).

    The distribution covers the examples without a per-example error.
    Raises ``FileNotFoundError``/``OSError`` for an unreadable path and ``ValueError`` for an
    unknown model."""
    return _check(path, model)[0]


def _check(path: str | Path, model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``--json`` object and the file facts the table shows besides it."""
    from helpers import chat_data, tokens

    report = chat_data.validate_file(path, model=model)
    enc = tokens.encoding_for(model)
    sizes = [chat_data.size_in_tokens(example["messages"], enc)
             for example in report.countable_examples]
    return {
        "path": str(path),
        "model": model,
        "encoding": report.encoding,
        "examples": report.n_lines,  # non-blank lines: the examples as the service counts them
        "valid": report.valid,
        "errors": _issues(report.errors),
        "warnings": _issues(report.warnings),
        "size_tokens": tokens.distribution(sizes),
    }, {
        "bom": report.has_bom,
        "line_endings": report.line_endings,
        "token_limit": tokens.training_token_limit(model),
    }


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return f"{value:,}"


def _line_ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3, 5"``."""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


def _issue_rows(issues: list[dict[str, Any]]) -> list[str]:
    """One row per issue; issues of the same kind with the same message (apart from the line)
    share one row that lists their lines."""
    groups: dict[tuple[str, str], list[int | None]] = {}
    for issue in issues:
        line = issue["line"]
        message = issue["message"]
        if line is not None:
            message = message.removeprefix(f"line {line}: ")
        groups.setdefault((issue["kind"], message), []).append(line)
    width = max(len(kind) for kind, _ in groups)
    rows = []
    for (kind, message), lines in groups.items():
        if lines == [None]:
            where = "file"
        elif len(lines) == 1:
            where = f"line {lines[0]}"
        else:
            where = f"lines {_line_ranges([n for n in lines if n is not None])}"
        rows.append(f"  {where:>9}  {kind:<{width}}  {message}")
    return rows


def format_report(result: dict[str, Any], file_info: dict[str, Any] | None = None) -> str:
    """The human table of one :func:`check_file` result (``file_info``: optional facts of the
    file, ``bom`` and ``line_endings``, shown when given)."""
    from helpers import tokens

    info = file_info or {}
    fmt = ""
    if "bom" in info:
        bom = "with BOM" if info["bom"] else "no BOM"
        fmt = f", UTF-8 {bom}, {info.get('line_endings') or 'no'} line ends"
    lines = [
        f"{result['path']}",
        f"  model {result['model']} ({result['encoding']}){fmt}",
        f"  examples   {result['examples']}    "
        + ("VALID" if result["valid"] else f"INVALID: {len(result['errors'])} error(s)"),
    ]
    for title, issues in (("errors", result["errors"]), ("warnings", result["warnings"])):
        if not issues:
            lines.append(f"  {title:<9}  none")
            continue
        lines.append(f"  {title} ({len(issues)}):")
        lines.extend(_issue_rows(issues))

    keys = ("count", "min", "max", "mean", "median", "p10", "p90")
    lines.append("  " + f"{'':<18}" + "".join(f"{k:>9}" for k in keys))
    dist = result["size_tokens"]
    lines.append("  " + f"{'tokens (size)':<18}" + "".join(f"{_num(dist[k]):>9}" for k in keys))
    limit = info.get("token_limit") or tokens.training_token_limit(result["model"])
    lines.append(f"  (each example's text plus an upper bound of the formatting; the limit is "
                 f"{limit:,} tokens per example)")
    if dist["count"] < result["examples"]:
        lines.append(f"  (sizes count the {dist['count']} examples without errors)")
    return "\n".join(lines)


def _unreadable(path: str, model: str, message: str) -> dict[str, Any]:
    """The ``--json`` object of a file that could not be read (kind ``unreadable``)."""
    empty = {"count": 0} | dict.fromkeys(("min", "max", "mean", "median", "p10", "p90"))
    return {
        "path": path, "model": model, "encoding": None, "examples": 0, "valid": False,
        "errors": [{"line": None, "kind": "unreadable", "message": message}], "warnings": [],
        "size_tokens": dict(empty),
    }


def run(args: argparse.Namespace) -> int:
    from helpers import tokens

    try:
        tokens.training_token_limit(args.model)
    except ValueError as exc:
        print(f"check-data: {exc}", file=sys.stderr)
        return 2

    try:
        return _run(args)
    except BrokenPipeError:  # `check-data ... | head`: stop quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool cut off this way


def _run(args: argparse.Namespace) -> int:
    status = 0
    for n, path in enumerate(args.files):
        try:
            result, info = _check(path, model=args.model)
        except OSError as exc:
            print(f"check-data: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps(_unreadable(path, args.model, str(exc))))
            status = 2
            continue
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            if n:
                print()
            print(format_report(result, info))
        if not result["valid"]:
            status = max(status, 1)
    return status
