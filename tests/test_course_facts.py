"""Numbers the course text states that the code can compute, checked against the code.

A `Fact` computes a value from the code, the packaged data, a committed bench result or the
project's configuration (and, for the few facts only a vendor's documentation holds, from one
registry here with its source). A `Claim` says where the text states it: a Markdown file
(``course/reading/de.md``) or one cell of a notebook (``source/01-gpt2-imdb/gpt2_imdb.ipynb#cell-02``,
by cell id or nbgrader grade_id), with a regular expression matched against the text with every
run of white space collapsed to one space (so a sentence may wrap). The group ``n`` is the
number as written: it must equal the fact, rounded to as many decimals as the text shows
(``0.81`` for 0.814, ``6 minutes`` for 5.83). A claim without a number has a ``holds`` test
instead: "all negative" holds while the share of positive reviews is 0. Every match of a claim's
pattern is checked, and a pattern that no longer matches fails too, so rewording the text means
updating the claim here.

`STALE` lists wrong statements that were corrected, so they do not come back; `PENDING` lists
those still in the notebooks (issue 18, phase 2), expected to fail until the notebook text is
corrected, and then to move to `STALE`.

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

ROOT = Path(__file__).resolve().parent.parent
LAB01 = "source/01-gpt2-imdb/gpt2_imdb.ipynb"
LAB02 = "source/02-gpt4o-jsonl/gpt4o_jsonl.ipynb"
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
    arguments = classifier.training_arguments(recipe, ROOT / "outputs" / "unused", report_to="none")
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
    "lab02_examples": Fact(lambda: _lab02_job()["examples"], "lab 02's training_set.jsonl"),
    "lab02_auto_epochs": Fact(lambda: _lab02_job()["epochs"],
                              "helpers.emulator.training.resolve_hyperparameters on lab 02's data"),
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
                                    "helpers.classifier.training_arguments: save_strategy"),
    "offline_backbone_file": Fact(_offline_backbone_file, "helpers.assets.SMOLLM2_GGUF_NAME"),
    "earlier_checkpoints": Fact(lambda: _emulator_checkpoint_epochs() - 1,
                                "helpers.emulator.training.CHECKPOINT_EPOCHS - 1 (as Azure keeps)"),
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
    Claim("cpu_recipe_minutes", "course/README.md", r"about (?P<n>\d+) minutes on two idle laptop CPU"),
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
    # The README's measured run of lab 02 describes the job the emulator runs on its data.
    Claim("lab02_examples", "README.md", r"the job \((?P<n>\d+) training examples, auto"),
    Claim("lab02_auto_epochs", "README.md", r"training examples, auto: (?P<n>\d+) epochs"),
    Claim("lab02_steps", "README.md", r"batch size 1, (?P<n>\d+) steps, seed 105"),
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
        if "n" in match.groupdict():
            stated = parse_number(match["n"], claim.lang)
            expected = rounded_like(value, match["n"], claim.lang)
            assert stated == expected, (
                f"{where} states {match['n']}, but {claim.fact} is {value} ({fact.source}): "
                f"write {written_like(expected, match['n'], claim.lang)}, or fix what computes it")
        else:
            assert claim.holds is not None, f"{claim}: a claim without a group 'n' needs holds="
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

    from helpers import imdb

    dataset = _packaged_imdb()
    train_size, eval_size = sizes
    code = _visible_subsets_test(notebook)
    unshuffled = {"np": np, "TRAIN_SIZE": train_size, "EVAL_SIZE": eval_size,
                  "small_train_dataset": dataset["train"].select(range(train_size)),
                  "small_eval_dataset": dataset["test"].select(range(eval_size))}
    with pytest.raises(AssertionError, match="did you shuffle before selecting"):
        exec(compile(code, notebook, "exec"), unshuffled)  # noqa: S102 - the notebook's own test
    train, evaluation = imdb.seed_subsets(dataset, train_size, eval_size)
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
    Stale("course/README.md", r"~15 min", "lab 01 takes about 6 minutes on a CPU (bench)"),
    Stale("course/README.md", r"a validation loss, checkpoints\)", "lab 01 writes no checkpoints"),
    Stale("course/databricks.md", r"Checkpoints and the saved model go", "lab 01 writes no checkpoints"),
    Stale("course/databricks.md", r"num_processes=2, local_mode=True\)", "nodes of section 2 have one GPU"),
    Stale("course/databricks.md", r"15\.4 LTS ML or newer", "15.4 ships MLflow 2; the course needs 3"),
    Stale("course/databricks.md", r"\(billed per hour, even idle\)", "Developer deployments have no hourly fee"),
    Stale("course/student.md", r"Cells without those markers are locked",
          "only the set-up and test cells are locked"),
]

#: Still in the notebooks until phase 2 of issue 18 corrects them (expected to fail now).
PENDING: list[Stale] = [
    Stale(f"{LAB01}#cell-00", r"about 15 minutes on 2 cores", "the CPU recipe takes about 6 minutes"),
    Stale(f"{LAB01}#cell-07", r"which id we pad with does not change the result",
          "true only while the pad id never occurs inside a review"),
    Stale(f"{LAB01}#cell-22", r"A batch in which the model predicts no positive",
          "compute_metrics runs on the whole evaluation set"),
    Stale(f"{LAB01}#cell-27", r"`evaluation_strategy=` and `Trainer\(tokenizer=\.\.\.\)` were removed in "
                              r"transformers 5", "evaluation_strategy went in 4.46"),
    Stale(f"{LAB02}#6-submit-the-fine-tuning-job", r"the service applies the estimate of step 4",
          "Azure documents no rule: read job.hyperparameters"),
    Stale(f"{LAB02}#the-service-keeps-a-checkpoint-a-usable", r"at the end of the last epochs",
          "Azure keeps the final model and two earlier checkpoints"),
    Stale(f"{LAB02}#intro", r"7\. monitor it, 8\. read the results",
          "a line starting '7. ..., 8. ...' renumbers step 11 as 8"),
]


def _stale_test(stale: Stale) -> None:
    text = read_place(stale.place)
    match = re.search(stale.pattern, text.collapsed)
    assert match is None, (f"{text.label}, line {text.line(match.start())}: {match.group(0)!r} "
                           f"was corrected ({stale.why}); do not bring it back")


@pytest.mark.parametrize("stale", STALE, ids=str)
def test_corrected_statements_stay_corrected(stale: Stale) -> None:
    _stale_test(stale)


@pytest.mark.parametrize("stale", [pytest.param(
    s, marks=pytest.mark.xfail(strict=True, reason=(
        "still in the notebook until issue 18's phase 2; once corrected, move this entry from "
        "PENDING to STALE in tests/test_course_facts.py"))) for s in PENDING], ids=str)
def test_statements_pending_correction_in_the_notebooks(stale: Stale) -> None:
    _stale_test(stale)


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
