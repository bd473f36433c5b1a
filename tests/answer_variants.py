"""Answers as students write them, for every graded answer cell of both assignments: wrong ones
(each with words its check's message must contain) and right ones written differently from the
solution. ``tests/test_checks.py`` runs each through its check in-process; ``tests/test_answers.py``
grades submissions made of them through the real grading path."""

from __future__ import annotations

# --------------------------------------------------------------------------- 01-gpt2-imdb

GPT2 = {
    "tokenize": {
        "wrong": [
            ("no pad token",
             ("tokenizer = AutoTokenizer.from_pretrained(BACKBONE.path)\n\n"
             "def tokenize_function(examples):\n"
             "    return tokenizer(examples['text'], truncation=True, max_length=MAX_LENGTH)\n"),
             "pad_token is None"),
            ("pads to max_length (the lab's way)",
             ("tokenizer = AutoTokenizer.from_pretrained(BACKBONE.path)\n"
             "tokenizer.pad_token = tokenizer.eos_token\n\n"
             "def tokenize_function(examples):\n"
             "    return tokenizer(examples['text'], padding='max_length', truncation=True,\n"
             "                     max_length=MAX_LENGTH)\n"),
             "padding=\"max_length\""),
            ("pads each batch (padding=True)",
             ("tokenizer = AutoTokenizer.from_pretrained(BACKBONE.path)\n"
             "tokenizer.pad_token = tokenizer.eos_token\n\n"
             "def tokenize_function(examples):\n"
             "    return tokenizer(examples['text'], padding=True, truncation=True,\n"
             "                     max_length=MAX_LENGTH)\n"),
             "padding=True"),
            ("no truncation",
             ("tokenizer = AutoTokenizer.from_pretrained(BACKBONE.path)\n"
             "tokenizer.pad_token = tokenizer.eos_token\n\n"
             "def tokenize_function(examples):\n"
             "    return tokenizer(examples['text'])\n"),
             "truncate"),
            ("one text at a time (not batched)",
             ("tokenizer = AutoTokenizer.from_pretrained(BACKBONE.path)\n"
             "tokenizer.pad_token = tokenizer.eos_token\n\n"
             "def tokenize_function(examples):\n"
             "    return tokenizer(examples['text'][0], truncation=True, max_length=MAX_LENGTH)\n"),
             "rows of input_ids"),
        ],
        "right": [
            ("from transformers import AutoTokenizer as Tok\n"
            "tokenizer = Tok.from_pretrained(BACKBONE.path)\n"
            "if tokenizer.pad_token is None:\n"
            "    tokenizer.pad_token = tokenizer.unk_token\n\n"
            "def tokenize_function(batch):\n"
            "    texts = list(batch['text'])\n"
            "    return tokenizer(texts, max_length=MAX_LENGTH, truncation=True)\n"),
        ],
    },
    "subsets": {
        "wrong": [
            ("no shuffle",
             ("small_train_dataset = dataset['train'].select(range(TRAIN_SIZE))\n"
             "small_eval_dataset = dataset['test'].select(range(EVAL_SIZE))\n"),
             "shuffle"),
            ("another seed",
             ("small_train_dataset = dataset['train'].shuffle(seed=0).select(range(TRAIN_SIZE))\n"
             "small_eval_dataset = dataset['test'].shuffle(seed=0).select(range(EVAL_SIZE))\n"),
             "seed=SEED"),
            ("select before shuffle",
             ("small_train_dataset = dataset['train'].select(range(TRAIN_SIZE)).shuffle(seed=SEED)\n"
             "small_eval_dataset = dataset['test'].select(range(EVAL_SIZE)).shuffle(seed=SEED)\n"),
             "shuffle"),
            ("splits swapped",
             ("small_train_dataset = dataset['test'].shuffle(seed=SEED).select(range(TRAIN_SIZE))\n"
             "small_eval_dataset = dataset['train'].shuffle(seed=SEED).select(range(EVAL_SIZE))\n"),
             "comes from the 'test' split"),
        ],
        "right": [
            ("shuffled = dataset.shuffle(seed=SEED)\n"
            "small_train_dataset = shuffled['train'].take(TRAIN_SIZE)\n"
            "small_eval_dataset = shuffled['test'].select(list(range(EVAL_SIZE)))\n"),
        ],
    },
    "model": {
        "wrong": [
            ("random weights from the configuration",
             ("from transformers import AutoConfig\n"
             "torch.manual_seed(SEED)\n"
             "config = AutoConfig.from_pretrained(BACKBONE.path, num_labels=2, id2label=ID2LABEL,\n"
             "                                    label2id=LABEL2ID, pad_token_id=tokenizer.pad_token_id)\n"
             "model = AutoModelForSequenceClassification.from_config(config)\n"),
             "not the pretrained backbone"),
            ("a problem type that cannot train on class ids",
             ("torch.manual_seed(SEED)\n"
             "model = AutoModelForSequenceClassification.from_pretrained(\n"
             "    BACKBONE.path, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID,\n"
             "    pad_token_id=tokenizer.pad_token_id, problem_type='multi_label_classification')\n"),
             "problem_type"),
            ("no pad token id",
             ("torch.manual_seed(SEED)\n"
             "model = AutoModelForSequenceClassification.from_pretrained(\n"
             "    BACKBONE.path, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)\n"
             "model.config.pad_token_id = None\n"),
             "pad_token_id is None"),
            ("a language-model head (the lab's way)",
             ("from transformers import AutoModelForCausalLM\n"
             "torch.manual_seed(SEED)\n"
             "model = AutoModelForCausalLM.from_pretrained(BACKBONE.path,\n"
             "                                             pad_token_id=tokenizer.pad_token_id)\n"),
             "one score per vocabulary token"),
            ("a new [PAD] token without resizing the embeddings",
             ("torch.manual_seed(SEED)\n"
             "tokenizer.add_special_tokens({'pad_token': '[PAD]'})\n"
             "model = AutoModelForSequenceClassification.from_pretrained(\n"
             "    BACKBONE.path, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID,\n"
             "    pad_token_id=tokenizer.pad_token_id)\n"),
             "embedding matrix"),
        ],
        "right": [
            ("torch.manual_seed(SEED)\n"
            "model = AutoModelForSequenceClassification.from_pretrained(\n"
            "    BACKBONE.path, num_labels=2, id2label=ID2LABEL, label2id=LABEL2ID)\n"
            "model.config.pad_token_id = tokenizer.pad_token_id\n"),
        ],
    },
    "compute_metrics": {
        "wrong": [
            ("macro averages",
             ("from sklearn.metrics import accuracy_score, precision_recall_fscore_support\n\n\n"
             "def compute_metrics(eval_pred):\n"
             "    logits, labels = eval_pred\n"
             "    predictions = np.argmax(logits, axis=-1)\n"
             "    p, r, f, _ = precision_recall_fscore_support(labels, predictions, average='macro',\n"
             "                                                 zero_division=0)\n"
             "    return {'accuracy': accuracy_score(labels, predictions), 'precision': p,\n"
             "            'recall': r, 'f1': f}\n"),
             "macro average"),
            ("accuracy on raw logits",
             ("def compute_metrics(eval_pred):\n"
             "    logits, labels = eval_pred\n"
             "    predictions = (logits[:, 1] > 0).astype(int)\n"
             "    tp = int(((predictions == 1) & (labels == 1)).sum())\n"
             "    fp = int(((predictions == 1) & (labels == 0)).sum())\n"
             "    fn = int(((predictions == 0) & (labels == 1)).sum())\n"
             "    precision = tp / (tp + fp) if tp + fp else 0.0\n"
             "    recall = tp / (tp + fn) if tp + fn else 0.0\n"
             "    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0\n"
             "    return {'accuracy': float((predictions == labels).mean()), 'precision': precision,\n"
             "            'recall': recall, 'f1': f1}\n"),
             "expected"),
            ("0/0 when nothing is predicted positive",
             ("def compute_metrics(eval_pred):\n"
             "    logits, labels = eval_pred\n"
             "    predictions = np.argmax(logits, axis=-1)\n"
             "    tp = ((predictions == 1) & (labels == 1)).sum()\n"
             "    precision = tp / (predictions == 1).sum()\n"
             "    recall = tp / (labels == 1).sum()\n"
             "    f1 = 2 * precision * recall / (precision + recall)\n"
             "    return {'accuracy': float((predictions == labels).mean()),\n"
             "            'precision': float(precision), 'recall': float(recall), 'f1': float(f1)}\n"),
             "NaN"),
        ],
        "right": [
            ("def compute_metrics(eval_pred):\n"
            "    predictions = eval_pred.predictions.argmax(-1)\n"
            "    labels = eval_pred.label_ids\n"
            "    tp = int(((predictions == 1) & (labels == 1)).sum())\n"
            "    predicted, actual = int((predictions == 1).sum()), int((labels == 1).sum())\n"
            "    precision = tp / predicted if predicted else 0.0\n"
            "    recall = tp / actual if actual else 0.0\n"
            "    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)\n"
            "    return dict(accuracy=float((predictions == labels).mean()), precision=precision,\n"
            "                recall=recall, f1=f1)\n"),
        ],
    },
}

_ARGS = (
    "training_args = TrainingArguments(\n"
    "    output_dir=str(OUTPUT_DIR / 'checkpoints'), eval_strategy='epoch', save_strategy='no',\n"
    "    learning_rate=LEARNING_RATE, weight_decay=0.01,\n"
    "    per_device_train_batch_size=TRAIN_BATCH_SIZE, per_device_eval_batch_size=EVAL_BATCH_SIZE,\n"
    "    num_train_epochs=EPOCHS, logging_steps=LOGGING_STEPS, report_to='mlflow', seed=SEED{extra})\n"
)
_TRAINER = (
    "trainer = Trainer(model={model}, args=training_args, train_dataset={train},\n"
    "                  eval_dataset=tokenized_eval, processing_class=tokenizer,\n"
    "                  data_collator={collator}, compute_metrics=compute_metrics)\n"
)


def _trainer(extra: str = "", model: str = "model", train: str = "tokenized_train",
             collator: str = "DataCollatorWithPadding(tokenizer)", args: str | None = None) -> str:
    return (args if args is not None else _ARGS.format(extra=extra)) + _TRAINER.format(
        model=model, train=train, collator=collator)


GPT2["trainer"] = {
    "wrong": [
        ("the raw, untokenized subsets", _trainer(train="small_train_dataset"), "untokenized"),
        ("a second model",
         "second = AutoModelForSequenceClassification.from_pretrained(\n"
         "    BACKBONE.path, num_labels=2, pad_token_id=tokenizer.pad_token_id)\n"
         + _trainer(model="second"), "another model object"),
        ("a collator that pads to max length",
         _trainer(collator="DataCollatorWithPadding(tokenizer, padding='max_length', "
                           "max_length=MAX_LENGTH)"), "fixed length"),
        ("a leftover debugging step limit", _trainer(extra=", max_steps=3"), "max_steps"),
        ("no logging interval",
         _trainer(args=_ARGS.replace("logging_steps=LOGGING_STEPS, ", "").format(extra="")),
         "logging_steps"),
        ("evaluation_strategy (removed in transformers 5)",
         _trainer(args=_ARGS.replace("eval_strategy", "evaluation_strategy").format(extra="")),
         "evaluation_strategy"),
    ],
    "right": [
        ("from transformers import IntervalStrategy\n"
        "training_args = TrainingArguments(\n"
        "    seed=SEED, report_to=['mlflow'], logging_steps=LOGGING_STEPS, num_train_epochs=EPOCHS,\n"
        "    per_device_eval_batch_size=EVAL_BATCH_SIZE, per_device_train_batch_size=TRAIN_BATCH_SIZE,\n"
        "    weight_decay=0.01, learning_rate=LEARNING_RATE, save_strategy='no',\n"
        "    eval_strategy=IntervalStrategy.EPOCH, output_dir=f'{OUTPUT_DIR}/checkpoints')\n"
        "collator = DataCollatorWithPadding(tokenizer=tokenizer)\n"
        "trainer = Trainer(model, training_args, data_collator=collator,\n"
        "                  train_dataset=tokenized_train, eval_dataset=tokenized_eval,\n"
        "                  processing_class=tokenizer, compute_metrics=compute_metrics)\n"),
    ],
}

# --------------------------------------------------------------------------- 02-gpt4o-jsonl

_COUNT = (
    "encoding = tiktoken.get_encoding({encoding!r})\n\n\n"
    "def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):\n"
    "    num_tokens = 0\n"
    "    for message in messages:\n"
    "        num_tokens += {per_message}\n"
    "        for key, value in message.items():\n"
    "            num_tokens += len(encoding.encode(value))\n"
    "            if key == 'name':\n"
    "                num_tokens += {per_name}\n"
    "    return {total}\n\n\n"
    "def num_assistant_tokens_from_messages(messages):\n"
    "    return sum(len(encoding.encode(m['content'])) for m in messages if m['role'] == 'assistant')\n"
)


def _count(encoding: str = "o200k_base", per_message: str = "tokens_per_message",
           per_name: str = "tokens_per_name", total: str = "num_tokens + 3") -> str:
    return _COUNT.format(encoding=encoding, per_message=per_message, per_name=per_name,
                         total=total)


GPT4O = {
    "token-counting": {
        "wrong": [
            ("the lab's cl100k_base", _count(encoding="cl100k_base"), "o200k_base"),
            ("the parameters ignored (3 and 1 hard-coded)", _count(per_message="3", per_name="1"),
             "use the parameters"),
            ("no priming tokens", _count(total="num_tokens"), "primes"),
            ("a float count", _count(total="float(num_tokens + 3)"), "return an int"),
        ],
        "right": [
            ("encoding = tiktoken.encoding_for_model('gpt-4o')\n\n\n"
            "def num_tokens_from_messages(messages, tokens_per_message=3, tokens_per_name=1):\n"
            "    total = 3\n"
            "    for message in messages:\n"
            "        total += tokens_per_message + sum(len(encoding.encode(v)) for v in message.values())\n"
            "        total += tokens_per_name if 'name' in message else 0\n"
            "    return total\n\n\n"
            "def num_assistant_tokens_from_messages(messages):\n"
            "    counts = [len(encoding.encode(m['content'])) for m in messages\n"
            "              if m.get('role') == 'assistant']\n"
            "    return sum(counts)\n"),
        ],
    },
    "token-counts": {
        "wrong": [
            ("the lists swapped",
             ("def token_counts(examples):\n"
             "    total = [num_tokens_from_messages(e['messages']) for e in examples]\n"
             "    assistant = [num_assistant_tokens_from_messages(e['messages']) for e in examples]\n"
             "    return assistant, total\n"), "swapped"),
            ("floats",
             ("def token_counts(examples):\n"
             "    total = [float(num_tokens_from_messages(e['messages'])) for e in examples]\n"
             "    assistant = [num_assistant_tokens_from_messages(e['messages']) / 1 for e in examples]\n"
             "    return total, assistant\n"), "list of ints"),
            ("only the first example",
             ("def token_counts(examples):\n"
             "    first = examples[0]['messages']\n"
             "    return [num_tokens_from_messages(first)], [num_assistant_tokens_from_messages(first)]\n"),
             "one count per example"),
        ],
        "right": [
            ("def token_counts(examples):\n"
            "    total_tokens, assistant_tokens = [], []\n"
            "    for example in examples:\n"
            "        messages = example['messages']\n"
            "        total_tokens.append(num_tokens_from_messages(messages))\n"
            "        assistant_tokens.append(num_assistant_tokens_from_messages(messages))\n"
            "    return (total_tokens, assistant_tokens)\n"),
        ],
    },
    "estimate": {
        "wrong": [
            ("float epochs (/ instead of //)",
             ("def estimate_training(token_counts, max_tokens_per_example=65536):\n"
             "    n = len(token_counts)\n"
             "    n_epochs = 3\n"
             "    if 3 * n < 100:\n"
             "        n_epochs = min(25, 100 / n)\n"
             "    elif 3 * n > 25000:\n"
             "        n_epochs = max(1, 25000 / n)\n"
             "    billing = sum(min(max_tokens_per_example, c) for c in token_counts)\n"
             "    return {'n_epochs': n_epochs, 'billing_tokens': billing,\n"
             "            'charged_tokens': n_epochs * billing}\n"), "n_epochs"),
            ("the limit hard-coded",
             ("def estimate_training(token_counts, max_tokens_per_example=65536):\n"
             "    n = len(token_counts)\n"
             "    n_epochs = 3\n"
             "    if 3 * n < 100:\n"
             "        n_epochs = min(25, 100 // n)\n"
             "    elif 3 * n > 25000:\n"
             "        n_epochs = max(1, 25000 // n)\n"
             "    billing = sum(min(65536, c) for c in token_counts)\n"
             "    return {'n_epochs': n_epochs, 'billing_tokens': billing,\n"
             "            'charged_tokens': n_epochs * billing}\n"), "use the parameter"),
            ("no cap at 25 epochs",
             ("def estimate_training(token_counts, max_tokens_per_example=65536):\n"
             "    n = len(token_counts)\n"
             "    n_epochs = 3 if 100 <= 3 * n <= 25000 else (100 // n if 3 * n < 100 else 25000 // n)\n"
             "    billing = sum(min(max_tokens_per_example, c) for c in token_counts)\n"
             "    return {'n_epochs': n_epochs, 'billing_tokens': billing,\n"
             "            'charged_tokens': n_epochs * billing}\n"), "n_epochs"),
        ],
        "right": [
            ("def estimate_training(token_counts, max_tokens_per_example=65536):\n"
            "    n = len(token_counts)\n"
            "    n_epochs = 3\n"
            "    if n * n_epochs < 100:\n"
            "        n_epochs = min(25, 100 // n)\n"
            "    if n * n_epochs > 25_000:\n"
            "        n_epochs = max(1, 25_000 // n)\n"
            "    billed = 0\n"
            "    for count in token_counts:\n"
            "        billed += count if count < max_tokens_per_example else max_tokens_per_example\n"
            "    return dict(n_epochs=int(n_epochs), billing_tokens=billed,\n"
            "                charged_tokens=int(n_epochs) * billed)\n"),
        ],
    },
    "uploads": {
        "wrong": [
            ("files opened and never closed",
             ("def upload_training_files(client, train_path, valid_path):\n"
             "    t = client.files.create(file=open(train_path, 'rb'), purpose='fine-tune')\n"
             "    v = client.files.create(file=open(valid_path, 'rb'), purpose='fine-tune')\n"
             "    return t.id, v.id\n"), "left its files open"),
            ("the notebook's paths hard-coded",
             ("def upload_training_files(client, train_path, valid_path):\n"
             "    ids = []\n"
             "    for path in ('data/training_set.jsonl', 'data/validation_set.jsonl'):\n"
             "        with open(path, 'rb') as handle:\n"
             "            ids.append(client.files.create(file=handle, purpose='fine-tune').id)\n"
             "    return ids[0], ids[1]\n"), "parameters"),
            ("the ids in the wrong order",
             ("def upload_training_files(client, train_path, valid_path):\n"
             "    with open(valid_path, 'rb') as handle:\n"
             "        v = client.files.create(file=handle, purpose='fine-tune')\n"
             "    with open(train_path, 'rb') as handle:\n"
             "        t = client.files.create(file=handle, purpose='fine-tune')\n"
             "    return v.id, t.id\n"), "in that order"),
        ],
        "right": [
            ("def upload_training_files(client, train_path, valid_path):\n"
            "    ids = []\n"
            "    for path in (train_path, valid_path):\n"
            "        path = Path(path)\n"
            "        uploaded = client.files.create(file=(path.name, path.read_bytes()),\n"
            "                                       purpose='fine-tune')\n"
            "        ids.append(uploaded.id)\n"
            "    return tuple(ids)\n"),
        ],
    },
    "submit": {
        "wrong": [
            ("the lab's bare gpt-4o",
             ("def submit_job(client, training_file_id, validation_file_id):\n"
             "    return client.fine_tuning.jobs.create(model='gpt-4o', training_file=training_file_id,\n"
             "                                          validation_file=validation_file_id, seed=105)\n"),
             "BASE_MODEL"),
            ("hyperparameters set where they should stay on auto",
             ("def submit_job(client, training_file_id, validation_file_id):\n"
             "    return client.fine_tuning.jobs.create(\n"
             "        model=BASE_MODEL, training_file=training_file_id,\n"
             "        validation_file=validation_file_id, seed=105,\n"
             "        hyperparameters={'n_epochs': 3, 'batch_size': 1})\n"), "auto"),
            ("no seed",
             ("def submit_job(client, training_file_id, validation_file_id):\n"
             "    return client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training_file_id,\n"
             "                                          validation_file=validation_file_id)\n"),
             "seed"),
            ("the parameters ignored",
             ("def submit_job(client, training_file_id, validation_file_id):\n"
             "    return client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=train_id,\n"
             "                                          validation_file=valid_id, seed=105)\n"),
             "training_file"),
        ],
        "right": [
            ("def submit_job(client, training_file_id, validation_file_id):\n"
            "    request = dict(training_file=training_file_id, validation_file=validation_file_id,\n"
            "                   seed=105, model=BASE_MODEL)\n"
            "    job = client.fine_tuning.jobs.create(**request)\n"
            "    return job\n"),
        ],
    },
}

#: answer cell grade id -> the test cell that judges it.
TESTS = {
    "tokenize": "test_tokenize", "subsets": "test_subsets", "model": "test_model",
    "compute_metrics": "test_compute_metrics", "trainer": "test_trainer",
    "token-counting": "test-token-counting", "token-counts": "test-token-counts",
    "estimate": "test-estimate", "uploads": "test-uploads", "submit": "test-submit",
}

#: answer cell grade id -> the names it defines (the harness removes them before a variant runs,
#: as a fresh kernel would not have them when the variant's cell fails).
DEFINES = {
    "tokenize": ("tokenizer", "tokenize_function"),
    "subsets": ("small_train_dataset", "small_eval_dataset"),
    "model": ("model",),
    "compute_metrics": ("compute_metrics",),
    "trainer": ("training_args", "trainer"),
    "token-counting": ("encoding", "num_tokens_from_messages", "num_assistant_tokens_from_messages"),
    "token-counts": ("token_counts",),
    "estimate": ("estimate_training",),
    "uploads": ("upload_training_files",),
    "submit": ("submit_job",),
}
