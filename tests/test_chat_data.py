"""helpers.chat_data: reading chat JSONL (BOM, CRLF, blank lines, bad UTF-8) and every issue kind,
each checked by kind AND line on a file written to disk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import chat_data
from helpers.chat_data import Issue

REPO = Path(__file__).resolve().parents[1]
COURSE_DATA = REPO / "source" / "02-gpt4o-jsonl" / "data"
REFERENCE = REPO.parent / "shared" / "reference-data" / "mslearn-databricks"


def example(question: str = "What is an epoch?", answer: str = "One pass over the data.") -> dict:
    return {"messages": [
        {"role": "system", "content": "You are a course assistant."},
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]}


def good_lines(n: int = 10) -> list[str]:
    return [json.dumps(example(f"Question {i}?", f"Answer {i}.")) for i in range(n)]


def write(tmp_path: Path, lines: list[str | bytes], *, bom: bool = False, newline: bytes = b"\n",
          final_newline: bool = True, name: str = "data.jsonl") -> Path:
    parts = [line if isinstance(line, bytes) else line.encode("utf-8") for line in lines]
    data = newline.join(parts) + (newline if final_newline else b"")
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def with_bad_line(tmp_path: Path, bad: str | bytes | dict | list, at: int = 4) -> chat_data.DataReport:
    """Ten good examples with ``bad`` inserted as line ``at`` (1-based)."""
    lines: list[str | bytes] = good_lines(10)
    if isinstance(bad, (dict, list)):
        bad = json.dumps(bad)
    lines.insert(at - 1, bad)
    return chat_data.validate_file(write(tmp_path, lines))


def kinds_at(report: chat_data.DataReport) -> list[tuple[int | None, str]]:
    return [(i.line, i.kind) for i in report.errors]


# --------------------------------------------------------------------------- reading

def test_valid_file(tmp_path):
    report = chat_data.validate_file(write(tmp_path, good_lines(10)))
    assert report.valid, chat_data.format_issues(report.errors)
    assert report.errors == [] and report.warnings == []
    assert len(report.examples) == 10
    assert report.example_lines == list(range(1, 11))
    assert report.examples[0] == example("Question 0?", "Answer 0.")
    assert report.model == "gpt-4o" and report.encoding == "o200k_base"
    assert report.path.endswith("data.jsonl")


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
@pytest.mark.parametrize("final_newline", [False, True])
def test_bom_crlf_and_missing_final_newline_are_accepted(tmp_path, bom, newline, final_newline):
    path = write(tmp_path, good_lines(10), bom=bom, newline=newline, final_newline=final_newline)
    report = chat_data.validate_file(path)
    assert report.valid, chat_data.format_issues(report.errors)
    assert len(report.examples) == 10 and report.example_lines == list(range(1, 11))
    assert report.has_bom is bom
    assert report.line_endings == ("CRLF" if newline == b"\r\n" else "LF")
    assert report.examples[0]["messages"][1]["content"] == "Question 0?"  # no BOM, no \r left


def test_blank_lines_are_skipped_and_lines_keep_their_numbers(tmp_path):
    lines = good_lines(10)
    lines.insert(2, "")
    lines.insert(5, "   \t")
    lines.append("")
    report = chat_data.validate_file(write(tmp_path, lines, newline=b"\r\n"))
    assert report.valid
    assert report.example_lines == [1, 2, 4, 5, 7, 8, 9, 10, 11, 12]


def test_non_ascii_text_reads_as_utf8(tmp_path):
    lines = good_lines(9) + [json.dumps(example("Qu'est-ce qu'une époque ?", "Un passage complet ✓"),
                                        ensure_ascii=False)]
    report = chat_data.validate_file(write(tmp_path, lines, bom=True))
    assert report.valid
    assert report.examples[-1]["messages"][2]["content"] == "Un passage complet ✓"


# --------------------------------------------------------------------------- every error kind

def test_invalid_encoding_is_reported_and_other_lines_still_read(tmp_path):
    latin1 = json.dumps(example("Qu'est-ce qu'une époque ?"), ensure_ascii=False).encode("latin-1")
    report = with_bad_line(tmp_path, latin1, at=3)
    assert kinds_at(report) == [(3, "invalid_encoding")]
    assert "UTF-8" in report.errors[0].message and "line 3" in report.errors[0].message
    assert len(report.examples) == 10  # the 10 good lines are all there
    assert 3 not in report.example_lines


def test_utf16_file_is_invalid_encoding(tmp_path):
    text = "\n".join(good_lines(10))
    path = tmp_path / "utf16.jsonl"
    path.write_bytes(text.encode("utf-16"))  # with its BOM
    report = chat_data.validate_file(path)
    assert kinds_at(report) == [(1, "invalid_encoding")]
    assert "UTF-16" in report.errors[0].message


def test_utf16_without_bom_is_invalid_encoding(tmp_path):
    path = tmp_path / "utf16le.jsonl"
    path.write_bytes("\n".join(good_lines(10)).encode("utf-16-le"))
    report = chat_data.validate_file(path)
    assert report.errors and {i.kind for i in report.errors} == {"invalid_encoding"}
    assert report.errors[0].line == 1 and "UTF-16" in report.errors[0].message


def test_invalid_json(tmp_path):
    report = with_bad_line(tmp_path, '{"messages": [{"role": "user", "content": "hi"},]}', at=5)
    assert kinds_at(report) == [(5, "invalid_json")]
    assert "column" in report.errors[0].message


def test_pretty_printed_json_is_invalid_json_on_each_line(tmp_path):
    pretty = json.dumps(example(), indent=2).splitlines()
    report = chat_data.validate_file(write(tmp_path, good_lines(10) + pretty))
    bad = {line for line, kind in kinds_at(report) if kind == "invalid_json"}
    assert 11 in bad and len(bad) >= 3
    assert "one complete JSON object" in report.errors[0].message


@pytest.mark.parametrize("value", [[1, 2], "text", 42, None])
def test_data_type(tmp_path, value):
    report = with_bad_line(tmp_path, json.dumps(value), at=2)  # valid JSON, not an object
    assert kinds_at(report) == [(2, "data_type")]


def test_data_type_of_a_message(tmp_path):
    bad = {"messages": ["hello", {"role": "assistant", "content": "hi"}]}
    report = with_bad_line(tmp_path, bad, at=6)
    assert (6, "data_type") in kinds_at(report)


@pytest.mark.parametrize(
    "bad",
    [{"prompt": "q", "completion": "a"}, {"messages": []}, {"messages": "hello"},
     {"messages": {"role": "user"}}, {}],
)
def test_missing_messages_list(tmp_path, bad):
    report = with_bad_line(tmp_path, bad, at=7)
    assert kinds_at(report) == [(7, "missing_messages_list")]
    assert '"messages"' in report.errors[0].message


def test_message_missing_key(tmp_path):
    bad = example()
    del bad["messages"][1]["content"]
    report = with_bad_line(tmp_path, bad, at=1)
    assert kinds_at(report) == [(1, "message_missing_key")]
    assert "'content'" in report.errors[0].message and "message 2" in report.errors[0].message

    bad = example()
    del bad["messages"][2]["role"]
    report = with_bad_line(tmp_path, bad, at=11)
    assert (11, "message_missing_key") in kinds_at(report)
    assert (11, "example_missing_assistant_message") in kinds_at(report)


def test_assistant_tool_call_may_leave_out_content(tmp_path):
    ok = example()
    ok["messages"][2] = {"role": "assistant",
                         "function_call": {"name": "lookup", "arguments": "{}"}}
    report = with_bad_line(tmp_path, ok, at=3)
    assert report.valid, chat_data.format_issues(report.errors)


def test_message_unrecognized_key(tmp_path):
    bad = example()
    bad["messages"][1]["contnet"] = "typo"
    report = with_bad_line(tmp_path, bad, at=8)
    assert kinds_at(report) == [(8, "message_unrecognized_key")]
    assert "'contnet'" in report.errors[0].message


@pytest.mark.parametrize("role", ["bot", "User", "developer", None, 3])
def test_unrecognized_role(tmp_path, role):
    bad = example()
    bad["messages"][1]["role"] = role
    report = with_bad_line(tmp_path, bad, at=9)
    assert (9, "unrecognized_role") in kinds_at(report)
    assert {kind for _, kind in kinds_at(report)} == {"unrecognized_role"}


@pytest.mark.parametrize("content", ["", "   ", None, 5, {"text": "hi"}, []])
def test_missing_content(tmp_path, content):
    bad = example()
    bad["messages"][2]["content"] = content
    report = with_bad_line(tmp_path, bad, at=10)
    assert kinds_at(report) == [(10, "missing_content")]


def test_content_parts_are_accepted(tmp_path):
    ok = example()
    ok["messages"][1]["content"] = [{"type": "text", "text": "What is in this image?"},
                                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    assert with_bad_line(tmp_path, ok, at=2).valid


def test_example_missing_assistant_message(tmp_path):
    bad = example()
    bad["messages"].pop()
    report = with_bad_line(tmp_path, bad, at=4)
    assert kinds_at(report) == [(4, "example_missing_assistant_message")]


@pytest.mark.parametrize("weight", [2, 0.5, -1, "1", True, None])
def test_invalid_weight(tmp_path, weight):
    bad = example()
    bad["messages"][2]["weight"] = weight
    report = with_bad_line(tmp_path, bad, at=6)
    assert kinds_at(report) == [(6, "invalid_weight")]


@pytest.mark.parametrize("weight", [0, 1, 1.0])
def test_valid_weights(tmp_path, weight):
    ok = {"messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello.", "weight": weight},
        {"role": "user", "content": "Again?"},
        {"role": "assistant", "content": "Hello again.", "weight": 1},
    ]}
    report = with_bad_line(tmp_path, ok, at=2)
    assert report.valid


def test_example_too_long(tmp_path):
    long_answer = "token " * 17_000  # over gpt-35-turbo's 16,385, under gpt-4o's 65,536
    lines = good_lines(10)
    lines.insert(2, json.dumps(example(answer=long_answer)))
    path = write(tmp_path, lines)
    report = chat_data.validate_file(path, model="gpt-35-turbo")
    assert kinds_at(report) == [(3, "example_too_long")]
    assert "16,385" in report.errors[0].message and "split" in report.errors[0].message
    assert chat_data.validate_file(path, model="gpt-4o").valid


def test_too_few_examples(tmp_path):
    report = chat_data.validate_file(write(tmp_path, good_lines(9)))
    assert kinds_at(report) == [(None, "too_few_examples")]
    assert "9" in report.errors[0].message and "10" in report.errors[0].message
    assert chat_data.validate_file(write(tmp_path, good_lines(3)), min_examples=3).valid


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\r\n  \r\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    report = chat_data.validate_file(path)
    assert kinds_at(report) == [(None, "empty_file")]
    assert report.examples == []


def _one_bad(bad: str | bytes | dict | list, n_good: int = 10) -> list[str | bytes]:
    lines: list[str | bytes] = good_lines(n_good)
    lines.insert(1, json.dumps(bad) if isinstance(bad, (dict, list)) else bad)
    return lines


def _without(key: str) -> dict:
    bad = example()
    del bad["messages"][1][key]
    return bad


def _with(index: int, **fields) -> dict:
    bad = example()
    bad["messages"][index].update(fields)
    return bad


def test_every_error_kind_is_reported_and_documented(tmp_path):
    """ERROR_KINDS, the interface the emulator and the CLI rely on, is what the validator
    reports: one hand-made file per kind reports that kind, together they report no other, and
    the module's docstring names the same kinds."""
    no_assistant = example()
    no_assistant["messages"].pop()
    files: dict[str, tuple[list[str | bytes], dict]] = {
        "data_type": (_one_bad([1, 2]), {}),
        "missing_messages_list": (_one_bad({"prompt": "q", "completion": "a"}), {}),
        "message_missing_key": (_one_bad(_without("content")), {}),
        "message_unrecognized_key": (_one_bad(_with(1, contnet="typo")), {}),
        "unrecognized_role": (_one_bad(_with(1, role="narrator")), {}),
        "missing_content": (_one_bad(_with(2, content="  ")), {}),
        "example_missing_assistant_message": (_one_bad(no_assistant), {}),
        "invalid_json": (_one_bad("{not json"), {}),
        "invalid_encoding": (_one_bad("époque".encode("latin-1")), {}),
        "invalid_weight": (_one_bad(_with(2, weight=0.5)), {}),
        "example_too_long": (_one_bad(example(answer="token " * 17_000)),
                             {"model": "gpt-35-turbo"}),
        "too_few_examples": (good_lines(9), {}),
        "empty_file": ([b""], {}),
    }
    reported: set[str] = set()
    for kind, (lines, options) in files.items():
        path = write(tmp_path, lines, name=f"{kind}.jsonl")
        kinds = {issue.kind for issue in chat_data.validate_file(path, **options).errors}
        assert kind in kinds, (kind, kinds)
        reported |= kinds
    assert reported == set(chat_data.ERROR_KINDS)
    assert len(chat_data.ERROR_KINDS) == len(set(chat_data.ERROR_KINDS))
    doc = chat_data.__doc__.split("Error kinds", 1)[1].split("Warning kinds", 1)[0]
    assert set(re.findall(r"``(\w+)``", doc)) - {"None"} == set(chat_data.ERROR_KINDS)


def test_several_bad_lines_are_all_reported(tmp_path):
    no_assistant = example()
    no_assistant["messages"].pop()
    bad_role = example()
    bad_role["messages"][0]["role"] = "narrator"
    lines: list[str | bytes] = [
        *good_lines(3),                                # 1-3
        "{not json",                                   # 4
        json.dumps(no_assistant),                      # 5
        "",                                            # 6 (blank, skipped)
        "é".encode("latin-1"),                         # 7
        json.dumps(bad_role),                          # 8
        json.dumps([1]),                               # 9
        *good_lines(2),                                # 10-11
        json.dumps({"messages": []}),                  # 12
    ]
    report = chat_data.validate_file(write(tmp_path, lines, newline=b"\r\n", final_newline=False))
    assert kinds_at(report) == [
        (4, "invalid_json"),
        (5, "example_missing_assistant_message"),
        (7, "invalid_encoding"),
        (8, "unrecognized_role"),
        (9, "data_type"),
        (12, "missing_messages_list"),
    ]
    assert report.error_lines() == [4, 5, 7, 8, 9, 12]
    assert not report.valid
    # every message names its line and says what to do
    for issue in report.errors:
        assert f"line {issue.line}" in issue.message
    assert all(len(i.message) > 40 for i in report.errors)


# --------------------------------------------------------------------------- warnings

def test_warnings_for_missing_system_and_user_messages(tmp_path):
    no_system = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    no_user = {"messages": [{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}]}
    lines = good_lines(10)
    lines.insert(1, json.dumps(no_system))
    lines.insert(4, json.dumps(no_user))
    report = chat_data.validate_file(write(tmp_path, lines))
    assert report.valid  # warnings do not make a file invalid
    assert [(w.line, w.kind) for w in report.warnings] == [
        (2, "missing_system_message"), (5, "missing_user_message"),
    ]


def test_duplicate_and_untrainable_examples_warn(tmp_path):
    lines = good_lines(10)
    lines.append(lines[2])
    silent = example()
    silent["messages"][2]["weight"] = 0
    lines.append(json.dumps(silent))
    report = chat_data.validate_file(write(tmp_path, lines))
    assert report.valid
    assert [(w.line, w.kind) for w in report.warnings] == [
        (11, "duplicate_example"), (12, "no_trainable_assistant_message"),
    ]
    assert "line 3" in report.warnings[0].message


# --------------------------------------------------------------------------- API

def test_validate_bytes_matches_validate_file(tmp_path):
    path = write(tmp_path, good_lines(10), bom=True, newline=b"\r\n")
    from_bytes = chat_data.validate_bytes(path.read_bytes(), name="upload.jsonl", model="gpt-4o-mini")
    assert from_bytes.valid and from_bytes.path == "upload.jsonl" and from_bytes.model == "gpt-4o-mini"
    assert from_bytes.examples == chat_data.validate_file(path).examples
    few = chat_data.validate_bytes(b'{"messages": []}', min_examples=1)
    assert kinds_at(few) == [(1, "missing_messages_list")]


def test_unreadable_paths_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such.jsonl"):
        chat_data.validate_file(tmp_path / "no-such.jsonl")
    with pytest.raises(OSError, match="folder"):
        chat_data.validate_file(tmp_path)


def test_unknown_model_is_an_argument_error(tmp_path):
    with pytest.raises(ValueError, match="Unknown model"):
        chat_data.validate_bytes(b"", model="llama-3")


def test_issue_and_format_issues():
    issue = Issue(3, "invalid_json", "line 3 is not valid JSON: ...")
    assert str(issue).startswith("line 3: [invalid_json]")
    with pytest.raises(AttributeError):
        issue.line = 4  # frozen
    text = chat_data.format_issues([issue, Issue(None, "too_few_examples", "add more")])
    first, second = text.splitlines()
    assert "file" in first and "too_few_examples" in first
    assert "line 3" in second and "invalid_json" in second
    assert chat_data.format_issues([]) == "no issues"


# --------------------------------------------------------------------------- data sets

@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference-data is not present")
@pytest.mark.parametrize("name", ["training_set.jsonl", "validation_set.jsonl"])
def test_reference_lab_data_is_valid(name):
    report = chat_data.validate_file(REFERENCE / name)
    assert report.valid and len(report.examples) == 10
    assert report.line_endings == "CRLF" and not report.has_bom


def _course(name: str) -> chat_data.DataReport:
    return chat_data.validate_file(COURSE_DATA / name)


def test_course_data_is_valid_and_big_enough():
    train, valid = _course("training_set.jsonl"), _course("validation_set.jsonl")
    for report, minimum in ((train, 40), (valid, 12)):
        assert report.valid, chat_data.format_issues(report.errors)
        assert report.warnings == [], chat_data.format_issues(report.warnings)
        assert len(report.examples) >= minimum
        assert report.has_bom and report.line_endings == "LF"


def test_course_data_has_one_voice_and_no_leak():
    train, valid = _course("training_set.jsonl"), _course("validation_set.jsonl")
    systems, questions = set(), {}
    for split, report in (("train", train), ("valid", valid)):
        for ex in report.examples:
            roles = [m["role"] for m in ex["messages"]]
            assert roles == ["system", "user", "assistant"]
            system, user, assistant = (m["content"] for m in ex["messages"])
            systems.add(system)
            questions.setdefault(split, []).append(user.strip().lower())
            answer = assistant.strip()
            assert answer.startswith("Tokenwise: "), answer[:40]
            last = answer.splitlines()[-1]
            assert last.startswith("Takeaway: ") and len(last) < 120, last
            assert 40 <= len(answer.split()) <= 90, (user, len(answer.split()))
    assert len(systems) == 1, "every example must share the same system message"
    assert len(set(questions["train"])) == len(questions["train"])
    assert len(set(questions["valid"])) == len(questions["valid"])
    assert not set(questions["train"]) & set(questions["valid"]), "validation repeats training"


def test_bad_content_never_raises():
    """Random bytes, truncations and mutations of a valid file all give a report, never raise."""
    import random

    rng = random.Random(1234)
    valid = ("\n".join(good_lines(10)) + "\n").encode()
    samples = [b"[" * 100_000, b'{"messages": ' + b"[" * 50_000, b"\x00\x01\x02", b"\r\r\r"]
    for _ in range(150):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 20)):
            pos = rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        samples.append(bytes(data[: rng.randint(0, len(data))]))
        samples.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))))
    for data in samples:
        report = chat_data.validate_bytes(data)
        assert {i.kind for i in report.errors} <= set(chat_data.ERROR_KINDS)
        assert all(i.line is None or i.line >= 1 for i in report.errors)
        assert len(report.examples) == len(report.example_lines)
