"""The hidden checks of assignment 01 (autograder.gpt2): each passes a right student
implementation and fails plausible wrong ones with a message that points at the mistake."""

from __future__ import annotations

import numpy as np
import pytest

from autograder import gpt2 as checks

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def tokenizer():
    from helpers import classifier

    backbone = classifier.choose_backbone(fast=True)
    return classifier.load_tokenizer(backbone)


@pytest.fixture(scope="module")
def raw_tokenizer(tokenizer):
    """The same GPT-2 tokenizer as a student loads it, before a pad token is set."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer.name_or_path)


def _fails(match: str, function, *args, **kwargs) -> str:
    with pytest.raises(checks.CheckFailed, match=match) as info:
        function(*args, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------- tokenize

MAX_LENGTH = 32


def test_tokenize_right_passes(tokenizer):
    def tokenize_function(examples):
        return tokenizer(examples["text"], truncation=True, max_length=MAX_LENGTH)

    checks.check_tokenize_function(tokenize_function, tokenizer, MAX_LENGTH)


def test_tokenize_padding_to_max_length_fails(tokenizer):
    def tokenize_function(examples):  # the lab's line
        return tokenizer(examples["text"], padding="max_length", truncation=True, max_length=MAX_LENGTH)

    message = _fails("pads to `max_length`", checks.check_tokenize_function, tokenize_function, tokenizer, MAX_LENGTH)
    assert "DataCollatorWithPadding" in message


def test_tokenize_without_truncation_fails(tokenizer):
    def tokenize_function(examples):
        return tokenizer(examples["text"], verbose=False)

    _fails("more than max_length", checks.check_tokenize_function, tokenize_function, tokenizer, MAX_LENGTH)


def test_tokenize_padding_longest_fails(tokenizer):
    def tokenize_function(examples):
        return tokenizer(examples["text"], truncation=True, max_length=MAX_LENGTH, padding=True)

    # the long text fills max_length, so padding=True pads everything to MAX_LENGTH too
    _fails("pad", checks.check_tokenize_function, tokenize_function, tokenizer, MAX_LENGTH)


def test_tokenize_not_batched_fails(tokenizer):
    def tokenize_function(example):
        return tokenizer(example["text"][0], truncation=True, max_length=MAX_LENGTH)

    _fails("4 texts in", checks.check_tokenize_function, tokenize_function, tokenizer, MAX_LENGTH)


def test_tokenizer_without_pad_token_fails(raw_tokenizer):
    assert raw_tokenizer.pad_token is None

    def tokenize_function(examples):
        return raw_tokenizer(examples["text"], truncation=True, max_length=MAX_LENGTH)

    _fails("eos_token", checks.check_tokenize_function, tokenize_function, raw_tokenizer, MAX_LENGTH)


def test_tokenize_still_a_stub_fails(tokenizer):
    def tokenize_function(examples):
        raise NotImplementedError()

    _fails("NotImplementedError", checks.check_tokenize_function, tokenize_function, tokenizer, MAX_LENGTH)


# --------------------------------------------------------------------------- subsets

@pytest.fixture(scope="module")
def imdb_like():
    """Sorted by label, as IMDB's splits are."""
    from datasets import DatasetDict

    from helpers.imdb import _features

    def split(name, n):
        from datasets import Dataset

        labels = [0] * (n // 2) + [1] * (n // 2)
        texts = [f"{name} review {i} label {label}" for i, label in enumerate(labels)]
        return Dataset.from_dict({"text": texts, "label": labels}, features=_features())

    return DatasetDict({"train": split("train", 200), "test": split("test", 120)})


def test_subsets_right_passes(imdb_like):
    train = imdb_like["train"].shuffle(seed=42).select(range(40))
    evaluation = imdb_like["test"].shuffle(seed=42).select(range(20))
    checks.check_subsets(train, evaluation, imdb_like, 40, 20)


def test_subsets_tokenized_right_passes(imdb_like, tokenizer):
    train = imdb_like["train"].shuffle(seed=42).select(range(40))
    evaluation = imdb_like["test"].shuffle(seed=42).select(range(20))
    train = train.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
    checks.check_subsets(train, evaluation, imdb_like, 40, 20)


def test_subsets_other_seed_fails(imdb_like):
    train = imdb_like["train"].shuffle(seed=0).select(range(40))
    evaluation = imdb_like["test"].shuffle(seed=42).select(range(20))
    _fails("seed=42", checks.check_subsets, train, evaluation, imdb_like, 40, 20)


def test_subsets_without_shuffle_fails(imdb_like):
    train = imdb_like["train"].select(range(40))
    evaluation = imdb_like["test"].shuffle(seed=42).select(range(20))
    _fails("without shuffling", checks.check_subsets, train, evaluation, imdb_like, 40, 20)


def test_subsets_wrong_split_fails(imdb_like):
    train = imdb_like["train"].shuffle(seed=42).select(range(40))
    evaluation = imdb_like["train"].shuffle(seed=42).select(range(20))
    _fails("comes from the 'train' split", checks.check_subsets, train, evaluation, imdb_like, 40, 20)


def test_subsets_wrong_size_fails(imdb_like):
    train = imdb_like["train"].shuffle(seed=42).select(range(30))
    evaluation = imdb_like["test"].shuffle(seed=42).select(range(20))
    _fails("should hold 40", checks.check_subsets, train, evaluation, imdb_like, 40, 20)


# --------------------------------------------------------------------------- model

@pytest.fixture(scope="module")
def backbone():
    from helpers import classifier

    return classifier.choose_backbone(fast=True)


def _model(backbone, **kwargs):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(backbone.path, **kwargs)


LABELS = {"id2label": {0: "NEGATIVE", 1: "POSITIVE"}, "label2id": {"NEGATIVE": 0, "POSITIVE": 1}}


def test_model_right_passes(backbone, tokenizer):
    model = _model(backbone, num_labels=2, pad_token_id=tokenizer.pad_token_id, **LABELS)
    checks.check_model(model, tokenizer)


def test_model_without_pad_token_id_fails(backbone, tokenizer):
    model = _model(backbone, num_labels=2, **LABELS)
    message = _fails("pad_token_id is None", checks.check_model, model, tokenizer)
    assert "tokenizer.pad_token_id" in message


def test_language_model_head_fails(backbone, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(backbone.path)
    _fails("one score per vocabulary token", checks.check_model, model, tokenizer)


def test_model_without_label_names_fails(backbone, tokenizer):
    model = _model(backbone, num_labels=2, pad_token_id=tokenizer.pad_token_id)
    _fails("give the labels names", checks.check_model, model, tokenizer)


def test_model_with_swapped_labels_fails(backbone, tokenizer):
    model = _model(backbone, num_labels=2, pad_token_id=tokenizer.pad_token_id,
                   id2label={0: "POSITIVE", 1: "NEGATIVE"}, label2id={"POSITIVE": 0, "NEGATIVE": 1})
    _fails("label 0 is negative", checks.check_model, model, tokenizer)


def test_model_with_three_labels_fails(backbone, tokenizer):
    model = _model(backbone, num_labels=3, pad_token_id=tokenizer.pad_token_id)
    _fails("IMDB has 2", checks.check_model, model, tokenizer)


# --------------------------------------------------------------------------- compute_metrics

def metrics_sklearn(eval_pred):
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    logits, labels = eval_pred
    predictions = np.argmax(logits, axis=-1)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predictions, average="binary",
                                                               zero_division=0)
    return {"accuracy": accuracy_score(labels, predictions), "precision": precision,
            "recall": recall, "f1": f1}


def metrics_numpy(eval_pred):
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    predictions = logits.argmax(-1)
    tp = int(((predictions == 1) & (labels == 1)).sum())
    fp = int(((predictions == 1) & (labels == 0)).sum())
    fn = int(((predictions == 0) & (labels == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float((predictions == labels).mean()), "precision": precision,
            "recall": recall, "f1": f1}


@pytest.mark.parametrize("compute_metrics", [metrics_sklearn, metrics_numpy])
def test_metrics_right_passes(compute_metrics):
    checks.check_compute_metrics(compute_metrics)


def test_helpers_metrics_passes():
    from helpers.metrics import compute_metrics

    checks.check_compute_metrics(compute_metrics)


def test_metrics_macro_f1_fails():
    def compute_metrics(eval_pred):
        from sklearn.metrics import accuracy_score, precision_recall_fscore_support

        logits, labels = eval_pred
        predictions = np.argmax(logits, axis=-1)
        precision, recall, f1, _ = precision_recall_fscore_support(labels, predictions, average="macro",
                                                                   zero_division=0)
        return {"accuracy": accuracy_score(labels, predictions), "precision": precision,
                "recall": recall, "f1": f1}

    message = _fails("macro average", checks.check_compute_metrics, compute_metrics)
    assert "positive class" in message


def test_metrics_weighted_f1_only_fails():
    def compute_metrics(eval_pred):
        from sklearn.metrics import f1_score

        result = metrics_sklearn(eval_pred)
        logits, labels = eval_pred
        result["f1"] = f1_score(labels, np.argmax(logits, axis=-1), average="weighted")
        return result

    _fails("weighted average", checks.check_compute_metrics, compute_metrics)


def test_metrics_accuracy_on_raw_logits_fails():
    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        result = metrics_sklearn(eval_pred)
        result["accuracy"] = float(np.mean(logits[:, 1] == labels))
        return result

    _fails("argmax", checks.check_compute_metrics, compute_metrics)


def test_metrics_division_by_zero_fails():
    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        predictions = np.argmax(logits, axis=-1)
        tp = int(((predictions == 1) & (labels == 1)).sum())
        fp = int(((predictions == 1) & (labels == 0)).sum())
        fn = int(((predictions == 0) & (labels == 1)).sum())
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        return {"accuracy": float((predictions == labels).mean()), "precision": precision,
                "recall": recall, "f1": 2 * precision * recall / (precision + recall)}

    _fails("divides by zero", checks.check_compute_metrics, compute_metrics)


def test_metrics_nan_fails():
    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        predictions = np.argmax(logits, axis=-1)
        tp = np.sum((predictions == 1) & (labels == 1))
        precision = tp / np.sum(predictions == 1)  # numpy: 0/0 is nan, not an error
        recall = tp / np.sum(labels == 1)
        return {"accuracy": float((predictions == labels).mean()), "precision": precision,
                "recall": recall, "f1": 2 * precision * recall / (precision + recall)}

    _fails("NaN", checks.check_compute_metrics, compute_metrics)


def test_metrics_missing_keys_fails():
    def compute_metrics(eval_pred):
        result = metrics_sklearn(eval_pred)
        return {"acc": result["accuracy"], "f1": result["f1"]}

    _fails("lacks", checks.check_compute_metrics, compute_metrics)


# --------------------------------------------------------------------------- training arguments

def _args(tmp_path, **overrides):
    from transformers import TrainingArguments

    arguments = {"output_dir": str(tmp_path), "eval_strategy": "epoch", "learning_rate": 2e-4,
                 "weight_decay": 0.01, "per_device_train_batch_size": 8,
                 "per_device_eval_batch_size": 16, "num_train_epochs": 1, "report_to": "mlflow",
                 "seed": 42}
    arguments.update(overrides)
    return TrainingArguments(**arguments)


ARGUMENT_CHECK = {"learning_rate": 2e-4, "train_batch_size": 8, "eval_batch_size": 16, "epochs": 1, "seed": 42}


def test_training_arguments_right_passes(tmp_path):
    checks.check_training_arguments(_args(tmp_path), **ARGUMENT_CHECK)


def test_evaluation_strategy_keyword_is_gone_and_the_check_says_so(tmp_path):
    with pytest.raises(TypeError, match="evaluation_strategy"):
        _args(tmp_path, eval_strategy=None, evaluation_strategy="epoch")
    # the student's cell failed, so `training_args` is undefined: the hidden cell passes None
    _fails("eval_strategy=\"epoch\"", checks.check_training_arguments, None, **ARGUMENT_CHECK)


def test_no_evaluation_fails(tmp_path):
    arguments = _args(tmp_path)
    arguments.eval_strategy = "no"  # the default when the keyword is left out
    from transformers import TrainingArguments

    default = TrainingArguments(output_dir=str(tmp_path), learning_rate=2e-4, weight_decay=0.01,
                                per_device_train_batch_size=8, per_device_eval_batch_size=16,
                                num_train_epochs=1, report_to="mlflow", seed=42)
    _fails("eval_strategy is 'no'", checks.check_training_arguments, default, **ARGUMENT_CHECK)


def test_no_mlflow_fails(tmp_path):
    _fails("report_to", checks.check_training_arguments, _args(tmp_path, report_to="none"), **ARGUMENT_CHECK)


def test_lab_learning_rate_on_cpu_recipe_fails(tmp_path):
    _fails("learning_rate is 2e-05", checks.check_training_arguments, _args(tmp_path, learning_rate=2e-5),
           **ARGUMENT_CHECK)


def test_other_seed_fails(tmp_path):
    _fails("seed", checks.check_training_arguments, _args(tmp_path, seed=0), **ARGUMENT_CHECK)


# --------------------------------------------------------------------------- trainer

@pytest.fixture(scope="module")
def tiny_data(tokenizer):
    from datasets import Dataset

    data = Dataset.from_dict({"text": ["good film", "bad film, really bad", "fine"] * 4,
                              "label": [1, 0, 1] * 4})
    return data.map(lambda b: tokenizer(b["text"], truncation=True, max_length=16), batched=True,
                    remove_columns=["text"])


def _trainer(tmp_path, backbone, tokenizer, data, **overrides):
    from transformers import DataCollatorWithPadding, Trainer

    model = _model(backbone, num_labels=2, pad_token_id=tokenizer.pad_token_id, **LABELS)
    arguments = {"model": model, "args": _args(tmp_path, report_to="none"), "train_dataset": data,
                 "eval_dataset": data.select(range(6)), "processing_class": tokenizer,
                 "data_collator": DataCollatorWithPadding(tokenizer), "compute_metrics": metrics_sklearn}
    arguments.update(overrides)
    return Trainer(**arguments)


def test_trainer_right_passes(tmp_path, backbone, tokenizer, tiny_data):
    checks.check_trainer(_trainer(tmp_path, backbone, tokenizer, tiny_data), 12, 6)


def test_trainer_without_processing_class_fails(tmp_path, backbone, tokenizer, tiny_data):
    trainer = _trainer(tmp_path, backbone, tokenizer, tiny_data, processing_class=None, data_collator=None)
    _fails("processing_class", checks.check_trainer, trainer, 12, 6)


def test_trainer_tokenizer_keyword_is_gone(tmp_path, backbone, tokenizer, tiny_data):
    with pytest.raises(TypeError, match="tokenizer"):
        _trainer(tmp_path, backbone, tokenizer, tiny_data, processing_class=None, tokenizer=tokenizer)
    _fails("not defined", checks.check_trainer, None, 12, 6)


def test_trainer_without_metrics_fails(tmp_path, backbone, tokenizer, tiny_data):
    trainer = _trainer(tmp_path, backbone, tokenizer, tiny_data, compute_metrics=None)
    _fails("compute_metrics", checks.check_trainer, trainer, 12, 6)


def test_trainer_with_unpadded_collator_fails(tmp_path, backbone, tokenizer, tiny_data):
    from transformers import default_data_collator

    trainer = _trainer(tmp_path, backbone, tokenizer, tiny_data, data_collator=default_data_collator)
    _fails("DataCollatorWithPadding", checks.check_trainer, trainer, 12, 6)
