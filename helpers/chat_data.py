"""Read a chat fine-tuning JSONL file and check every example before you upload it.

A fine-tuning file holds one JSON object per line::

    {"messages": [{"role": "system", "content": "..."},
                  {"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}]}

The reader accepts what editors and Azure produce: UTF-8 with or without a byte order mark
(Azure asks for one), CRLF or LF line ends, no final newline, blank lines (skipped). A line
that is not UTF-8 is reported and the other lines are still read. Nothing in the content makes
it raise: every problem becomes an :class:`Issue` with its 1-based line number, a kind and a
message that says how to fix it.

Error kinds (an interface: tests, the emulator and the CLI rely on these names):

- from OpenAI's cookbook: ``data_type``, ``missing_messages_list``, ``message_missing_key``,
  ``message_unrecognized_key``, ``unrecognized_role``, ``missing_content``,
  ``example_missing_assistant_message``;
- ours: ``invalid_json``, ``invalid_encoding``, ``invalid_weight``, ``example_too_long``,
  and the file-level ``too_few_examples`` and ``empty_file`` (line ``None``).

Warning kinds: ``missing_system_message``, ``missing_user_message``, ``duplicate_example``,
``no_trainable_assistant_message`` (every assistant message has weight 0),
``weight_on_non_assistant`` and ``byte_order_mark_inside`` (a BOM that is not at the start of
the file, usually two files pasted together).

Use::

    from helpers import chat_data
    report = chat_data.validate_file("data/training_set.jsonl", model="gpt-4o")
    report.valid, len(report.examples)
    print(chat_data.format_issues(report.errors))
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import tokens

#: The error kinds this module reports (see the module's docstring).
ERROR_KINDS: tuple[str, ...] = (
    "data_type",
    "missing_messages_list",
    "message_missing_key",
    "message_unrecognized_key",
    "unrecognized_role",
    "missing_content",
    "example_missing_assistant_message",
    "invalid_json",
    "invalid_encoding",
    "invalid_weight",
    "example_too_long",
    "too_few_examples",
    "empty_file",
)
WARNING_KINDS: tuple[str, ...] = (
    "missing_system_message",
    "missing_user_message",
    "duplicate_example",
    "no_trainable_assistant_message",
    "weight_on_non_assistant",
    "byte_order_mark_inside",
)

#: Keys a message may have (the cookbook's, plus the tool-calling keys the API accepts).
MESSAGE_KEYS: tuple[str, ...] = (
    "role", "content", "name", "function_call", "tool_calls", "tool_call_id", "weight",
)
#: Roles a message may have.
ROLES: tuple[str, ...] = ("system", "user", "assistant", "function", "tool")
#: Azure OpenAI and OpenAI refuse a training file with fewer examples.
MIN_EXAMPLES = 10

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_EXAMPLE_SHAPE = (
    '{"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}, '
    '{"role": "assistant", "content": "..."}]}'
)


@dataclass(frozen=True)
class Issue:
    """One problem: the 1-based ``line`` (``None`` for the whole file), its ``kind`` and a
    ``message`` that says what is wrong and how to fix it."""

    line: int | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = "file" if self.line is None else f"line {self.line}"
        return f"{where}: [{self.kind}] {self.message}"


@dataclass
class DataReport:
    """What :func:`validate_file` / :func:`validate_bytes` found in one file.

    ``examples`` are the parsed JSON objects of the file (in order, invalid ones included when
    they parsed as an object) and ``example_lines`` their 1-based line numbers. ``valid`` is
    true when there is no error (warnings do not count)."""

    path: str
    model: str
    examples: list[dict] = field(default_factory=list)
    example_lines: list[int] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    #: non-blank lines: what the service counts as examples
    n_lines: int = 0
    has_bom: bool = False
    #: "LF", "CRLF", "mixed" or None (a single line without a line end)
    line_endings: str | None = None
    encoding: str = ""
    #: the lines of ``examples`` that passed every per-example check (tokens can be counted)
    countable_lines: list[int] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def countable_examples(self) -> list[dict]:
        """The examples without a per-example error: those whose tokens can be counted."""
        ok = set(self.countable_lines)
        return [ex for ex, line in zip(self.examples, self.example_lines, strict=True) if line in ok]

    def error_lines(self) -> list[int]:
        """The sorted line numbers that have at least one error."""
        return sorted({i.line for i in self.errors if i.line is not None})

    def summary(self) -> str:
        state = "valid" if self.valid else f"INVALID ({len(self.errors)} errors)"
        count = f"{self.n_lines} examples"
        if len(self.examples) != self.n_lines:
            count += f" ({len(self.examples)} readable)"
        return (
            f"{self.path}: {count}, {state}, "
            f"{len(self.warnings)} warnings (model {self.model}, {self.encoding})"
        )

    def __str__(self) -> str:
        parts = [self.summary()]
        if self.errors:
            parts.append(format_issues(self.errors))
        if self.warnings:
            parts.append(format_issues(self.warnings))
        return "\n".join(parts)



def size_in_tokens(messages: Any, enc) -> int:
    """An example's size for the per-example limit: the tokens of every string value of its
    messages (their text, role and name), plus 4 per message and 3 for the reply, an upper bound
    of the formatting the service adds. (Counting it exactly, the cookbook's way, is assignment
    02's task.)"""
    total = 3
    for message in messages if isinstance(messages, list) else []:
        total += 4
        for value in (message.values() if isinstance(message, dict) else []):
            if isinstance(value, str):
                total += len(enc.encode(value, disallowed_special=()))
            elif isinstance(value, (list, dict)):
                total += len(enc.encode(json.dumps(value), disallowed_special=()))
    return total

def format_issues(issues: Iterable[Issue]) -> str:
    """One issue per line, ``line N  kind  message``, sorted by line (file-level first)."""
    issues = sorted(issues, key=lambda i: (-1 if i.line is None else i.line))
    if not issues:
        return "no issues"
    width = max(len(i.kind) for i in issues)
    rows = []
    for issue in issues:
        where = "file" if issue.line is None else f"line {issue.line}"
        message = issue.message.removeprefix(f"{where}: ")  # the column already says where
        rows.append(f"{where:>10}  {issue.kind:<{width}}  {message}")
    return "\n".join(rows)


# --------------------------------------------------------------------------- reading

def _split_lines(data: bytes) -> tuple[list[bytes], str | None]:
    """Physical lines without their ``\\n`` / ``\\r\\n`` ends, and which line ends were seen."""
    raw = data.split(b"\n")
    ends = set()
    lines = []
    for i, line in enumerate(raw):
        has_newline = i < len(raw) - 1
        if line.endswith(b"\r"):
            line = line[:-1]
            if has_newline:
                ends.add("CRLF")
        elif has_newline:
            ends.add("LF")
        lines.append(line)
    if lines and lines[-1] == b"" and len(lines) > 1:
        lines.pop()  # the final newline does not start another line
    style = None if not ends else ends.pop() if len(ends) == 1 else "mixed"
    return lines, style


def _bad_utf8(line: bytes, exc: UnicodeDecodeError) -> str:
    bad = line[exc.start:exc.end].hex(" ")
    return (
        f"not valid UTF-8 (bytes {bad} at byte {exc.start + 1}); the file was probably saved in "
        "another encoding (Windows-1252, Latin-1). Re-save it as UTF-8 (Azure OpenAI asks for "
        "UTF-8 with a byte order mark); the other lines were still checked."
    )


def _short(value: Any, limit: int = 40) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (RecursionError, ValueError):
        text = f"a deeply nested {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_bytes(
    data: bytes,
    name: str = "<bytes>",
    model: str = "gpt-4o",
    min_examples: int = MIN_EXAMPLES,
) -> DataReport:
    """Check the bytes of a chat fine-tuning JSONL file (see the module's docstring).

    ``model`` picks the tokenizer and the per-example token limit (``example_too_long``);
    an unknown or non-fine-tunable model raises ``ValueError`` (a wrong argument, not bad
    data). Bad content never raises."""
    limit = tokens.training_token_limit(model)
    enc = tokens.encoding_for(model)
    report = DataReport(path=str(name), model=model, encoding=tokens.encoding_name_for(model))

    if data.startswith(_UTF8_BOM):
        report.has_bom = True
        data = data[len(_UTF8_BOM):]
    elif data.startswith(_UTF16_BOMS):
        report.errors.append(Issue(
            1, "invalid_encoding",
            "line 1: the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8 "
            "(with a BOM for Azure OpenAI): in VS Code, 'Save with Encoding' > 'UTF-8 with BOM'.",
        ))
        return report

    lines, report.line_endings = _split_lines(data)
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue  # blank lines are skipped
        report.n_lines += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            report.errors.append(
                Issue(number, "invalid_encoding", f"line {number} is {_bad_utf8(raw, exc)}")
            )
            continue
        if "\x00" in text:
            report.errors.append(Issue(
                number, "invalid_encoding",
                f"line {number} contains NUL bytes, typical of a UTF-16 file; save the file as "
                "UTF-8 (with a BOM for Azure OpenAI).",
            ))
            continue
        if text.startswith("\ufeff"):
            text = text.lstrip("\ufeff")
            report.warnings.append(Issue(
                number, "byte_order_mark_inside",
                f"line {number} starts with a byte order mark, which belongs only at the start "
                "of the file (were two files pasted together?); remove it.",
            ))
            if not text.strip():
                report.n_lines -= 1
                continue
        try:
            example = json.loads(text)
        except RecursionError:
            report.errors.append(Issue(
                number, "invalid_json",
                f"line {number} nests JSON too deeply to read; an example is an object with a "
                f"flat list of messages, like {_EXAMPLE_SHAPE}",
            ))
            continue
        except json.JSONDecodeError as exc:
            hint = (
                " Each line must hold one complete JSON object: a pretty-printed (multi-line) "
                "object, a trailing comma or single quotes cause this."
            )
            report.errors.append(Issue(
                number, "invalid_json",
                f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}.{hint}",
            ))
            continue
        if not isinstance(example, dict):
            report.errors.append(Issue(
                number, "data_type",
                f"line {number} holds a JSON {type(example).__name__}, not an object; each line "
                f"must be one example shaped like {_EXAMPLE_SHAPE}",
            ))
            continue
        report.examples.append(example)
        report.example_lines.append(number)
        n_errors = len(report.errors)
        _check_example(example, number, report)
        if len(report.errors) > n_errors:
            continue
        n_tokens = size_in_tokens(example["messages"], enc)
        if n_tokens > limit:
            report.errors.append(Issue(
                number, "example_too_long",
                f"line {number} has about {n_tokens:,} tokens ({report.encoding}), over the "
                f"{limit:,}-token limit per training example of {model}; shorten it or split "
                "the conversation into several examples.",
            ))
            continue
        report.countable_lines.append(number)
        key = json.dumps(example, sort_keys=True, ensure_ascii=False)
        if key in seen:
            report.warnings.append(Issue(
                number, "duplicate_example",
                f"line {number} repeats line {seen[key]} exactly; a duplicate weighs that example "
                "twice in training (and leaks it into validation if it is there too). Remove it.",
            ))
        else:
            seen[key] = number

    if report.n_lines == 0:
        report.errors.append(Issue(
            None, "empty_file",
            f"{name} holds no examples (it is empty or blank); write one example per line, "
            f"shaped like {_EXAMPLE_SHAPE}",
        ))
    elif report.n_lines < min_examples:
        report.errors.append(Issue(
            None, "too_few_examples",
            f"{name} has {report.n_lines} example(s); fine-tuning needs at least {min_examples}. "
            "Add more examples (50 to 100 good ones usually show a clear effect).",
        ))
    return report


def _check_example(example: dict, number: int, report: DataReport) -> None:
    """The cookbook's per-example format checks, plus ``weight`` and the warnings."""

    def error(kind: str, message: str) -> None:
        issue = Issue(number, kind, f"line {number}: {message}")
        if issue not in report.errors:
            report.errors.append(issue)

    def warning(kind: str, message: str) -> None:
        report.warnings.append(Issue(number, kind, f"line {number}: {message}"))

    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        found = "no \"messages\" key" if "messages" not in example else (
            "an empty \"messages\" list" if messages == [] else
            f"\"messages\" as a {type(messages).__name__}, not a list"
        )
        keys = ", ".join(repr(k) for k in example) or "no keys"
        error("missing_messages_list",
              f"found {found} (keys: {keys}); each example needs a non-empty \"messages\" list, "
              f"like {_EXAMPLE_SHAPE}")
        return

    roles = []
    for index, message in enumerate(messages, start=1):
        where = f"message {index}"
        if not isinstance(message, dict):
            error("data_type",
                  f"{where} is a JSON {type(message).__name__}, not an object; write it as "
                  '{"role": "user", "content": "..."}')
            continue
        role = message.get("role")
        roles.append(role)
        has_call = bool(message.get("function_call") or message.get("tool_calls"))
        missing = [k for k in ("role", "content") if k not in message]
        if "content" in missing and has_call:
            missing.remove("content")  # an assistant tool call may leave out content
        if missing:
            error("message_missing_key",
                  f"{where} has no {' or '.join(repr(k) for k in missing)} key; every message "
                  'needs "role" and "content", e.g. {"role": "user", "content": "..."}')
        unknown = [k for k in message if k not in MESSAGE_KEYS]
        if unknown:
            error("message_unrecognized_key",
                  f"{where} has unrecognized key(s) {', '.join(repr(k) for k in unknown)}; "
                  f"allowed keys are {', '.join(MESSAGE_KEYS)} (check the spelling).")
        if "role" in message and role not in ROLES:
            error("unrecognized_role",
                  f"{where} has role {_short(role)}; use one of {', '.join(ROLES)} "
                  "(roles are lower-case).")
        if "content" in message:
            content = message["content"]
            if content is None and has_call:
                pass
            elif isinstance(content, list):
                if not content or not all(isinstance(p, dict) and "type" in p for p in content):
                    error("missing_content",
                          f"{where} has content as a list that is not a list of content parts "
                          '({"type": "text", "text": "..."}); write the content as a string.')
            elif not isinstance(content, str) or not content.strip():
                error("missing_content",
                      f"{where} ({_short(role)}) has content {_short(content)}; content must be "
                      "non-empty text (a string).")
        if "weight" in message:
            weight = message["weight"]
            if isinstance(weight, bool) or weight not in (0, 1):
                error("invalid_weight",
                      f"{where} has weight {_short(weight)}; weight must be 0 (do not train on "
                      "this assistant message) or 1 (train on it), as a number.")
            elif role != "assistant":
                warning("weight_on_non_assistant",
                        f"{where} ({_short(role)}) has a weight, which only counts on assistant "
                        "messages; remove it.")

    if "assistant" not in roles:
        error("example_missing_assistant_message",
              "the example has no assistant message; add the answer you want the model to learn "
              'as {"role": "assistant", "content": "..."} after the user message.')
    elif not [
        m for m in messages
        if isinstance(m, dict) and m.get("role") == "assistant" and m.get("weight", 1) != 0
    ]:
        warning("no_trainable_assistant_message",
                "every assistant message has weight 0, so the example teaches nothing; set "
                "weight 1 on the answer to learn.")
    if "system" not in roles:
        warning("missing_system_message",
                "no system message; examples usually share one system message (the one you "
                "will send at inference), so add it.")
    if "user" not in roles:
        warning("missing_user_message",
                "no user message; add the question the assistant answers.")


def validate_file(
    path: str | Path,
    model: str = "gpt-4o",
    min_examples: int = MIN_EXAMPLES,
) -> DataReport:
    """Read and check the chat fine-tuning JSONL file at ``path`` (see :func:`validate_bytes`).

    Bad content never raises; a path that cannot be read raises ``FileNotFoundError`` /
    ``OSError`` with a message that names it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no such file (looked in {Path.cwd()}); check the path and the file name."
        ) from None
    except IsADirectoryError:
        raise IsADirectoryError(
            f"{path} is a folder; give the path of a .jsonl file inside it."
        ) from None
    except OSError as exc:
        raise OSError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    return validate_bytes(data, name=str(path), model=model, min_examples=min_examples)
