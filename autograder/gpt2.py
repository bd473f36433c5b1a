"""Hidden checks of assignment 01 (fine-tune GPT-2 on IMDB).

Each hidden test cell of ``source/01-gpt2-imdb/gpt2_imdb.ipynb`` calls one function here. A
check tries the student's object on cases the notebook never showed and raises `CheckFailed`
(an ``AssertionError``) whose message says what was expected, what was found and where to look.
A check returns ``None`` when it passes: a test cell must show no value, because nbgrader
reads a test cell's result as partial credit (and any output on stderr as a failure).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np


class CheckFailed(AssertionError):
    """A hidden check failed; the message is written for the student."""


def _fail(message: str) -> None:
    raise CheckFailed(message)


def _missing(name: str, value: Any, hint: str) -> None:
    if value is None:
        _fail(f"`{name}` is not defined (or is None). {hint}")


# --------------------------------------------------------------------------- step 2: tokenize

#: Texts the notebook never shows: one far longer than any max_length used, short ones of
#: different lengths, non-ASCII, markup as IMDB has it.
UNSEEN_TEXTS = [
    "Terrible pacing. " * 400,
    "Loved it!",
    "A slow start, but the final act <br /><br />is worth every minute — trust me.",
    "Ni bueno ni malo: simplemente olvidable. 🎬",
]


def check_tokenizer(tokenizer) -> None:
    """The tokenizer can pad: it has a pad token, and (for GPT-2) it is the end-of-text token."""
    _missing("tokenizer", tokenizer, "Load it in step 2.")
    if getattr(tokenizer, "pad_token", None) is None:
        _fail(
            "The tokenizer has no pad token, so neither the data collator nor the model can pad a "
            "batch. GPT-2 was trained without one: set `tokenizer.pad_token = tokenizer.eos_token`."
        )


def check_tokenize_function(tokenize_function, tokenizer, max_length: int) -> None:
    """``tokenize_function({"text": [...]})`` (the batched ``map`` form) truncates to
    ``max_length``, does not pad, and returns ``input_ids`` with an all-ones ``attention_mask``."""
    _missing("tokenize_function", tokenize_function, "Define it in step 2.")
    check_tokenizer(tokenizer)
    try:
        result = tokenize_function({"text": list(UNSEEN_TEXTS)})
    except NotImplementedError:
        _fail("`tokenize_function` still raises NotImplementedError: replace it with your code.")
    except Exception as error:  # noqa: BLE001 - report any error to the student
        _fail(
            "`tokenize_function({'text': [four reviews]})` raised "
            f"{type(error).__name__}: {error}. It receives a batch (a dict whose 'text' is a list of "
            "strings) because `map` is called with `batched=True`."
        )
    if not hasattr(result, "keys") or "input_ids" not in result:
        _fail(
            "`tokenize_function` should return the tokenizer's output (a dict-like object with "
            f"'input_ids' and 'attention_mask'); it returned {type(result).__name__}."
        )
    if "attention_mask" not in result:
        _fail("The output has no 'attention_mask': call the tokenizer itself, which returns one.")
    rows = result["input_ids"]
    if len(rows) != len(UNSEEN_TEXTS) or not all(hasattr(row, "__len__") for row in rows):
        _fail(
            f"4 texts in, but input_ids is not 4 lists of token ids (found {str(rows)[:80]}...): "
            "tokenize every text of the batch, `tokenizer(examples[\"text\"], ...)`."
        )
    ids = [list(map(int, row)) for row in rows]
    masks = [list(map(int, row)) for row in result["attention_mask"]]
    if len(ids) != len(UNSEEN_TEXTS):
        _fail(f"4 texts in, {len(ids)} rows of input_ids out: tokenize every text of the batch.")
    full = tokenizer(list(UNSEEN_TEXTS), verbose=False)["input_ids"]
    expected_lengths = [min(len(row), max_length) for row in full]
    lengths = [len(row) for row in ids]
    if len(set(lengths)) == 1 and lengths[0] == max_length and expected_lengths != lengths:
        _fail(
            f"Every sequence has exactly {max_length} tokens: the function pads to `max_length`. "
            "Do not pad at `map` time (no `padding=` argument): `DataCollatorWithPadding` pads each "
            "batch only to its own longest review, so no compute goes to padding that a batch does not need."
        )
    if max(lengths) > max_length:
        _fail(
            f"A long review came back with {max(lengths)} tokens, more than max_length={max_length}: "
            f"pass `truncation=True, max_length={max_length}` (the variable MAX_LENGTH) to the tokenizer."
        )
    if lengths != expected_lengths:
        if len(set(lengths)) == 1:
            _fail(
                f"All sequences have {lengths[0]} tokens, expected {expected_lengths}: the function "
                "pads the batch (`padding=True` or 'longest'). Leave padding to the data collator."
            )
        _fail(
            f"Token counts {lengths} differ from the expected {expected_lengths} "
            f"(truncation to max_length={max_length}, no padding)."
        )
    reference = tokenizer(list(UNSEEN_TEXTS), truncation=True, max_length=max_length)["input_ids"]
    if ids != [list(row) for row in reference]:
        _fail(
            "The token ids differ from the tokenizer's own `tokenizer(texts, truncation=True, "
            f"max_length={max_length})`: tokenize the raw 'text' column with the loaded tokenizer."
        )
    if any(any(value != 1 for value in row) for row in masks) or [len(m) for m in masks] != lengths:
        _fail("The attention masks should be all ones, one per token (nothing is padded yet).")


# --------------------------------------------------------------------------- step 3: subsets

def _column(dataset, name: str):
    try:
        return list(dataset[name])
    except (KeyError, ValueError):
        return None


def check_subsets(small_train, small_eval, dataset, train_size: int, eval_size: int,
                  seed: int = 42) -> None:
    """The subsets are ``dataset[split].shuffle(seed=42).select(range(n))`` of train and test."""
    _missing("small_train_dataset", small_train, "Build it in step 3.")
    _missing("small_eval_dataset", small_eval, "Build it in step 3.")
    for name, subset, split, size in (
        ("small_train_dataset", small_train, "train", train_size),
        ("small_eval_dataset", small_eval, "test", eval_size),
    ):
        if not hasattr(subset, "__len__") or len(subset) != size:
            found = len(subset) if hasattr(subset, "__len__") else type(subset).__name__
            _fail(f"`{name}` should hold {size} examples (from the '{split}' split); found {found}.")
        reference = dataset[split].shuffle(seed=seed).select(range(size))
        labels = _column(subset, "label")
        if labels is None:
            _fail(f"`{name}` has no 'label' column: keep the labels when you select the subset.")
        texts = _column(subset, "text")
        if texts is not None:
            same = texts == list(reference["text"])
        else:  # already tokenized and the text column dropped: compare the first tokens' labels
            same = labels == list(reference["label"])
        if same and labels == list(reference["label"]):
            continue
        other = "test" if split == "train" else "train"
        if texts is not None and texts == list(dataset[other].shuffle(seed=seed).select(range(size))["text"]):
            _fail(f"`{name}` comes from the '{other}' split; it should come from '{split}'.")
        if texts is not None and texts == list(dataset[split].select(range(size))["text"]):
            _fail(
                f"`{name}` is the first {size} reviews of '{split}' without shuffling. IMDB's splits "
                "are sorted by label, so that subset is (nearly) one class. "
                f"Use `.shuffle(seed={seed}).select(range({size}))`."
            )
        share = float(np.mean(labels)) if labels else 0.0
        _fail(
            f"`{name}` does not match `dataset['{split}'].shuffle(seed={seed}).select(range({size}))` "
            f"(its share of positive reviews is {share:.2f}). Shuffle with seed={seed} exactly, then "
            "select the first examples; a different seed gives a different subset, and results "
            "are no longer comparable with the lab's."
        )


# --------------------------------------------------------------------------- step 4: model

def check_model(model, tokenizer) -> None:
    """A sequence-classification head with two labels, consistent ``id2label``/``label2id`` and
    the pad token id in its config; a padded batch of two reviews runs through it."""
    _missing("model", model, "Build it in step 4.")
    check_tokenizer(tokenizer)
    name = type(model).__name__
    if "LMHead" in name or "CausalLM" in name:
        _fail(
            f"`model` is a {name}: its output is one score per vocabulary token (50,257 for GPT-2), "
            "not per class. Use `AutoModelForSequenceClassification.from_pretrained(..., num_labels=2)`."
        )
    if "SequenceClassification" not in name:
        _fail(f"`model` should be a ...ForSequenceClassification model; found {name}.")
    config = model.config
    if config.num_labels != 2:
        _fail(f"The model has {config.num_labels} labels; IMDB has 2 (negative, positive): num_labels=2.")
    id2label = {int(k): v for k, v in config.id2label.items()}
    label2id = {k: int(v) for k, v in config.label2id.items()}
    if set(id2label) != {0, 1} or any(str(v).upper().startswith("LABEL_") for v in id2label.values()):
        _fail(
            f"config.id2label is {id2label}: give the labels names, e.g. "
            "id2label={0: 'NEGATIVE', 1: 'POSITIVE'}, so predictions read as words."
        )
    if {v: k for k, v in id2label.items()} != label2id:
        _fail(f"config.label2id {label2id} is not the inverse of config.id2label {id2label}.")
    if not str(id2label[1]).lower().startswith("pos") or not str(id2label[0]).lower().startswith("neg"):
        _fail(
            f"config.id2label is {id2label}, but in IMDB label 0 is negative and 1 is positive."
        )
    if config.pad_token_id is None:
        _fail(
            "config.pad_token_id is None. The classifier reads the last non-pad token of each review, "
            "so it must know the pad id (without it, batches larger than one fail): pass "
            "`pad_token_id=tokenizer.pad_token_id` to from_pretrained or set model.config.pad_token_id."
        )
    if config.pad_token_id != tokenizer.pad_token_id:
        _fail(
            f"config.pad_token_id is {config.pad_token_id} but the tokenizer pads with "
            f"{tokenizer.pad_token_id}: use tokenizer.pad_token_id."
        )
    import torch

    batch = tokenizer(["Great!", "A dull, overlong and forgettable film."], padding=True, return_tensors="pt")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
    except Exception as error:  # noqa: BLE001
        _fail(f"A padded batch of two reviews fails in the model: {type(error).__name__}: {error}")
    finally:
        model.train(was_training)
    if tuple(logits.shape) != (2, 2):
        _fail(f"Two reviews should give logits of shape (2, 2); got {tuple(logits.shape)}.")


# --------------------------------------------------------------------------- step 5: metrics

class _EvalPrediction:
    """Stands in for transformers' EvalPrediction: ``predictions``, ``label_ids``, tuple-like."""

    def __init__(self, predictions, label_ids):
        self.predictions = predictions
        self.label_ids = label_ids
        self.inputs = None

    def __iter__(self):
        return iter((self.predictions, self.label_ids))

    def __getitem__(self, index):
        return (self.predictions, self.label_ids)[index]

    def __len__(self):
        return 2


def _expected_metrics(logits, labels) -> dict[str, float]:
    from helpers.metrics import classification_metrics

    return classification_metrics(np.asarray(logits), np.asarray(labels))


# Crafted cases: logits deliberately not probabilities (negative, > 1), classes imbalanced so
# that positive-class F1, macro F1 and weighted F1 all differ.
_CASES = [
    (
        "an imbalanced batch",
        np.array([[2.5, -1.0], [0.3, 1.7], [-0.4, 0.9], [1.2, 0.1], [3.0, -2.0],
                  [-1.5, 2.5], [0.8, 0.2], [0.1, 0.4], [2.2, 1.9], [-0.3, -0.1]], dtype=np.float32),
        np.array([0, 1, 0, 1, 0, 1, 1, 1, 1, 1]),
    ),
    (
        "a batch where the model predicts only 'negative'",
        np.array([[1.0, -1.0], [2.0, 0.5], [0.7, 0.1], [3.1, -0.2]], dtype=np.float32),
        np.array([1, 0, 1, 0]),
    ),
    (
        "a batch with only negative reviews",
        np.array([[1.0, -1.0], [0.2, 0.5], [2.0, 0.1]], dtype=np.float32),
        np.array([0, 0, 0]),
    ),
]


def check_compute_metrics(compute_metrics) -> None:
    """``compute_metrics(EvalPrediction)`` returns accuracy and positive-class precision, recall
    and F1, from logits, without crashing or returning NaN on one-class batches."""
    _missing("compute_metrics", compute_metrics, "Define it in step 5.")
    for description, logits, labels in _CASES:
        expected = _expected_metrics(logits, labels)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = compute_metrics(_EvalPrediction(logits.copy(), labels.copy()))
        except NotImplementedError:
            _fail("`compute_metrics` still raises NotImplementedError: replace it with your code.")
        except ZeroDivisionError:
            _fail(
                f"`compute_metrics` divides by zero on {description}: when nothing is predicted "
                "positive, precision is 0/0. Return 0.0 then (scikit-learn: `zero_division=0`)."
            )
        except Exception as error:  # noqa: BLE001
            _fail(
                f"`compute_metrics` raised {type(error).__name__}: {error} on {description}. It gets "
                "an EvalPrediction: `logits, labels = eval_pred` (logits have shape (n, 2))."
            )
        if not isinstance(result, dict):
            _fail(f"`compute_metrics` should return a dict of metrics; it returned {type(result).__name__}.")
        missing = [key for key in ("accuracy", "precision", "recall", "f1") if key not in result]
        if missing:
            _fail(
                f"The metrics dict lacks {missing} (found keys {sorted(result)}). Use exactly the "
                "keys 'accuracy', 'precision', 'recall', 'f1': the Trainer logs them as eval_<key>."
            )
        for key, value in expected.items():
            try:
                found = float(result[key])
            except (TypeError, ValueError):
                _fail(f"result['{key}'] should be a number; found {result[key]!r}.")
            if math.isnan(found):
                _fail(
                    f"result['{key}'] is NaN on {description}: a 0/0 division. Return 0.0 when "
                    "there are no predicted (precision) or actual (recall) positives."
                )
            if abs(found - value) > 1e-6:
                _fail(_metric_hint(key, found, value, description, logits, labels))


def _metric_hint(key: str, found: float, expected: float, description: str, logits, labels) -> str:
    from sklearn.metrics import f1_score, precision_score, recall_score

    preds = logits.argmax(axis=-1)
    head = f"result['{key}'] is {found:.4f} on {description}; expected {expected:.4f}."
    if key == "accuracy":
        return head + (" Accuracy compares *class ids* with the labels: take "
                       "`predictions = np.argmax(logits, axis=-1)` first, not the raw logits.")
    scorers = {"precision": precision_score, "recall": recall_score, "f1": f1_score}
    scorer = scorers.get(key)
    if scorer is not None:
        for average in ("macro", "weighted", "micro"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                alternative = float(scorer(labels, preds, average=average, zero_division=0))
            if abs(alternative - found) < 1e-6 and abs(alternative - expected) > 1e-6:
                return head + (f" That is the {average} average over both classes; the assignment "
                               "asks for the positive class (label 1): `average='binary'`.")
    return head + (" Compute it from `np.argmax(logits, axis=-1)` against the labels, for the positive "
                   "class (label 1), returning 0.0 when the denominator is zero.")


# --------------------------------------------------------------------------- step 6: arguments

def _strategy(value) -> str:
    return str(getattr(value, "value", value))


def check_training_arguments(training_args, learning_rate: float, train_batch_size: int,
                             eval_batch_size: int, epochs: float, seed: int = 42) -> None:
    """Evaluation every epoch (``eval_strategy``), the recipe's learning rate, batch sizes and
    epochs, weight decay 0.01, MLflow reporting and a seed."""
    _missing(
        "training_args", training_args,
        "Did the cell fail? In transformers 5 the keyword `evaluation_strategy` is gone: use "
        "`eval_strategy=\"epoch\"`.",
    )
    if _strategy(getattr(training_args, "eval_strategy", None)) != "epoch":
        _fail(
            f"eval_strategy is {_strategy(getattr(training_args, 'eval_strategy', None))!r}: set "
            "`eval_strategy=\"epoch\"` so the model is scored on the held-out reviews after every epoch "
            "(older tutorials call it `evaluation_strategy`, removed in transformers 5)."
        )
    checks = [
        ("learning_rate", learning_rate, "LEARNING_RATE"),
        ("weight_decay", 0.01, "0.01"),
        ("per_device_train_batch_size", train_batch_size, "TRAIN_BATCH_SIZE"),
        ("per_device_eval_batch_size", eval_batch_size, "EVAL_BATCH_SIZE"),
        ("num_train_epochs", epochs, "EPOCHS"),
        ("seed", seed, str(seed)),
    ]
    for attribute, expected, source in checks:
        found = getattr(training_args, attribute, None)
        if found is None or not math.isclose(float(found), float(expected), rel_tol=1e-9):
            _fail(f"training_args.{attribute} is {found!r}; expected {expected!r} ({source}).")
    report_to = training_args.report_to
    report_to = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if "mlflow" not in report_to and "all" not in report_to:
        _fail(
            f"report_to is {report_to!r}: set `report_to=\"mlflow\"` so the run's parameters and "
            "metrics are recorded (transformers 5 reports nowhere by default)."
        )


# --------------------------------------------------------------------------- step 6: trainer

def check_trainer(trainer, train_size: int, eval_size: int) -> None:
    """The Trainer has the model, both data sets, the tokenizer as ``processing_class``, a
    padding data collator and the metrics function."""
    _missing("trainer", trainer, "Build it in step 6.")
    from transformers import DataCollatorWithPadding

    if getattr(trainer, "processing_class", None) is None:
        _fail("Pass the tokenizer as `processing_class=tokenizer` (the old `tokenizer=` keyword is gone).")
    if not isinstance(trainer.data_collator, DataCollatorWithPadding):
        _fail(
            f"The data collator is {type(trainer.data_collator).__name__}: pass "
            "`data_collator=DataCollatorWithPadding(tokenizer)` so each batch is padded to its longest review."
        )
    if trainer.train_dataset is None or len(trainer.train_dataset) != train_size:
        _fail(f"trainer.train_dataset should be the {train_size} tokenized training reviews.")
    if trainer.eval_dataset is None or len(trainer.eval_dataset) != eval_size:
        _fail(f"trainer.eval_dataset should be the {eval_size} tokenized held-out reviews.")
    if trainer.compute_metrics is None:
        _fail("Pass `compute_metrics=compute_metrics` so evaluation reports accuracy, precision, recall and F1.")
