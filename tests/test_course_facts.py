"""Numbers the course text states that the code can compute, checked against the code.

A `Fact` computes a value from the code, the packaged data, a committed bench result or the
project's configuration (and, for the few facts only a vendor's documentation holds, from one
registry here with its source). A `Claim` says where the text states it: a Markdown file
(``course/reading/de.md``) or one cell of a notebook (``source/01-gpt2-imdb/gpt2_imdb.ipynb#cell-02``,
by cell id or nbgrader grade_id), with a regular expression matched against the text with every
run of white space collapsed to one space (so a sentence may wrap). The group ``n`` is the
number as written: it must equal the fact, rounded to as many decimals as the text shows
(``0.81`` for 0.814, ``6 minutes`` for 5.83). The group ``s`` is a string (a date, a version)
that must equal the fact as it is written. A claim with neither group has a ``holds`` test
instead: "all negative" holds while the share of positive reviews is 0. Every match of a claim's
pattern is checked, and a pattern that no longer matches fails too, so rewording the text means
updating the claim here.

`STALE` lists wrong statements that were corrected (the reading and guides, and the notebooks in
issue 18's phase 2, in every language), so they do not come back.

To guard a new number: add a `Fact` (or reuse one) and one `Claim` per language and place.
"""

from __future__ import annotations

import functools
import json
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from autograder.reference import classifier as reference_classifier
from autograder.reference import imdb as reference_imdb

ROOT = Path(__file__).resolve().parent.parent
LAB01 = "source/01-gpt2-imdb/gpt2_imdb.ipynb"
LAB02 = "source/02-gpt4o-jsonl/gpt4o_jsonl.ipynb"
#: Each notebook in every language: the English source and its generated variants.
LAB01_IN = {"en": LAB01, "de": "source/01-gpt2-imdb-de/gpt2_imdb.ipynb",
            "zh": "source/01-gpt2-imdb-zh/gpt2_imdb.ipynb"}
LAB02_IN = {"en": LAB02, "de": "source/02-gpt4o-jsonl-de/gpt4o_jsonl.ipynb",
            "zh": "source/02-gpt4o-jsonl-zh/gpt4o_jsonl.ipynb"}
READINGS = {"en": "course/reading/en.md", "de": "course/reading/de.md", "zh": "course/reading/zh.md"}

#: Azure OpenAI's documented defaults that the guides quote. No code computes them: they are
#: kept in this one place, with their sources, and every guide must agree with it.
AZURE_DOCS = {
    "running_jobs": (1, "https://learn.microsoft.com/azure/ai-services/openai/quotas-limits"),
    "queued_jobs": (20, "https://learn.microsoft.com/azure/ai-services/openai/quotas-limits"),
    "files": (50, "https://learn.microsoft.com/azure/ai-services/openai/quotas-limits"),
    "files_gb": (1, "https://learn.microsoft.com/azure/ai-services/openai/quotas-limits"),
    "deployments": (5, "https://learn.microsoft.com/azure/ai-services/openai/quotas-limits"),
    "inactive_days": (15, "https://learn.microsoft.com/azure/ai-services/openai/how-to/fine-tuning-deploy"),
    "developer_hours": (24, "https://learn.microsoft.com/azure/ai-foundry/openai/how-to/fine-tune-test"),
}

#: When transformers renamed and removed the Trainer arguments lab 01's "old way" notes name.
#: Read from the releases' own code (the wheels on PyPI): `eval_strategy` first appears in
#: 4.41.0's training_args.py; 4.50.3 still accepts `evaluation_strategy` (its warning says "will
#: be removed in version 4.46"), 4.51.0 has no such field; `Trainer.__init__` carries
#: `@deprecate_kwarg("tokenizer", new_name="processing_class", version="5.0.0")` from 4.46.0.
TRANSFORMERS_HISTORY = {
    "eval_strategy_renamed": "4.41",
    "evaluation_strategy_removed": "4.51",
    "processing_class_introduced": "4.46",
    "tokenizer_removed": "5",
}


# --------------------------------------------------------------------------- facts

@dataclass(frozen=True)
class Fact:
    compute: Callable[[], Any]
    source: str


@functools.cache
def _packaged_imdb():
    from helpers import imdb

    return imdb.load_packaged()


@functools.cache
def _bench_results(name: str) -> tuple[tuple[str, dict[str, Any]], ...]:
    """The committed results of benchmark ``name``, the long profile's first
    (``bench/results/<name>.long.json``, then ``<name>.json``)."""
    files = sorted((ROOT / "bench" / "results").glob(f"{name}.*json"),
                   key=lambda path: (".long." not in path.name, path.name))
    return tuple((path.name, json.loads(path.read_text(encoding="utf-8"))) for path in files)


def _cpu_measurement(config: str) -> dict[str, Any]:
    """One configuration of the CPU accuracy benchmark as the text quotes it: the recipe it ran,
    its wall time (``minutes``, training and one evaluation) and its ``accuracy`` on the held-out
    reviews, each the mean over the seeds measured. Rows with a ``phase`` (``validation``: the
    timed training run; ``test``: the held-out score) and rows without one are both read."""
    results = _bench_results("cpu_accuracy")
    for _, result in results:
        rows = [row for row in result["measurements"] if row.get("config") == config]
        trained = [row for row in rows if row.get("phase", "validation") == "validation"]
        held_out = [row for row in rows if row.get("phase") == "test"] or [
            row for row in rows if "phase" not in row]
        if trained and held_out:
            return {**trained[0],
                    "minutes": sum(row["minutes"] for row in trained) / len(trained),
                    "accuracy": sum(row["accuracy"] for row in held_out) / len(held_out)}
    raise AssertionError(
        f"no bench/results/cpu_accuracy*.json holds the configuration {config!r} (found: "
        f"{[name for name, _ in results] or 'none'}); the course text quotes it: run "
        "`python -m bench.cpu_accuracy --profile long --configs recipe,top8` and commit the result")


def _unshuffled_positive_pct() -> float:
    from helpers import imdb

    labels = _packaged_imdb()["train"]["label"][: imdb.TRAIN_SIZE]
    return 100 * sum(labels) / len(labels)


def _positive_pct() -> float:
    labels = _packaged_imdb()["train"]["label"]
    return 100 * sum(labels) / len(labels)


@functools.cache
def _lab02_job() -> dict[str, int]:
    """What the emulator does with lab 02's training file when n_epochs etc. are "auto"."""
    from helpers import chat_data
    from helpers.emulator import training

    report = chat_data.validate_file(ROOT / "source/02-gpt4o-jsonl/data/training_set.jsonl",
                                     model="gpt-4o")
    n = len(report.examples)
    hp = training.resolve_hyperparameters({}, n)
    return {"examples": n, "epochs": hp.n_epochs, "batch_size": hp.batch_size,
            "steps": math.ceil(n / hp.batch_size) * hp.n_epochs}


def _cell_timeout_s() -> int:
    text = (ROOT / "nbgrader_config.py").read_text(encoding="utf-8")
    found = re.search(r'c\.Execute\.timeout = int\(os\.environ\.get\("COURSE_CELL_TIMEOUT", "(\d+)"\)\)',
                      text)
    assert found, "nbgrader_config.py: the per-cell timeout line changed; update _cell_timeout_s"
    return int(found[1])


def _required_major(package: str) -> int:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"]:
        found = re.fullmatch(rf"{re.escape(package)}>=(\d+)(\.\d+)*(,.*)?", requirement)
        if found:
            return int(found[1])
    raise LookupError(f"pyproject.toml has no '{package}>=N' dependency")


def _lab01_saves_checkpoints() -> bool:
    from helpers import classifier

    recipe = classifier.default_recipe(classifier.Backbone("SmolLM2-135M", "packaged", "/x", ""),
                                       device="cpu", fast=False)
    arguments = reference_classifier.training_arguments(recipe, ROOT / "outputs" / "unused", report_to="none")
    return str(arguments.save_strategy.value) != "no"


def _offline_backbone_file() -> str:
    from helpers import assets

    return assets.SMOLLM2_GGUF_NAME


def _imdb_train_size() -> int:
    from helpers import imdb

    return imdb.TRAIN_SIZE


def _min_examples() -> int:
    from helpers import chat_data

    return chat_data.MIN_EXAMPLES


def _gpt4o_token_limit() -> int:
    from helpers import tokens

    return tokens.training_token_limit("gpt-4o")


def _azure(key: str) -> Fact:
    value, source = AZURE_DOCS[key]
    return Fact(lambda: value, f"Azure's documentation: {source}")


def _emulator_checkpoint_epochs() -> int:
    from helpers.emulator import training

    return training.CHECKPOINT_EPOCHS


#: The end-of-text tokens lab 01 pads with: GPT-2's, and the offline SmolLM2-135M-Instruct's.
END_OF_TEXT_TOKENS = ("<|endoftext|>", "<|im_end|>")


def _reviews_with_end_of_text() -> int:
    """Packaged IMDB reviews (both splits: IMDB's training reviews) that contain a pad token."""
    dataset = _packaged_imdb()
    return sum(any(token in text for token in END_OF_TEXT_TOKENS)
               for split in dataset for text in dataset[split]["text"])


def _fine_tuning_retires(*models: str) -> str:
    """The day Azure's retirement table ends fine-tuning of ``models`` (one date for all)."""
    from helpers.emulator import catalog

    days = {catalog.FINE_TUNABLE[model].fine_tune_retires for model in models}
    assert len(days) == 1 and None not in days, f"{models} retire on different days: {days}"
    return days.pop().isoformat()


def _tokens_per_message() -> int:
    """The default of ``tokens_per_message`` in lab 02's own ``num_tokens_from_messages`` (the
    signature the students keep and the tests call)."""
    import ast

    source = _notebook_cell_source(LAB02, "token-counting")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "num_tokens_from_messages":
            names = [arg.arg for arg in node.args.args]
            defaults = dict(zip(names[len(names) - len(node.args.defaults):], node.args.defaults))
            return ast.literal_eval(defaults["tokens_per_message"])
    raise AssertionError(f"{LAB02}: the token-counting cell defines no num_tokens_from_messages")


def _notebook_cell_source(notebook: str, grade_id: str) -> str:
    cells = json.loads((ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id:
            return "".join(cell["source"])
    raise AssertionError(f"{notebook}: no cell with grade_id {grade_id!r}")


def _auto_epochs_constant(name: str) -> int:
    from helpers.emulator import training

    return getattr(training, name)


FACTS: dict[str, Fact] = {
    "imdb_train_size": Fact(_imdb_train_size, "helpers.imdb.TRAIN_SIZE"),
    "imdb_unshuffled_positive_pct": Fact(
        _unshuffled_positive_pct,
        "share of positive reviews among the first TRAIN_SIZE of the offline training split"),
    "imdb_positive_pct": Fact(_positive_pct, "share of positive reviews in the offline training split"),
    "cpu_recipe_minutes": Fact(lambda: _cpu_measurement("recipe")["minutes"],
                               "bench/results/cpu_accuracy*.json, configuration 'recipe'"),
    "cpu_recipe_accuracy": Fact(lambda: _cpu_measurement("recipe")["accuracy"],
                                "bench/results/cpu_accuracy*.json, configuration 'recipe'"),
    "cpu_top8_accuracy": Fact(lambda: _cpu_measurement("top8")["accuracy"],
                              "bench/results/cpu_accuracy*.json, configuration 'top8'"),
    "cpu_top8_minutes": Fact(lambda: _cpu_measurement("top8")["minutes"],
                             "bench/results/cpu_accuracy*.json, configuration 'top8'"),
    "lab02_steps": Fact(lambda: _lab02_job()["steps"],
                        "examples / batch size x epochs, as the emulator trains lab 02's data"),
    "min_examples": Fact(_min_examples, "helpers.chat_data.MIN_EXAMPLES"),
    "gpt4o_token_limit": Fact(_gpt4o_token_limit, "helpers.tokens.training_token_limit('gpt-4o')"),
    "cell_timeout_s": Fact(_cell_timeout_s, "nbgrader_config.py: c.Execute.timeout"),
    "cell_timeout_min": Fact(lambda: _cell_timeout_s() / 60, "nbgrader_config.py: c.Execute.timeout / 60"),
    "mlflow_major": Fact(lambda: _required_major("mlflow"), "pyproject.toml: mlflow>=N"),
    "transformers_major": Fact(lambda: _required_major("transformers"),
                               "pyproject.toml: transformers>=N"),
    "lab01_saves_checkpoints": Fact(_lab01_saves_checkpoints,
                                    "autograder.reference.classifier.training_arguments: save_strategy"),
    "offline_backbone_file": Fact(_offline_backbone_file, "helpers.assets.SMOLLM2_GGUF_NAME"),
    "earlier_checkpoints": Fact(lambda: _emulator_checkpoint_epochs() - 1,
                                "helpers.emulator.training.CHECKPOINT_EPOCHS - 1 (as Azure keeps)"),
    "imdb_reviews_with_end_of_text": Fact(
        _reviews_with_end_of_text,
        f"packaged IMDB reviews containing {' or '.join(END_OF_TEXT_TOKENS)}"),
    "gpt4o_ft_retires": Fact(lambda: _fine_tuning_retires("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"),
                             "helpers.emulator.catalog.FINE_TUNABLE (Azure's retirement table)"),
    "gpt41_ft_retires": Fact(
        lambda: _fine_tuning_retires("gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14",
                                     "gpt-4.1-nano-2025-04-14"),
        "helpers.emulator.catalog.FINE_TUNABLE (Azure's retirement table)"),
    "tokens_per_message": Fact(_tokens_per_message,
                               "lab 02's num_tokens_from_messages(tokens_per_message=...)"),
    **{f"auto_epochs_{name.lower()}": Fact(functools.partial(_auto_epochs_constant, name),
                                           f"helpers.emulator.training.{name} (the cookbook's rule)")
       for name in ("TARGET_EPOCHS", "MIN_TARGET_EXAMPLES", "MAX_TARGET_EXAMPLES",
                    "MAX_DEFAULT_EPOCHS")},
    **{f"transformers_{key}": Fact(functools.partial(TRANSFORMERS_HISTORY.get, key),
                                   "TRANSFORMERS_HISTORY (the releases' code on PyPI)")
       for key in TRANSFORMERS_HISTORY},
    **{f"azure_{key}": _azure(key) for key in AZURE_DOCS},
}


# --------------------------------------------------------------------------- claims

@dataclass(frozen=True)
class Claim:
    fact: str
    place: str
    pattern: str
    lang: str = "en"
    holds: Callable[[Any], bool] | None = None

    def __str__(self) -> str:
        return f"{self.place} [{self.fact}] /{self.pattern}/"


def _zero(value: float) -> bool:
    return value == 0


def _half(value: float) -> bool:
    return abs(value - 50) < 1


def _no(value: bool) -> bool:
    return not value


def _two(value: int) -> bool:
    return value == 2


def _instruct_4bit(name: str) -> bool:
    return re.fullmatch(r"SmolLM2-135M-Instruct\.Q4_\d\.gguf", name) is not None


CLAIMS: list[Claim] = [
    # The reading, in three languages: lab 01's data and the label-order pitfall.
    Claim("imdb_train_size", READINGS["en"], r"\| (?P<n>[\d,]+) reviews, each with a label"),
    Claim("imdb_train_size", READINGS["de"], r"\| (?P<n>[\d.]+) Rezensionen, jede mit Label", "de"),
    Claim("imdb_train_size", READINGS["zh"], r"\| (?P<n>[\d,]+) 条影评，每条带 0/1 标签", "zh"),
    Claim("imdb_train_size", READINGS["en"], r"the first (?P<n>[\d,]+) reviews of an unshuffled"),
    Claim("imdb_train_size", READINGS["de"], r"die ersten (?P<n>[\d.]+) Rezensionen eines ungemischten",
          "de"),
    Claim("imdb_train_size", READINGS["zh"], r"不打乱就取训练集的前 (?P<n>[\d,]+) 条", "zh"),
    Claim("imdb_unshuffled_positive_pct", READINGS["en"],
          r"first 1,000 reviews of an unshuffled training split are all negative", holds=_zero),
    Claim("imdb_unshuffled_positive_pct", READINGS["de"],
          r"ersten 1\.000 Rezensionen eines ungemischten Trainingssplits sind also alle negativ",
          "de", holds=_zero),
    Claim("imdb_unshuffled_positive_pct", READINGS["zh"], r"前 1,000 条，拿到的全是差评", "zh",
          holds=_zero),
    Claim("imdb_positive_pct", READINGS["en"], r"IMDB is: half positive", holds=_half),
    Claim("imdb_positive_pct", READINGS["de"], r"IMDB ist zur Hälfte positiv", "de", holds=_half),
    Claim("imdb_positive_pct", READINGS["zh"], r"IMDB 正负各半", "zh", holds=_half),
    Claim("earlier_checkpoints", READINGS["en"], r"final model and checkpoints of the two epochs",
          holds=_two),
    Claim("earlier_checkpoints", READINGS["de"], r"finale Modell und die Checkpoints der beiden Epochen",
          "de", holds=_two),
    Claim("earlier_checkpoints", READINGS["zh"], r"保留最终模型，以及它之前两个 epoch 的检查点", "zh",
          holds=_two),
    # The syllabus and the Databricks guide: lab 01's time on a CPU, what it saves, the versions.
    Claim("cpu_recipe_minutes", "course/README.md", r"about (?P<n>\d+) minutes on two idle CPU cores"),
    Claim("imdb_train_size", "course/databricks.md", r"recipe \((?P<n>[\d,]+)/500 reviews"),
    Claim("lab01_saves_checkpoints", "course/databricks.md", r"Lab 01 writes no checkpoints",
          holds=_no),
    Claim("mlflow_major", "course/databricks.md", r"the course needs MLflow (?P<n>\d+)"),
    Claim("mlflow_major", "course/databricks.md", r"the first LTS with MLflow (?P<n>\d+)"),
    Claim("transformers_major", "course/databricks.md", r"and transformers (?P<n>\d+), and the install"),
    Claim("offline_backbone_file", "README.md",
          r"SmolLM2-135M-Instruct \(shipped 4-bit in a GGUF file", holds=_instruct_4bit),
    Claim("offline_backbone_file", "course/databricks.md",
          r"SmolLM2-135M-Instruct, packaged 4-bit", holds=_instruct_4bit),
    # Grading as the student and instructor guides describe it.
    Claim("cell_timeout_min", "course/student.md", r"time limit per cell \((?P<n>\d+) minutes by default"),
    Claim("cell_timeout_s", "course/instructor.md", r"`--timeout S` per cell \(default (?P<n>\d+) s"),
    # Azure's per-resource limits and deployment lifetimes, the same in both guides.
    *[Claim(f"azure_{key}", guide, pattern) for guide, key, pattern in [
        ("course/databricks.md", "running_jobs", r"\| training jobs running at once \| (?P<n>\d+) \|"),
        ("course/databricks.md", "queued_jobs", r"\| training jobs queued \| (?P<n>\d+) \|"),
        ("course/databricks.md", "files", r"\| fine-tuning files \| (?P<n>\d+), 1 GB in all \|"),
        ("course/databricks.md", "files_gb", r"\| fine-tuning files \| 50, (?P<n>\d+) GB in all \|"),
        ("course/databricks.md", "deployments", r"\| fine-tuned model deployments \| (?P<n>\d+) \|"),
        ("course/databricks.md", "inactive_days", r"only after (?P<n>\d+) days without a call"),
        ("course/databricks.md", "developer_hours", r"is deleted after (?P<n>\d+) hours"),
        ("course/instructor.md", "running_jobs", r"\*\*(?P<n>\d+) training job runs at a time\*\*"),
        ("course/instructor.md", "queued_jobs", r"at most \*\*(?P<n>\d+) wait in the queue\*\*"),
        ("course/instructor.md", "files", r"\*\*(?P<n>\d+) fine-tuning files, 1 GB in all\*\*"),
        ("course/instructor.md", "files_gb", r"\*\*50 fine-tuning files, (?P<n>\d+) GB in all\*\*"),
        ("course/instructor.md", "deployments", r"\*\*(?P<n>\d+) fine-tuned model deployments\*\*"),
        ("course/instructor.md", "inactive_days", r"only after (?P<n>\d+) days without a call"),
        ("course/instructor.md", "developer_hours", r"is deleted after (?P<n>\d+) hours"),
    ]],
    # The notebooks (phase 2 adds the cells it corrects).
    Claim("cpu_recipe_accuracy", f"{LAB01}#cell-02", r"this recipe reaches (?P<n>[\d.]+) accuracy"),
    Claim("cpu_recipe_minutes", f"{LAB01}#cell-02", r"held-out reviews in (?P<n>\d+) minutes\."),
    Claim("cpu_top8_accuracy", f"{LAB01}#cell-02", r"8 blocks instead of 4 gives (?P<n>[\d.]+) in"),
    Claim("cpu_top8_minutes", f"{LAB01}#cell-02", r"4 gives 0\.\d+ in (?P<n>\d+) minutes"),
    Claim("cpu_recipe_accuracy", "source/01-gpt2-imdb-de/gpt2_imdb.ipynb#cell-02",
          r"(?P<n>[\d.,]+) Accuracy in \d+ Minuten", "de"),
    Claim("cpu_recipe_minutes", "source/01-gpt2-imdb-de/gpt2_imdb.ipynb#cell-02",
          r"[\d.,]+ Accuracy in (?P<n>\d+) Minuten", "de"),
    Claim("cpu_recipe_minutes", "source/01-gpt2-imdb-zh/gpt2_imdb.ipynb#cell-02",
          r"在 500 条留出影评上 (?P<n>\d+) 分钟达到", "zh"),
    Claim("lab02_steps", f"{LAB02}#intro", r"for the (?P<n>\d+) steps of this data set"),
    Claim("min_examples", f"{LAB02}#2-validate-the-data-before-paying-for-it",
          r"at least (?P<n>\d+) examples"),
    Claim("gpt4o_token_limit", f"{LAB02}#4-estimate-epochs-and-cost",
          r"\((?P<n>[\d,]+) tokens for gpt-4o\)"),
    Claim("gpt4o_token_limit", "source/02-gpt4o-jsonl-de/gpt4o_jsonl.ipynb#4-estimate-epochs-and-cost",
          r"\((?P<n>[\d.]+) Tokens bei gpt-4o\)", "de"),
    # Issue 18, phase 2: what the notebooks' corrected cells state, in every language.
    *[Claim(fact, f"{LAB01_IN[lang]}#{cell}", pattern, lang, holds) for fact, cell, holds, by_lang in [
        ("cpu_recipe_minutes", "cell-00", None, {
            "en": r"only the top layers train: about (?P<n>\d+) minutes of training and evaluation",
            "de": r"etwa (?P<n>\d+) Minuten für Training und Evaluation",
            "zh": r"训练加评估约 (?P<n>\d+) 分钟"}),
        ("offline_backbone_file", "cell-00", _instruct_4bit, {
            "en": r"SmolLM2-135M-Instruct \(shipped 4-bit, dequantised when loaded\)",
            "de": r"SmolLM2-135M-Instruct \(4-bit-quantisiert ausgeliefert, beim Laden dequantisiert\)",
            "zh": r"SmolLM2-135M-Instruct（以 4-bit 量化形式分发，加载时反量化）"}),
        ("imdb_reviews_with_end_of_text", "cell-07", _zero, {
            "en": r"`<\|endoftext\|>` occurs in none of IMDB's training reviews, and neither does "
                  r"`<\|im_end\|>`",
            "de": r"`<\|endoftext\|>` von GPT-2 kommt in keiner Trainingskritik von IMDB vor, "
                  r"`<\|im_end\|>` des Offline-SmolLM2 ebenso wenig",
            "zh": r"`<\|endoftext\|>` 没有出现在任何一条 IMDB 训练影评中，离线使用的 SmolLM2 的 "
                  r"`<\|im_end\|>` 也没有"}),
        ("imdb_train_size", "cell-10", None, {
            "en": r"the first (?P<n>[\d,]+) training reviews are all negative",
            "de": r"Die ersten (?P<n>[\d.]+) Trainingskritiken sind alle negativ",
            "zh": r"前 (?P<n>[\d,]+) 条训练影评全是差评"}),
        ("imdb_unshuffled_positive_pct", "cell-10", _zero, {
            "en": r"\*\*sorted by label\*\* \(the Hub's files and the course's offline copy alike\): "
                  r"the first [\d,]+ training reviews are all negative",
            "de": r"\*\*nach Label sortiert\*\* \(die Dateien des Hubs ebenso wie die Offline-Kopie "
                  r"des Kurses\): Die ersten [\d.]+ Trainingskritiken sind alle negativ",
            "zh": r"\*\*按标签排好序的\*\*（Hub 上的文件和课程的离线副本都是如此）：前 [\d,]+ 条训练影评全是差评"}),
        ("transformers_eval_strategy_renamed", "cell-27", None, {
            "en": r"renamed `eval_strategy=` in transformers (?P<s>[\d.]+) and",
            "de": r"wurde in transformers (?P<s>[\d.]+) in `eval_strategy=` umbenannt",
            "zh": r"在 transformers (?P<s>[\d.]+) 中改名为 `eval_strategy=`"}),
        ("transformers_evaluation_strategy_removed", "cell-27", None, {
            "en": r"and removed in (?P<s>[\d.]+); `Trainer\(tokenizer=\.\.\.\)`",
            "de": r"und in (?P<s>[\d.]+) entfernt; `Trainer\(tokenizer=\.\.\.\)`",
            "zh": r"并在 (?P<s>[\d.]+) 中被移除；`Trainer\(tokenizer=\.\.\.\)`"}),
        ("transformers_processing_class_introduced", "cell-27", None, {
            "en": r"\(deprecated in (?P<s>[\d.]+), removed in \d+\)",
            "de": r"\(in (?P<s>[\d.]+) als veraltet markiert, in \d+ entfernt\)",
            "zh": r"（(?P<s>[\d.]+) 起标记为弃用，\d+ 中移除）"}),
        ("transformers_tokenizer_removed", "cell-27", None, {
            "en": r"\(deprecated in [\d.]+, removed in (?P<s>\d+)\)",
            "de": r"als veraltet markiert, in (?P<s>\d+) entfernt\)",
            "zh": r"起标记为弃用，(?P<s>\d+) 中移除）"}),
    ] for lang, pattern in by_lang.items()],
    *[Claim(fact, f"{LAB02_IN[lang]}#{cell}", pattern, lang, holds) for fact, cell, holds, by_lang in [
        ("lab02_steps", "intro", None, {
            "de": r"für die (?P<n>\d+) Schritte dieses Datensatzes",
            "zh": r"这个数据集的 (?P<n>\d+) 步"}),
        ("gpt4o_ft_retires", "the-model-clock", None, {
            "en": r"gpt-4o-2024-08-06 and gpt-4o-mini-2024-07-18 on (?P<s>\d{4}-\d\d-\d\d)",
            "de": r"gpt-4o-2024-08-06 und gpt-4o-mini-2024-07-18 am (?P<s>\d{4}-\d\d-\d\d)",
            "zh": r"gpt-4o-2024-08-06 和 gpt-4o-mini-2024-07-18 的微调于 (?P<s>\d{4}-\d\d-\d\d) 结束"}),
        ("gpt41_ft_retires", "the-model-clock", None, {
            "en": r"of the gpt-4\.1 family on (?P<s>\d{4}-\d\d-\d\d)",
            "de": r"der gpt-4\.1-Familie am (?P<s>\d{4}-\d\d-\d\d)",
            "zh": r"gpt-4\.1 系列的微调于 (?P<s>\d{4}-\d\d-\d\d) 结束"}),
        ("tokens_per_message", "3-count-tokens", None, {
            "en": r"\*\*(?P<n>\d+) tokens per message\*\*",
            "de": r"\*\*(?P<n>\d+) Tokens pro Nachricht\*\*",
            "zh": r"\*\*每条消息 (?P<n>\d+) 个 token\*\*"}),
        ("auto_epochs_target_epochs", "4-estimate-epochs-and-cost", None, {
            "en": r"start from \*\*(?P<n>\d+)\*\* epochs",
            "de": r"mit \*\*(?P<n>\d+)\*\* Epochen beginnen",
            "zh": r"从 \*\*(?P<n>\d+)\*\* 个 epoch 开始"}),
        *[(fact, "4-estimate-epochs-and-cost", None, dict.fromkeys(("en", "de", "zh"), pattern))
          for fact, pattern in [("auto_epochs_min_target_examples", r"`3 \* n < (?P<n>\d+)`"),
                                ("auto_epochs_max_default_epochs", r"`min\((?P<n>\d+), 100 // n\)`"),
                                ("auto_epochs_max_target_examples", r"`3 \* n > (?P<n>\d+)`")]],
        ("earlier_checkpoints", "the-service-keeps-a-checkpoint-a-usable", _two, {
            "en": r"the final model \(`fine_tuned_model`\) and checkpoints from the two epochs before it",
            "de": r"das finale Modell \(`fine_tuned_model`\) und die Checkpoints der beiden Epochen davor",
            "zh": r"最终模型（`fine_tuned_model`），以及它之前两个 epoch 的检查点"}),
        ("azure_inactive_days", "9-deploy-and-chat", None, {
            "en": r"Azure deletes it after (?P<n>\d+) days without a call",
            "de": r"Azure löscht es nach (?P<n>\d+) Tagen ohne Aufruf",
            "zh": r"连续 (?P<n>\d+) 天没有调用，Azure 会删除它"}),
        ("azure_developer_hours", "9-deploy-and-chat", None, {
            "en": r"no hourly fee and is deleted after (?P<n>\d+) hours",
            "de": r"keine Stundengebühr und wird nach (?P<n>\d+) Stunden gelöscht",
            "zh": r"不按小时收费，(?P<n>\d+) 小时后被删除"}),
        ("azure_files", "10-clean-up", None, {
            "en": r"at most (?P<n>\d+) fine-tuning files, 1 GB in all",
            "de": r"höchstens (?P<n>\d+) Fine-Tuning-Dateien, insgesamt 1 GB",
            "zh": r"最多存放 (?P<n>\d+) 个微调文件，总计 1 GB"}),
        ("azure_files_gb", "10-clean-up", None, {
            "en": r"at most 50 fine-tuning files, (?P<n>\d+) GB in all",
            "de": r"höchstens 50 Fine-Tuning-Dateien, insgesamt (?P<n>\d+) GB",
            "zh": r"最多存放 50 个微调文件，总计 (?P<n>\d+) GB"}),
    ] for lang, pattern in by_lang.items()],
]


# --------------------------------------------------------------------------- reading the text

@dataclass(frozen=True)
class Text:
    """A place's text, collapsed (white space runs → one space), with a map back to lines."""

    label: str
    original: str
    collapsed: str
    offsets: tuple[int, ...]  # offsets[i]: where collapsed[i] is in original

    def line(self, collapsed_index: int) -> int:
        return self.original.count("\n", 0, self.offsets[collapsed_index]) + 1


@functools.cache
def read_place(place: str) -> Text:
    path, _, cell = place.partition("#")
    file = ROOT / path
    assert file.is_file(), f"{path}: no such file (a claim or stale phrase names it)"
    if not cell:
        return _collapse(path, file.read_text(encoding="utf-8"))
    notebook = json.loads(file.read_text(encoding="utf-8"))
    for candidate in notebook["cells"]:
        grade_id = candidate.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell in (candidate.get("id"), grade_id):
            source = candidate["source"]
            return _collapse(f"{path}, cell {cell}", "".join(source) if isinstance(source, list)
                             else source)
    raise AssertionError(f"{path}: no cell with id or grade_id {cell!r}; the notebook was "
                         "restructured: point the claim at the cell that now holds the sentence")


def _collapse(label: str, text: str) -> Text:
    pieces: list[str] = []
    offsets: list[int] = []
    for token in re.finditer(r"\s+|\S+", text):
        if token.group().isspace():
            pieces.append(" ")
            offsets.append(token.start())
        else:
            pieces.append(token.group())
            offsets.extend(range(token.start(), token.end()))
    return Text(label, text, "".join(pieces), tuple(offsets))


def parse_number(written: str, lang: str) -> Decimal:
    """A number as the text writes it: ``1,000`` / ``0.81`` (en, zh); ``1.000`` / ``0,69`` (de,
    which writes decimals with a comma, though some notebook text keeps ``0.81``)."""
    if lang == "de":
        if re.fullmatch(r"\d{1,3}(\.\d{3})+", written):
            return Decimal(written.replace(".", ""))
        return Decimal(written.replace(",", "."))
    return Decimal(written.replace(",", ""))


def rounded_like(value: float, written: str, lang: str) -> Decimal:
    """``value`` rounded to the decimals the text shows (half up, as people round)."""
    stated = parse_number(written, lang)
    exponent = stated.as_tuple().exponent
    return Decimal(str(value)).quantize(Decimal(1).scaleb(min(exponent, 0)), rounding=ROUND_HALF_UP)


def written_like(value: Decimal, written: str, lang: str) -> str:
    """``value`` written the way ``written`` is (thousands separator, decimal mark): what the
    text should say instead."""
    decimals = max(0, -value.as_tuple().exponent)
    grouped = (re.fullmatch(r"\d{1,3}(\.\d{3})+", written) is not None if lang == "de"
               else "," in written)
    text = f"{value:,.{decimals}f}" if grouped else f"{value:.{decimals}f}"
    if lang == "de" and (grouped or "," in written):
        text = text.translate(str.maketrans(",.", ".,"))
    return text


# --------------------------------------------------------------------------- the tests

@pytest.mark.parametrize("claim", CLAIMS, ids=str)
def test_the_text_states_what_the_code_computes(claim: Claim) -> None:
    fact = FACTS[claim.fact]
    text = read_place(claim.place)
    matches = list(re.finditer(claim.pattern, text.collapsed))
    assert matches, (
        f"{text.label}: nothing matches /{claim.pattern}/, the sentence that states "
        f"{claim.fact} ({fact.source}). If the text was reworded, update the claim in "
        "tests/test_course_facts.py; if the sentence was removed, remove the claim.")
    value = fact.compute()
    for match in matches:
        where = f"{text.label}, line {text.line(match.start())}: {match.group(0)!r}"
        if "s" in match.groupdict():
            assert match["s"] == str(value), (
                f"{where} states {match['s']}, but {claim.fact} is {value} ({fact.source}): "
                f"write {value}, or fix what computes it")
        elif "n" in match.groupdict():
            stated = parse_number(match["n"], claim.lang)
            expected = rounded_like(value, match["n"], claim.lang)
            assert stated == expected, (
                f"{where} states {match['n']}, but {claim.fact} is {value} ({fact.source}): "
                f"write {written_like(expected, match['n'], claim.lang)}, or fix what computes it")
        else:
            assert claim.holds is not None, f"{claim}: a claim without a group 'n' or 's' needs holds="
            assert claim.holds(value), (
                f"{where} is no longer true: {claim.fact} is {value} ({fact.source})")


def test_every_fact_is_stated_somewhere() -> None:
    unused = set(FACTS) - {claim.fact for claim in CLAIMS}
    assert not unused, f"facts no claim uses (remove them or add the claims): {sorted(unused)}"


def test_the_cpu_timing_was_measured_with_the_recipe_the_notebook_runs() -> None:
    """The minutes and accuracy quoted from bench/results/cpu_accuracy*.json describe the CPU
    recipe of `helpers.classifier.default_recipe`; a changed recipe makes them stale."""
    from helpers import classifier

    recipe = classifier.default_recipe(classifier.Backbone("SmolLM2-135M", "packaged", "/x", ""),
                                       device="cpu", fast=False)
    measured = _cpu_measurement("recipe")
    expected = {"max_length": recipe.max_length, "train_size": recipe.train_size,
                "epochs": recipe.epochs, "trainable_layers": recipe.trainable_layers,
                "learning_rate": recipe.learning_rate, "batch_size": recipe.train_batch_size,
                "truncation_side": recipe.truncation_side}
    if "eval_size" in measured:
        expected["eval_size"] = recipe.eval_size
    differ = {key: (measured.get(key), value) for key, value in expected.items()
              if measured.get(key) != value}
    assert not differ, (
        f"bench/results/cpu_accuracy*.json's 'recipe' was measured with another CPU recipe "
        f"(bench, code): {differ}. Re-run `python -m bench.cpu_accuracy --configs recipe,top8 "
        "--profile long` and regenerate the README (`python -m bench.summary --write README.md`).")


def test_the_trainer_arguments_lab01_calls_old_are_gone_from_the_transformers_it_needs() -> None:
    """Lab 01's notes (steps 3 and 6) say which `TrainingArguments`/`Trainer` arguments are gone
    and what replaced them; the transformers the course installs must agree."""
    import dataclasses
    import inspect

    import transformers

    assert int(transformers.__version__.split(".")[0]) >= _required_major("transformers")
    fields = {field.name: field for field in dataclasses.fields(transformers.TrainingArguments)}
    assert "eval_strategy" in fields and "evaluation_strategy" not in fields
    assert "train_sampling_strategy" in fields and "group_by_length" not in fields
    transformers.TrainingArguments("unused", train_sampling_strategy="group_by_length")
    assert fields["report_to"].default == "none", fields["report_to"].default
    parameters = inspect.signature(transformers.Trainer.__init__).parameters
    assert "processing_class" in parameters and "tokenizer" not in parameters
    assert int(TRANSFORMERS_HISTORY["tokenizer_removed"]) <= _required_major("transformers")


# --------------------------------------------------------------------------- the label-order pitfall

def _visible_subsets_test(notebook: str) -> str:
    cells = json.loads((ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "test_subsets":
            source = "".join(cell["source"])
            return source.split("### BEGIN HIDDEN TESTS")[0]
    raise AssertionError(f"{notebook}: no test_subsets cell")


RELEASES = ["release/01-gpt2-imdb/gpt2_imdb.ipynb", "release/01-gpt2-imdb-de/gpt2_imdb.ipynb",
            "release/01-gpt2-imdb-zh/gpt2_imdb.ipynb"]


@pytest.mark.parametrize("notebook", RELEASES)
@pytest.mark.parametrize("sizes", [(1000, 500), (48, 32)], ids=["full", "fast"])
def test_a_missing_shuffle_fails_the_visible_subsets_test_offline(notebook: str, sizes) -> None:
    """The pitfall the reading and step 3 describe is real on the offline data: subsets taken
    without ``shuffle`` are all negative, and the student's visible test says so."""
    import numpy as np


    dataset = _packaged_imdb()
    train_size, eval_size = sizes
    code = _visible_subsets_test(notebook)
    unshuffled = {"np": np, "TRAIN_SIZE": train_size, "EVAL_SIZE": eval_size,
                  "small_train_dataset": dataset["train"].select(range(train_size)),
                  "small_eval_dataset": dataset["test"].select(range(eval_size))}
    with pytest.raises(AssertionError, match="did you shuffle before selecting"):
        exec(compile(code, notebook, "exec"), unshuffled)  # noqa: S102 - the notebook's own test
    train, evaluation = reference_imdb.seed_subsets(dataset, train_size, eval_size)
    shuffled = {**unshuffled, "small_train_dataset": train, "small_eval_dataset": evaluation}
    exec(compile(code, notebook, "exec"), shuffled)  # noqa: S102 - passes with the lab's shuffle


# --------------------------------------------------------------------------- corrected statements

@dataclass(frozen=True)
class Stale:
    place: str
    pattern: str
    why: str

    def __str__(self) -> str:
        return f"{self.place} /{self.pattern}/"


STALE: list[Stale] = [
    *[Stale(READINGS[lang], pattern, "lab 02's validator reports every broken line, it does not stop")
      for lang, pattern in [("en", r"stops on the first broken"), ("de", r"bricht beim ersten Fehler ab"),
                            ("zh", r"遇到第一处错误就停下")]],
    *[Stale(READINGS[lang], pattern, "neither Azure nor the emulator uses the Trainer")
      for lang, pattern in [("en", r"because that is what they are"), ("de", r"denn genau das sind sie"),
                            ("zh", r"因为它本来就是")]],
    Stale("course/README.md", r"~15 min", "lab 01 on a CPU takes the minutes the bench measured (cpu_recipe_minutes)"),
    Stale("course/README.md", r"a validation loss, checkpoints\)", "lab 01 writes no checkpoints"),
    Stale("course/databricks.md", r"Checkpoints and the saved model go", "lab 01 writes no checkpoints"),
    Stale("course/databricks.md", r"num_processes=2, local_mode=True\)", "nodes of section 2 have one GPU"),
    Stale("course/databricks.md", r"15\.4 LTS ML or newer", "15.4 ships MLflow 2; the course needs 3"),
    Stale("course/databricks.md", r"\(billed per hour, even idle\)", "Developer deployments have no hourly fee"),
    Stale("course/student.md", r"Cells without those markers are locked",
          "only the set-up and test cells are locked"),
    # Issue 18, phase 2: the notebooks, in every language.
    *[Stale(f"{notebooks[lang]}#{cell}", pattern, why)
      for notebooks, cell, why, by_lang in [
          (LAB01_IN, "cell-00", "the CPU recipe takes the minutes the bench measured (cpu_recipe_minutes)", {
              "en": r"about 15 minutes on 2 cores", "de": r"etwa 15 Minuten auf 2 Kernen",
              "zh": r"2 核约 15 分钟"}),
          (LAB01_IN, "cell-07", "true only while the pad id never occurs inside a review", {
              "en": r"which id we pad with does not change the result",
              "de": r"mit welcher ID wir auffüllen, ändert das Ergebnis also nicht",
              "zh": r"所以用哪个 id 填充不影响结果"}),
          (LAB01_IN, "cell-22", "compute_metrics runs once on the whole evaluation set", {
              "en": r"A batch in which the model predicts no positive",
              "de": r"Ein Batch, in dem das Modell keine einzige Kritik",
              "zh": r"如果某个 batch 里模型一条好评都没预测出来"}),
          (LAB01_IN, "cell-27", "evaluation_strategy went in 4.51, tokenizer= in 5", {
              "en": r"`evaluation_strategy=` and `Trainer\(tokenizer=\.\.\.\)` were removed in "
                    r"transformers 5",
              "de": r"wurden in transformers 5 entfernt", "zh": r"在 transformers 5 中已被移除"}),
          (LAB01_IN, "cell-27", "4.50 still took evaluation_strategy; 4.51 removed it", {
              "en": r"evaluation_strategy=` was renamed `eval_strategy=` in transformers 4\.41 and "
                    r"removed in 4\.46",
              "de": r"und in 4\.46 entfernt", "zh": r"并在 4\.46 中被移除"}),
          (LAB02_IN, "3-count-tokens", "the cookbook estimates 3 tokens a message",
           dict.fromkeys(("en", "de", "zh"), r"`<\|end\|>`")),
          (LAB02_IN, "4-estimate-epochs-and-cost", "Azure does not document its rule", {
              "en": r"picks the number of epochs from the data set's size",
              "de": r"anhand der Größe des Datensatzes", "zh": r"根据数据集大小选择 epoch 数"}),
          (LAB02_IN, "6-submit-the-fine-tuning-job", "Azure documents no rule: read job.hyperparameters", {
              "en": r"the service applies the estimate of step 4",
              "de": r"Der Dienst wendet die Schätzung aus Schritt 4 an", "zh": r"服务会采用第 4 步中的估算规则"}),
          (LAB02_IN, "7-monitor-the-job", "Azure's jobs go pending → running → succeeded",
           dict.fromkeys(("en", "de", "zh"), r"validating_files → queued → running → succeeded")),
          (LAB02_IN, "the-service-keeps-a-checkpoint-a-usable",
           "Azure keeps the final model and two earlier checkpoints", {
              "en": r"at the end of the last epochs", "de": r"am Ende der letzten Epochen",
              "zh": r"在最后几个 epoch 结束时各保存一个检查点"}),
      ] for lang, pattern in by_lang.items()],
]


def _stale_test(stale: Stale) -> None:
    text = read_place(stale.place)
    match = re.search(stale.pattern, text.collapsed)
    assert match is None, (f"{text.label}, line {text.line(match.start())}: {match.group(0)!r} "
                           f"was corrected ({stale.why}); do not bring it back")


@pytest.mark.parametrize("stale", STALE, ids=str)
def test_corrected_statements_stay_corrected(stale: Stale) -> None:
    _stale_test(stale)


@pytest.mark.parametrize("lang", list(LAB02_IN))
def test_lab02s_intro_lists_its_eleven_steps_one_per_line(lang: str) -> None:
    """Markdown numbers a list from its first item and ignores later numbers: a line starting
    "7. monitor it, 8. read the results, ..." rendered step 11 as "8." (the collapsed text the
    other checks read cannot see line starts, so this one reads the lines)."""
    text = read_place(f"{LAB02_IN[lang]}#intro").original
    numbers = [int(found[1]) for found in re.finditer(r"^(\d+)\. ", text, re.MULTILINE)]
    assert numbers == list(range(1, 12)), (
        f"{LAB02_IN[lang]}, cell intro: the numbered steps start lines as {numbers}; "
        "put each of the 11 steps on its own line")
    stray = re.findall(r"^\d+\. .*?, (\d+)\. ", text, re.MULTILINE)
    assert not stray, f"{LAB02_IN[lang]}, cell intro: step(s) {stray} inside another step's line"


def test_the_guard_itself_reads_numbers_as_each_language_writes_them() -> None:
    assert parse_number("1,000", "en") == 1000 and parse_number("1.000", "de") == 1000
    assert parse_number("0,69", "de") == Decimal("0.69") and parse_number("0.81", "de") == Decimal("0.81")
    assert parse_number("65,536", "zh") == 65536
    assert rounded_like(5.83, "6", "en") == 6 and rounded_like(0.814, "0.81", "en") == Decimal("0.81")
    assert rounded_like(0.845, "0.85", "en") == Decimal("0.85")  # half up, not to even
    assert written_like(Decimal(1000), "1.500", "de") == "1.000"
    assert written_like(Decimal("0.69"), "0,70", "de") == "0,69"
    assert written_like(Decimal("0.81"), "0.80", "de") == "0.81"
    assert written_like(Decimal(65536), "65,000", "en") == "65,536"
    assert written_like(Decimal(6), "15", "en") == "6"
    text = _collapse("t", "one\n  two\nthree four")
    found = re.search("two three", text.collapsed)
    assert found and text.line(found.start()) == 2
