"""The notebooks recommend only APIs that exist in the installed versions: every keyword argument
the text of assignment 01 names in inline code (``eval_strategy="epoch"``,
``TrainingArguments(train_sampling_strategy=...)``, ``remove_columns=[...]``...) is a parameter of
the API it belongs to, in every language, unless its sentence presents it as the old form
("*The old way*", "removed", "older releases called it"). A keyword that exists nowhere (as
``TrainingArguments(group_by_length=True)`` in transformers 5) fails here."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(REPO.glob("source/01-gpt2-imdb*/gpt2_imdb.ipynb"))
SPAN = re.compile(r"`([^`]+)`")
KEYWORD = re.compile(r"(?<![.\w])([A-Za-z_]\w*)=(?!=)")  # name=value, not `a.b = c`
#: Words that mark a sentence as describing an old or removed form.
OLD = re.compile(r"(?i)old|removed|older|gone|renamed|veraltet|entfernt|früher|älter|alte|"
                 r"旧|移除|删除|已经|改名|老")


def _parameters() -> set[str]:
    """Every keyword the course's APIs take, from the installed packages."""
    from datasets import Dataset
    from sklearn.metrics import precision_recall_fscore_support
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PretrainedConfig,
        Trainer,
        TrainingArguments,
    )

    from helpers.classifier import Recipe

    names: set[str] = set()
    for api in (TrainingArguments, Trainer, DataCollatorWithPadding, Dataset.map,
                Dataset.shuffle, Dataset.select, precision_recall_fscore_support,
                AutoModelForSequenceClassification.from_pretrained, dataclasses.replace):
        names |= set(inspect.signature(api).parameters)
    tokenizer_call = AutoTokenizer.from_pretrained  # the call's keywords are documented here:
    names |= {"padding", "truncation", "max_length", "return_tensors", "truncation_side"}
    names |= set(inspect.signature(tokenizer_call).parameters)
    names |= set(PretrainedConfig().to_dict()) | {"num_labels", "id2label", "label2id"}
    # from_pretrained passes unknown keywords to the configuration, which keeps the ones it knows
    for keyword in ("pad_token_id", "problem_type"):
        if getattr(PretrainedConfig(**{keyword: 1}), keyword, None) == 1:
            names.add(keyword)
    names |= {f.name for f in dataclasses.fields(Recipe)}
    names |= {"COURSE_FAST"}  # an environment variable, not a keyword
    return names


def _sentence(text: str, index: int) -> str:
    start = max(text.rfind(". ", 0, index), text.rfind("\n\n", 0, index), text.rfind("。", 0, index))
    ends = [p for p in (text.find(". ", index), text.find("\n\n", index), text.find("。", index))
            if p != -1]
    return text[start + 1: min(ends) if ends else len(text)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_every_keyword_the_text_names_exists(path: Path) -> None:
    known = _parameters()
    unknown = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        for match in SPAN.finditer(text):
            for keyword in KEYWORD.findall(match.group(1)):
                if keyword in known or keyword.isupper():
                    continue
                if OLD.search(_sentence(text, match.start())):
                    continue  # named as the old form on purpose
                unknown.append(f"{cell.get('id')}: `{match.group(1)}` ({keyword})")
    assert unknown == [], "keywords the installed APIs do not take:\n" + "\n".join(unknown)


def test_the_guard_catches_a_removed_keyword() -> None:
    from transformers import TrainingArguments

    known = _parameters()
    for gone in ("group_by_length", "evaluation_strategy"):
        assert gone not in inspect.signature(TrainingArguments).parameters
        assert gone not in known
    assert {"eval_strategy", "train_sampling_strategy", "processing_class"} <= known
