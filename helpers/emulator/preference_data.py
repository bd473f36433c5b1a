"""Validation of DPO (preference) training files, as Azure documents the format.

One JSON object per line (Microsoft Learn, "Direct preference optimization", dataset format)::

    {"input": {"messages": [{"role": "system", "content": "..."},
                            {"role": "user", "content": "..."}],
               "tools": [], "parallel_tool_calls": true},
     "preferred_output": [{"role": "assistant", "content": "..."}],
     "non_preferred_output": [{"role": "assistant", "content": "..."}]}

- ``input.messages``: the prompt, a non-empty list of messages (``tools`` and
  ``parallel_tool_calls`` optional);
- ``preferred_output`` and ``non_preferred_output``: each a list with at least one
  ``assistant`` message; output messages use the ``assistant`` or ``tool`` role;
- at least 10 training examples, like every Azure fine-tuning job.

Each problem names its line, so the job's error says where to look.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

INPUT_ROLES = ("system", "developer", "user", "assistant", "tool")
OUTPUT_ROLES = ("assistant", "tool")


@dataclass
class PreferenceReport:
    examples: list[dict] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message)

    @property
    def valid(self) -> bool:
        return not self.errors

    def describe(self, limit: int = 10) -> str:
        lines = [f"line {n}: {message}" for n, message in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"... and {len(self.errors) - limit} more")
        return "\n".join(lines)


def _message_problem(message, roles: tuple[str, ...], where: str) -> str | None:
    if not isinstance(message, dict):
        return f"{where} must be an object with 'role' and 'content'"
    role = message.get("role")
    if role not in roles:
        return f"{where} has role {role!r}; use one of {', '.join(roles)}"
    content = message.get("content")
    if role == "assistant" and content is None and message.get("tool_calls"):
        return None
    if not isinstance(content, str | list) or (isinstance(content, str) and not content.strip()):
        return f"{where} needs a non-empty 'content'"
    return None


def _check(example, number: int, report: PreferenceReport) -> None:
    if not isinstance(example, dict):
        report.errors.append((number, "each line must be a JSON object"))
        return
    missing = [k for k in ("input", "preferred_output", "non_preferred_output")
               if k not in example]
    if missing:
        hint = (" (this looks like a supervised file: DPO needs input, preferred_output and "
                "non_preferred_output)" if "messages" in example else "")
        report.errors.append((number, f"missing {', '.join(missing)}{hint}"))
        return
    problems = []
    prompt = example["input"]
    if not isinstance(prompt, dict) or not isinstance(prompt.get("messages"), list) \
            or not prompt["messages"]:
        problems.append("'input' must be an object with a non-empty 'messages' list")
    else:
        for i, message in enumerate(prompt["messages"]):
            problem = _message_problem(message, INPUT_ROLES, f"input.messages[{i}]")
            if problem:
                problems.append(problem)
        if "tools" in prompt and not isinstance(prompt["tools"], list):
            problems.append("input.tools must be a list")
        if "parallel_tool_calls" in prompt and not isinstance(prompt["parallel_tool_calls"], bool):
            problems.append("input.parallel_tool_calls must be true or false")
    for key in ("preferred_output", "non_preferred_output"):
        output = example[key]
        if not isinstance(output, list) or not output:
            problems.append(f"'{key}' must be a non-empty list of messages")
            continue
        for i, message in enumerate(output):
            problem = _message_problem(message, OUTPUT_ROLES, f"{key}[{i}]")
            if problem:
                problems.append(problem)
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in output):
            problems.append(f"'{key}' needs at least one assistant message")
    if not problems and example["preferred_output"] == example["non_preferred_output"]:
        problems.append("preferred_output and non_preferred_output are identical")
    if problems:
        report.errors.extend((number, p) for p in problems)
    else:
        report.examples.append(example)


def validate_bytes(data: bytes, min_examples: int = 10) -> PreferenceReport:
    """Check a DPO JSONL file; ``report.examples`` holds the valid examples."""
    report = PreferenceReport()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.errors.append((1, f"the file is not UTF-8 ({exc})"))
        return report
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        count += 1
        try:
            example = json.loads(line)
        except ValueError as exc:
            report.errors.append((number, f"not valid JSON ({exc})"))
            continue
        _check(example, number, report)
    if count < min_examples:
        message = (f"the file has {count} example(s); a fine-tuning job needs at least "
                   f"{min_examples}")
        report.errors.append((max(1, count), message))
    return report
