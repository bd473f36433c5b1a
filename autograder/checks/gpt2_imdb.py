"""Checks of assignment 01 (``gpt2_imdb.ipynb``: fine-tune GPT-2 on IMDB with the Trainer).

Each check decides one test cell, outside the student's kernel. It covers the cell's visible
tests and everything the task's text instructs, on inputs the notebook never shows, and compares
the kernel's plain answers with what this process computes itself from the course's own data and
backbone (the checker loads the same tokenizer, data set and pretrained weights, in the same mode).

One mistake costs one cell's points: a check that depends on an earlier answer judges its own
cell with the earlier answer replaced when that answer is missing or broken (the model cell with a
tokenizer that can pad, the Trainer cell with the reference subsets, tokenization and model), and
says so.
"""

from __future__ import annotations

import functools
import math
import os
import random
from typing import Any

from autograder.checker import CheckFailed, Probe, check, raised

CHECKS: dict = {}
#: What these checks import, for the checker server to import once before it forks a checker
#: per submission (autograder.nbgrader_runner); "module:name" resolves a lazily loaded name.
PRELOAD = ("numpy", "torch", "transformers:AutoTokenizer",
           "transformers:AutoModelForSequenceClassification", "sklearn.metrics", "datasets",
           "helpers.classifier", "helpers.imdb", "helpers.quiet")

SEED = 42
#: Texts the notebook never shows: one longer than any max_length, short ones of different
#: lengths, non-ASCII, markup as IMDB has it.
UNSEEN_TEXTS = [
    "Terrible pacing. " * 400,
    "Loved it!",
    "A slow start, but the final act <br /><br />is worth every minute — trust me.",
    "Ni bueno ni malo: simplemente olvidable. 🎬",
]
#: Short texts only: padding=True and padding="max_length" give different lengths here.
SHORT_TEXTS = ["Fine.", "Not my kind of film at all.", "An honest, warm and very funny comedy."]
#: The visible test's batch.
VISIBLE_TEXTS = ["A short review.", "word " * 2000]


# --------------------------------------------------------------------------- the reference


@functools.cache
def backbone():
    from helpers import classifier

    return classifier.choose_backbone()


@functools.cache
def recipe(device: str = "cpu"):
    from helpers import classifier

    return classifier.default_recipe(backbone(), device=device)


@functools.cache
def reference_tokenizer():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(backbone().path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def reference_ids(texts: list[str], max_length: int, side: str = "right") -> list[list[int]]:
    tokenizer = reference_tokenizer()
    saved = tokenizer.truncation_side
    tokenizer.truncation_side = side
    try:
        return [list(map(int, row)) for row in
                tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    finally:
        tokenizer.truncation_side = saved


@functools.cache
def reference_dataset():
    from helpers import imdb

    return imdb.load_imdb().dataset


@functools.cache
def reference_weights() -> dict[str, Any]:
    """Sampled values of the pretrained backbone's weights: ``{name: (shape, {index: value})}``."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from helpers.quiet import quiet

    tokenizer = reference_tokenizer()
    with quiet():  # the load report ("score.weight MISSING") is expected
        model = AutoModelForSequenceClassification.from_pretrained(
            backbone().path, num_labels=2, pad_token_id=tokenizer.pad_token_id,
            dtype=torch.float32)
    names = [n for n, _ in model.named_parameters()
             if not any(part in n for part in ("score", "classifier", "lm_head"))]
    chosen = sorted({names[0], names[1], names[len(names) // 2], names[-2], names[-1]})
    rng = random.Random(SEED)
    params = dict(model.named_parameters())
    out = {}
    for name in chosen:
        flat = params[name].detach().reshape(-1)
        indices = sorted({rng.randrange(flat.numel()) for _ in range(16)})
        out[name] = (list(params[name].shape), {i: float(flat[i]) for i in indices})
    return out


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _fail(message: str) -> None:
    raise CheckFailed(message)


def kernel_device(probe: Probe) -> str:
    return str(probe.run(
        "import sys\nRESULT = 'cpu'\ntorch = sys.modules.get('torch')\n"
        "if torch is not None and torch.cuda.is_available():\n    RESULT = 'cuda'\n"
        "elif torch is not None and getattr(torch.backends, 'mps', None) is not None and "
        "torch.backends.mps.is_available():\n    RESULT = 'mps'\n",
        what="the kernel's device"))


# --------------------------------------------------------------------------- step 2: tokenize

TOKENIZE_FACTS = r"""
tok = U.get("tokenizer")
f = U.get("tokenize_function")
facts = {"tokenizer": None, "function": None if f is None else type_name(f)}
if tok is not None:
    pad = getattr(tok, "pad_token", None)
    facts["tokenizer"] = {
        "type": type_name(tok),
        "pad_token": None if pad is None else str(pad),
        "pad_token_id": plain(getattr(tok, "pad_token_id", None)),
        "eos_token_id": plain(getattr(tok, "eos_token_id", None)),
        "truncation_side": str(getattr(tok, "truncation_side", "right")),
    }
    try:
        facts["tokenizer"]["size"] = len(tok)
    except BaseException as e:
        facts["tokenizer"]["size"] = None

def batch(texts):
    try:
        r = f({"text": list(texts)})
    except BaseException as e:
        return {"raised": error(e)}
    if not hasattr(r, "keys"):
        return {"type": type_name(r)}
    out = {"keys": sorted(str(k) for k in r.keys()), "type": type_name(r)}
    try:
        if "input_ids" in r and len(r["input_ids"]) and not hasattr(r["input_ids"][0], "__len__"):
            out["flat"] = True
        elif "input_ids" in r:
            out["input_ids"] = [[int(t) for t in row] for row in r["input_ids"]]
        if "attention_mask" in r:
            out["attention_mask"] = [[int(t) for t in row] for row in r["attention_mask"]]
    except BaseException as e:
        out["unreadable"] = error(e)
    return out

if callable(f):
    facts["batches"] = {name: batch(texts) for name, texts in INPUT.items()}
    try:
        import datasets
        ds = datasets.Dataset.from_dict({"text": list(INPUT["unseen"]), "label": [0] * len(INPUT["unseen"])})
        mapped = ds.map(f, batched=True, remove_columns=["text"])
        facts["map"] = {"columns": list(mapped.column_names),
                        "input_ids": [[int(t) for t in row] for row in mapped["input_ids"]]
                        if "input_ids" in mapped.column_names else None}
    except BaseException as e:
        facts["map"] = {"raised": error(e)}
RESULT = facts
"""


@check("test_tokenize", CHECKS)
def test_tokenize(probe: Probe) -> None:
    """The tokenizer can pad; ``tokenize_function`` (a batch, as ``map(batched=True)`` gives it)
    truncates to MAX_LENGTH, does not pad, returns input_ids with an all-ones attention_mask, with
    the backbone's own token ids, and works under ``Dataset.map``."""
    max_length = recipe(kernel_device(probe)).max_length
    rng = random.Random(SEED)
    words = ["plot", "acting", "boring", "superb", "the", "film", "never", "again", "!"]
    unseen = list(UNSEEN_TEXTS) + [" ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))
                                   for _ in range(3)]
    facts = probe.run(TOKENIZE_FACTS, {"visible": VISIBLE_TEXTS, "unseen": unseen,
                                       "short": SHORT_TEXTS},
                      what="your tokenizer and tokenize_function's output")
    tok = facts.get("tokenizer")
    if tok is None:
        _fail("`tokenizer` is not defined: load it in step 2 with "
              "`AutoTokenizer.from_pretrained(BACKBONE.path)`.")
    if tok.get("pad_token") is None:
        _fail("tokenizer.pad_token is None: GPT-2 was trained without a padding token, so neither "
              "the data collator nor the model can pad a batch. Reuse its end-of-text token: "
              "`tokenizer.pad_token = tokenizer.eos_token`.")
    if facts.get("function") is None:
        _fail("`tokenize_function` is not defined: write it in step 2.")
    if "batches" not in facts:
        _fail(f"`tokenize_function` should be a function; it is a {facts.get('function')}.")
    side = tok.get("truncation_side") if tok.get("truncation_side") in ("left", "right") else "right"
    batches = facts["batches"]
    for name, texts in (("short", SHORT_TEXTS), ("visible", VISIBLE_TEXTS), ("unseen", unseen)):
        result = batches.get(name) or {}
        shown = "tokenize_function({'text': [" + ", ".join(
            repr(t[:20] + "…") if len(t) > 20 else repr(t) for t in texts[:2]) + ", …]})"
        if raised(result):
            why = raised(result)
            _fail(f"{shown} {why}. It receives a batch: a dict whose 'text' is a LIST of "
                  "strings (map is called with batched=True); return the tokenizer's output for "
                  "all of them: `tokenizer(examples[\"text\"], truncation=True, "
                  "max_length=MAX_LENGTH)`.")
        if "keys" not in result:
            _fail(f"tokenize_function should return the tokenizer's output (a dict-like object "
                  f"with 'input_ids' and 'attention_mask'); it returned a {result.get('type')}.")
        if "input_ids" not in result["keys"] or "attention_mask" not in result["keys"]:
            _fail("tokenize_function should return input_ids and attention_mask (call the "
                  f"tokenizer itself, which returns both); it returned the keys {result['keys']}.")
        if result.get("flat"):
            _fail(f"{len(texts)} texts in, but input_ids is a single list of token ids, not "
                  f"{len(texts)} rows of input_ids: tokenize every text of the batch, "
                  "`tokenizer(examples[\"text\"], ...)` (not only examples[\"text\"][0]).")
        if "unreadable" in result or "input_ids" not in result:
            _fail(f"tokenize_function's input_ids are not lists of token ids "
                  f"({(result.get('unreadable') or {}).get('message', '')}): do not return "
                  "tensors (no return_tensors=...); the data collator makes tensors per batch.")
        ids = result["input_ids"]
        if len(ids) != len(texts):
            _fail(f"{len(texts)} texts in, {len(ids)} rows of input_ids out: tokenize every text "
                  "of the batch, `tokenizer(examples[\"text\"], ...)`.")
        lengths = [len(row) for row in ids]
        expected = reference_ids(texts, max_length, side)
        expected_lengths = [len(row) for row in expected]
        if name == "visible":
            if lengths[1] > max_length:
                _fail(f"a 2000-word review gave {lengths[1]} tokens: truncate to max_length="
                      f"MAX_LENGTH ({max_length}): `truncation=True, max_length=MAX_LENGTH`.")
            if lengths[0] >= max_length:
                _fail(f"a 3-word review gave {lengths[0]} tokens: do not pad in tokenize_function "
                      "(DataCollatorWithPadding pads each batch later).")
        if lengths != expected_lengths and len(set(lengths)) == 1:
            if lengths[0] == max_length:
                _fail(f"Every review comes back with exactly {max_length} tokens, short ones too: "
                      "the function pads to max_length (padding=\"max_length\"). Do not pad at map "
                      "time: DataCollatorWithPadding pads each batch only to its own longest "
                      "review, so no compute goes to padding a batch does not need.")
            _fail(f"All reviews of a batch come back with {lengths[0]} tokens (expected "
                  f"{expected_lengths}): the function pads each batch to its longest review "
                  "(padding=True). Leave padding to the data collator: no `padding=` here.")
        if max(lengths) > max_length:
            _fail(f"A long review came back with {max(lengths)} tokens, more than max_length="
                  f"{max_length}: pass `truncation=True, max_length=MAX_LENGTH` to the tokenizer.")
        if lengths != expected_lengths:
            _fail(f"Token counts {lengths} differ from the expected {expected_lengths} (every "
                  f"review truncated to MAX_LENGTH={max_length}, none padded).")
        if ids != expected:
            other = reference_ids(texts, max_length, "left" if side == "right" else "right")
            hint = (" They match the other end of each review: leave tokenizer.truncation_side "
                    "as it is in step 2 (the notebook sets it before tokenizing the subsets).") \
                if ids == other else ""
            _fail("The token ids differ from the backbone tokenizer's own "
                  f"`tokenizer(texts, truncation=True, max_length={max_length})`: tokenize the raw "
                  "'text' with the tokenizer loaded from BACKBONE.path." + hint)
        masks = result.get("attention_mask") or []
        if [len(m) for m in masks] != lengths or any(v != 1 for m in masks for v in m):
            _fail("The attention masks should be all ones, one per token (nothing is padded "
                  "yet): return the tokenizer's own attention_mask.")
    mapped = facts.get("map") or {}
    if raised(mapped):
        _fail(f"`Dataset.map(tokenize_function, batched=True, remove_columns=['text'])`, as the "
              f"notebook calls it, {raised(mapped)}.")
    if mapped.get("input_ids") != reference_ids(unseen, max_length, side):
        _fail("Under `Dataset.map(tokenize_function, batched=True)` the input_ids differ from the "
              f"tokenizer's: return the tokenizer's output (columns found: {mapped.get('columns')}).")


# --------------------------------------------------------------------------- step 3: subsets

SUBSET_FACTS = r"""
import hashlib
def describe(name):
    if name not in U:
        return None
    d = U[name]
    info = {"type": type_name(d), "has_map": callable(getattr(d, "map", None))}
    try:
        info["length"] = len(d)
    except BaseException as e:
        info["length"] = None
    cols = getattr(d, "column_names", None)
    info["columns"] = [str(c) for c in cols] if isinstance(cols, (list, tuple)) else None
    try:
        if info["columns"] and "label" in info["columns"]:
            info["labels"] = [int(x) for x in d["label"]]
        if info["columns"] and "text" in info["columns"]:
            info["texts"] = [hashlib.sha256(t.encode("utf-8")).hexdigest()[:16] for t in d["text"]]
    except BaseException as e:
        info["unreadable"] = error(e)
    return info
RESULT = {name: describe(name) for name in INPUT}
"""


@check("test_subsets", CHECKS)
def test_subsets(probe: Probe) -> None:
    """``small_train_dataset``/``small_eval_dataset`` are TRAIN_SIZE/EVAL_SIZE reviews of the train
    and test splits, each ``shuffle(seed=42).select(range(n))``: exactly those reviews."""
    plan = recipe(kernel_device(probe))
    facts = probe.run(SUBSET_FACTS, ["small_train_dataset", "small_eval_dataset"],
                      what="your two subsets")
    data = reference_dataset()
    for name, split, size in (("small_train_dataset", "train", plan.train_size),
                              ("small_eval_dataset", "test", plan.eval_size)):
        info = facts.get(name)
        if info is None:
            _fail(f"`{name}` is not defined: build it in step 3.")
        if not info.get("has_map") or info.get("columns") is None:
            _fail(f"`{name}` should be a datasets.Dataset (the next cell calls its .map); it is a "
                  f"{info.get('type')}. Keep `dataset['{split}'].shuffle(seed=SEED)"
                  f".select(range(...))`; slicing with [:n] gives a plain dict.")
        if info.get("length") != size:
            _fail(f"`{name}` has {info.get('length')} reviews, expected "
                  f"{'TRAIN_SIZE' if split == 'train' else 'EVAL_SIZE'}={size} (from the "
                  f"'{split}' split).")
        if "label" not in info["columns"] or "text" not in info["columns"]:
            _fail(f"`{name}` has the columns {info['columns']}: keep 'text' and 'label' (the "
                  "next cell tokenizes the text; the Trainer needs the labels).")
        if "unreadable" in info:
            _fail(f"`{name}` could not be read: {info['unreadable'].get('message')}")
        labels, texts = info.get("labels") or [], info.get("texts") or []
        share = sum(labels) / len(labels) if labels else 0.0
        if not 0.2 < share < 0.8:
            _fail(f"{share:.0%} of `{name}` is positive: did you shuffle before selecting? IMDB's "
                  "splits are sorted by label (every negative review first), so the first "
                  f"{size} reviews are all negative: `.shuffle(seed=SEED).select(range({size}))`.")
        reference = data[split].shuffle(seed=SEED).select(range(size))
        if texts == [_sha(t) for t in reference["text"]] and labels == list(reference["label"]):
            continue
        first = [_sha(t) for t in data[split].select(range(size))["text"]]
        if sorted(texts) == sorted(first):
            _fail(f"`{name}` holds the first {size} reviews of '{split}' (selected before "
                  "shuffling, or not shuffled): shuffle the whole split first, then select: "
                  f"`.shuffle(seed=SEED).select(range({size}))`.")
        other = "test" if split == "train" else "train"
        if texts == [_sha(t) for t in data[other].shuffle(seed=SEED).select(range(size))["text"]]:
            _fail(f"`{name}` comes from the '{other}' split; it should come from '{split}'.")
        _fail(f"`{name}` is not `dataset['{split}'].shuffle(seed=SEED).select(range({size}))`: "
              "shuffle with seed=SEED (42) exactly, then select the first reviews (another seed "
              "gives another subset, and the results are no longer comparable).")


# --------------------------------------------------------------------------- step 4: model

MODEL_FACTS = r"""
def model_facts(m, tok):
    import torch
    f = {"type": type_name(m), "mro": [c.__name__ for c in type(m).__mro__][:12]}
    cfg = getattr(m, "config", None)
    if cfg is None or not hasattr(m, "named_parameters"):
        return f
    f["config"] = {k: plain(getattr(cfg, k, None)) for k in (
        "num_labels", "pad_token_id", "problem_type", "model_type", "eos_token_id")}
    f["config"]["id2label"] = {str(k): str(v) for k, v in (getattr(cfg, "id2label", None) or {}).items()}
    f["config"]["label2id"] = {str(k): plain(v) for k, v in (getattr(cfg, "label2id", None) or {}).items()}
    try:
        f["embedding_rows"] = int(m.get_input_embeddings().weight.shape[0])
    except BaseException as e:
        f["embedding_rows"] = None
    f["tokenizer_pad_id"] = None if tok is None else plain(getattr(tok, "pad_token_id", None))
    params = dict(m.named_parameters())
    f["weights"] = {}
    for name, indices in INPUT["weights"].items():
        p = params.get(name)
        if p is None:
            f["weights"][name] = None
            continue
        flat = p.detach().float().reshape(-1)
        f["weights"][name] = {"shape": list(p.shape),
                              "values": {str(i): float(flat[i]) for i in indices if i < flat.numel()}}
    pad = f["config"]["pad_token_id"]
    rows = f["embedding_rows"]
    if isinstance(pad, int) and isinstance(rows, int) and 0 <= pad < rows:
        ids = [row + [pad] * (INPUT["width"] - len(row)) for row in INPUT["ids"]]
        mask = [[1] * len(row) + [0] * (INPUT["width"] - len(row)) for row in INPUT["ids"]]
        dev = next(m.parameters()).device
        was = m.training
        m.eval()
        try:
            with torch.no_grad():
                try:
                    out = m(input_ids=torch.tensor(ids, device=dev), attention_mask=torch.tensor(mask, device=dev))
                    f["logits_shape"] = list(out.logits.shape)
                    if out.logits.numel() <= 64:
                        f["logits"] = out.logits.float().cpu().tolist()
                except BaseException as e:
                    f["forward_error"] = error(e)
                try:
                    out = m(input_ids=torch.tensor(ids, device=dev), attention_mask=torch.tensor(mask, device=dev),
                            labels=torch.tensor(INPUT["labels"], device=dev))
                    f["loss"] = None if out.loss is None else float(out.loss)
                except BaseException as e:
                    f["loss_error"] = error(e)
        finally:
            m.train(was)
    return f
"""

#: Kernel code that builds a tokenizer that can pad (the student's own, copied, or the
#: backbone's), for judging the model cell when step 2 left the tokenizer without one.
PADDED_TOKENIZER = r"""
import copy
_t = globals().get("tokenizer")
try:
    VALUE = copy.deepcopy(_t) if _t is not None and hasattr(_t, "eos_token") else None
except BaseException:
    VALUE = None
if VALUE is None:
    from transformers import AutoTokenizer
    VALUE = AutoTokenizer.from_pretrained(BACKBONE.path)
if VALUE.pad_token is None:
    VALUE.pad_token = VALUE.eos_token
"""


def _model_inputs() -> dict:
    tokenizer = reference_tokenizer()
    rows = [list(map(int, tokenizer(text)["input_ids"])) for text in
            ["Great!", "A dull, overlong and forgettable film that wastes its cast."]]
    weights = {name: sorted(values) for name, (_, values) in reference_weights().items()}
    return {"ids": rows, "width": max(map(len, rows)), "labels": [1, 0], "weights": weights}


@check("test_model", CHECKS)
def test_model(probe: Probe) -> None:
    """A sequence-classification model loaded from BACKBONE.path (pretrained weights, not a fresh
    configuration), two labelled classes, the tokenizer's pad id inside its embeddings; a padded
    batch runs through it and a forward pass with labels gives a finite loss."""
    inputs = _model_inputs()
    facts = probe.run(MODEL_FACTS + "RESULT = model_facts(U['model'], U.get('tokenizer')) "
                      "if 'model' in U else None\n", inputs, what="your model's configuration")
    note = ""
    tokenizer_ok = probe.run("t = U.get('tokenizer')\nRESULT = t is not None and "
                             "getattr(t, 'pad_token', None) is not None\n",
                             what="whether your tokenizer can pad")
    if not tokenizer_ok and (facts is None or (facts.get("config") or {}).get("pad_token_id") is None):
        rerun = probe.rerun_snippet("model", {"tokenizer": PADDED_TOKENIZER})
        if rerun is not None:
            facts = probe.run(rerun + MODEL_FACTS + (
                "RESULT = {'rerun_error': RERUN_ERROR, 'facts': model_facts(NS['model'], "
                "NS['tokenizer']) if 'model' in NS else None}\n"), inputs,
                what="your model cell, run with a tokenizer that can pad")
            if facts.get("rerun_error"):
                _fail(f"Your model cell {raised({'raised': facts['rerun_error']})}.")
            facts = facts.get("facts")
            note = (" (Your tokenizer has no pad token, which costs step 2's points; this cell was "
                    "judged with one.)")
    if facts is None:
        _fail("`model` is not defined: build it in step 4 (did the cell raise an error?).")
    kind = facts.get("type", "")
    if "LMHead" in kind or "CausalLM" in kind:
        _fail(f"`model` is a {kind}: its output is one score per vocabulary token, not per class. "
              "Use `AutoModelForSequenceClassification.from_pretrained(BACKBONE.path, "
              "num_labels=2, ...)`." + note)
    if "SequenceClassification" not in kind or "config" not in facts:
        _fail(f"`model` should be a ...ForSequenceClassification model; found {kind}." + note)
    config = facts["config"]
    if config.get("num_labels") != 2:
        _fail(f"num_labels is {config.get('num_labels')}; IMDB has 2 classes (negative, positive): "
              "num_labels=2." + note)
    id2label = config.get("id2label") or {}
    if id2label.get("1") != "POSITIVE" or id2label.get("0") != "NEGATIVE":
        _fail(f"model.config.id2label is {id2label}; pass id2label=ID2LABEL ({{0: 'NEGATIVE', "
              "1: 'POSITIVE'}), so predictions read as words." + note)
    if config.get("label2id") not in ({"NEGATIVE": 0, "POSITIVE": 1},):
        _fail(f"model.config.label2id is {config.get('label2id')}; pass label2id=LABEL2ID, the "
              "inverse of id2label." + note)
    if config.get("problem_type") not in (None, "single_label_classification"):
        _fail(f"model.config.problem_type is {config.get('problem_type')!r}: with one class id "
              "per review the loss is cross-entropy (problem_type None or "
              "'single_label_classification'); every training step fails or learns the wrong "
              "thing otherwise." + note)
    pad, rows = config.get("pad_token_id"), facts.get("embedding_rows")
    if pad is None:
        _fail("model.config.pad_token_id is None: pass pad_token_id=tokenizer.pad_token_id. The "
              "classifier reads the last non-pad token of each review, so it must know the pad id "
              "(without it, batches larger than one fail)." + note)
    if not isinstance(pad, int) or not isinstance(rows, int) or not 0 <= pad < rows:
        _fail(f"model.config.pad_token_id is {pad}, but the model's embedding matrix has {rows} "
              f"rows (token ids 0-{(rows or 1) - 1}): a new [PAD] token needs "
              "model.resize_token_embeddings(len(tokenizer)); the course reuses the end-of-text "
              "token instead (tokenizer.pad_token = tokenizer.eos_token)." + note)
    tok_pad = facts.get("tokenizer_pad_id")
    if tok_pad is not None and pad != tok_pad:
        _fail(f"model.config.pad_token_id is {pad} but the tokenizer pads with {tok_pad}: pass "
              "pad_token_id=tokenizer.pad_token_id." + note)
    for name, (shape, values) in reference_weights().items():
        found = (facts.get("weights") or {}).get(name)
        if found is None:
            _fail(f"The model has no parameter {name!r}: load the backbone itself, "
                  "`AutoModelForSequenceClassification.from_pretrained(BACKBONE.path, ...)`." + note)
        got = found.get("values") or {}
        if any(str(i) not in got or not math.isclose(got[str(i)], v, rel_tol=1e-4, abs_tol=1e-5)
               for i, v in values.items()):
            _fail("The model's weights are not the pretrained backbone's (compared at sampled "
                  f"positions of {name}): load them with `from_pretrained(BACKBONE.path, ...)`; a "
                  "model built from a configuration alone starts from random weights and has "
                  "learned nothing about language." + note)
    if "forward_error" in facts:
        _fail("A padded batch of two reviews fails in the model: "
              f"{raised({'raised': facts['forward_error']})}" + note)
    logits = facts.get("logits")
    if not isinstance(logits, list) or [len(row) for row in logits] != [2, 2]:
        _fail(f"Two reviews should give logits of shape (2, 2); got {facts.get('logits_shape')}."
              + note)
    if "loss_error" in facts:
        _fail("A forward pass with labels fails, so every training step would fail: "
              f"{raised({'raised': facts['loss_error']})}" + note)
    loss = facts.get("loss")
    if not isinstance(loss, (int, float)) or not math.isfinite(loss):
        _fail(f"A forward pass with labels gives the loss {loss!r}, not a finite number." + note)


# --------------------------------------------------------------------------- step 5: metrics

METRIC_CALLS = r"""
import numpy as np
from transformers import EvalPrediction
f = U.get("compute_metrics")
if f is None or not callable(f):
    RESULT = {"missing": None if f is None else type_name(f)}
else:
    RESULT = {"outcomes": [call(f, [EvalPrediction(predictions=np.array(c["logits"], dtype=np.float32),
                                                  label_ids=np.array(c["labels"], dtype=np.int64))])
                           for c in INPUT]}
"""

#: Crafted cases: logits deliberately not probabilities (negative, > 1), classes imbalanced so
#: that positive-class, macro and weighted F1 all differ; the visible test's two cases first.
METRIC_CASES = [
    ("the visible test's three reviews", [[2.0, -1.0], [-0.5, 1.5], [0.2, 0.1]], [0, 1, 1]),
    ("a batch with no predicted positive", [[1.0, 0.0], [2.0, 0.0]], [1, 0]),
    ("an imbalanced batch",
     [[2.5, -1.0], [0.3, 1.7], [-0.4, 0.9], [1.2, 0.1], [3.0, -2.0], [-1.5, 2.5], [0.8, 0.2],
      [0.1, 0.4], [2.2, 1.9], [-0.3, -0.1]], [0, 1, 0, 1, 0, 1, 1, 1, 1, 1]),
    ("a batch where the model predicts only 'negative'",
     [[1.0, -1.0], [2.0, 0.5], [0.7, 0.1], [3.1, -0.2]], [1, 0, 1, 0]),
    ("a batch with only negative reviews", [[1.0, -1.0], [0.2, 0.5], [2.0, 0.1]], [0, 0, 0]),
]


def _metric_cases() -> list[tuple[str, list, list]]:
    rng = random.Random(SEED + 5)
    cases = list(METRIC_CASES)
    for n in (7, 31):
        logits = [[round(rng.uniform(-3, 3), 3), round(rng.uniform(-3, 3), 3)] for _ in range(n)]
        cases.append((f"{n} random reviews", logits, [rng.randint(0, 1) for _ in range(n)]))
    return cases


def expected_metrics(logits: list, labels: list) -> dict[str, float]:
    """scikit-learn's positive-class metrics (an implementation independent of the course's)."""
    import warnings

    import numpy as np
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    predictions = np.argmax(np.array(logits), axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, predictions, average="binary", pos_label=1, zero_division=0)
    return {"accuracy": float(accuracy_score(labels, predictions)),
            "precision": float(precision), "recall": float(recall), "f1": float(f1)}


def _metric_hint(key: str, found: float, logits: list, labels: list) -> str:
    import warnings

    import numpy as np
    from sklearn.metrics import f1_score, precision_score, recall_score

    predictions = np.argmax(np.array(logits), axis=-1)
    if key == "accuracy":
        return ("Accuracy compares class ids with the labels: take `predictions = "
                "np.argmax(logits, axis=-1)` first, not the raw logits.")
    scorer = {"precision": precision_score, "recall": recall_score, "f1": f1_score}[key]
    for average in ("macro", "weighted", "micro"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alternative = float(scorer(labels, predictions, average=average, zero_division=0))
        if math.isclose(alternative, found, abs_tol=1e-6):
            return (f"That is the {average} average over both classes; the assignment asks for "
                    "the positive class (label 1): `average='binary'`.")
    swapped = {"precision": recall_score, "recall": precision_score}.get(key)
    if swapped is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if math.isclose(float(swapped(labels, predictions, zero_division=0)), found,
                            abs_tol=1e-6):
                return "That is the other metric: precision and recall are swapped."
    return ("Compute it from `np.argmax(logits, axis=-1)` against the labels, for the positive "
            "class (label 1), returning 0.0 when the denominator is zero.")


@check("test_compute_metrics", CHECKS)
def test_compute_metrics(probe: Probe) -> None:
    """``compute_metrics(EvalPrediction)`` returns accuracy and positive-class precision, recall
    and F1 from logits, as numbers, without crashing or NaN on one-class batches."""
    cases = _metric_cases()
    result = probe.run(METRIC_CALLS, [{"logits": lg, "labels": lb} for _, lg, lb in cases],
                       what="compute_metrics' results")
    if "outcomes" not in result:
        found = result.get("missing")
        _fail("`compute_metrics` is not defined: write it in step 5." if found is None else
              f"`compute_metrics` should be a function; it is a {found}.")
    for (description, logits, labels), outcome in zip(cases, result["outcomes"], strict=True):
        if raised(outcome):
            error = outcome["raised"]
            if error.get("type") == "ZeroDivisionError":
                _fail(f"compute_metrics divides by zero on {description}: when nothing is "
                      "predicted positive, precision is 0/0; return 0.0 then (scikit-learn: "
                      "`zero_division=0`).")
            _fail(f"compute_metrics {raised(outcome)} on {description}. It gets the Trainer's "
                  "EvalPrediction: `logits, labels = eval_pred` (or eval_pred.predictions, "
                  "eval_pred.label_ids), logits of shape (n, 2).")
        value = outcome.get("value")
        if not isinstance(value, dict):
            _fail(f"compute_metrics should return a dict of metrics; it returned a "
                  f"{outcome.get('type')}.")
        missing = [k for k in ("accuracy", "precision", "recall", "f1") if k not in value]
        if missing:
            _fail(f"The metrics dict lacks {missing} (found keys {sorted(value)}). Use exactly the "
                  "keys 'accuracy', 'precision', 'recall', 'f1': the Trainer logs them as "
                  "eval_<key>.")
        for key, expected in expected_metrics(logits, labels).items():
            found = value[key]
            if isinstance(found, bool) or not isinstance(found, (int, float)):
                _fail(f"result['{key}'] should be a number; found {found!r:.60}.")
            if math.isnan(found):
                _fail(f"result['{key}'] is NaN on {description}: a 0/0 division. Return 0.0 when "
                      "there are no predicted (precision) or actual (recall) positives.")
            if not math.isclose(found, expected, abs_tol=1e-6):
                _fail(f"result['{key}'] is {found:.4f} on {description}; expected "
                      f"{expected:.4f}. " + _metric_hint(key, found, logits, labels))


# --------------------------------------------------------------------------- step 6: arguments

ARG_KEYS = ("output_dir", "eval_strategy", "save_strategy", "learning_rate", "weight_decay",
            "per_device_train_batch_size", "per_device_eval_batch_size", "num_train_epochs",
            "logging_steps", "logging_strategy", "report_to", "seed", "max_steps")

TRAINER_FACTS = r"""
import hashlib
def fingerprint(ds):
    try:
        rows = ds["input_ids"]
        return hashlib.sha256(repr([list(map(int, r)) for r in rows]).encode()).hexdigest()[:16]
    except BaseException:
        return None

def trainer_facts(S):
    f = {"names": {n: n in S for n in INPUT["names"]}}
    a = S.get("training_args")
    if a is not None:
        f["args_type"] = type_name(a)
        try:
            d = a.to_dict()
            f["args"] = {k: plain(d.get(k)) for k in INPUT["keys"]}
        except BaseException as e:
            f["args_error"] = error(e)
    f["output_dir_constant"] = str(S.get("OUTPUT_DIR"))
    t = S.get("trainer")
    if t is None:
        return f
    f["trainer_type"] = type_name(t)
    f["model_is_model"] = getattr(t, "model", None) is S.get("model") and S.get("model") is not None
    f["args_is_training_args"] = getattr(t, "args", None) is a and a is not None
    try:
        d = t.args.to_dict()
        f["trainer_args"] = {k: plain(d.get(k)) for k in INPUT["keys"]}
    except BaseException as e:
        f["trainer_args"] = None
    for split, name in (("train_dataset", "tokenized_train"), ("eval_dataset", "tokenized_eval")):
        ds = getattr(t, split, None)
        if ds is None:
            f[split] = None
            continue
        info = {"is_notebook_var": ds is S.get(name), "type": type_name(ds),
                "columns": [str(c) for c in (getattr(ds, "column_names", None) or [])]}
        try:
            info["length"] = len(ds)
        except BaseException:
            info["length"] = None
        info["fingerprint"] = fingerprint(ds)
        info["notebook_fingerprint"] = fingerprint(S[name]) if S.get(name) is not None else None
        f[split] = info
    pc = getattr(t, "processing_class", None)
    f["processing_class"] = None if pc is None else type_name(pc)
    f["processing_class_is_tokenizer"] = pc is S.get("tokenizer") and pc is not None
    c = getattr(t, "data_collator", None)
    f["collator"] = {"type": type_name(c), "mro": [k.__name__ for k in type(c).__mro__][:8],
                     "padding": plain(getattr(c, "padding", None)),
                     "max_length": plain(getattr(c, "max_length", None))}
    ds = getattr(t, "train_dataset", None)
    try:
        lengths = [len(ds[i]["input_ids"]) for i in range(min(len(ds), 64))]
        short = min(range(len(lengths)), key=lengths.__getitem__)
        long = max(range(len(lengths)), key=lengths.__getitem__)
        features = [{k: v for k, v in ds[i].items() if k in ("input_ids", "attention_mask", "label", "labels")}
                    for i in (short, long)]
        batch = c(features)
        f["collated"] = {"lengths": [lengths[short], lengths[long]],
                         "shape": list(batch["input_ids"].shape),
                         "padded_with": int(batch["input_ids"][0][-1]) if lengths[short] < batch["input_ids"].shape[1] else None}
    except BaseException as e:
        f["collate_error"] = error(e)
    cm = getattr(t, "compute_metrics", None)
    f["compute_metrics_is_notebook"] = cm is S.get("compute_metrics") and cm is not None
    f["has_compute_metrics"] = cm is not None
    tok = S.get("tokenizer")
    f["tokenizer_pad_id"] = None if tok is None else plain(getattr(tok, "pad_token_id", None))
    ctok = getattr(c, "tokenizer", None)
    f["collator_can_pad"] = ctok is not None and getattr(ctok, "pad_token", None) is not None
    return f
"""

#: Kernel code for the names the Trainer cell uses, when an earlier answer left one undefined:
#: the reference answer of that step, so the Trainer cell is judged on its own.
SUBSTITUTES = {
    "tokenizer": PADDED_TOKENIZER,
    "small_train_dataset": "VALUE = dataset['train'].shuffle(seed=SEED).select(range(TRAIN_SIZE))",
    "small_eval_dataset": "VALUE = dataset['test'].shuffle(seed=SEED).select(range(EVAL_SIZE))",
    "tokenized_train": (
        "tokenizer.truncation_side = RECIPE.truncation_side\n"
        "VALUE = small_train_dataset.map(lambda b: tokenizer(b['text'], truncation=True, "
        "max_length=MAX_LENGTH), batched=True, remove_columns=['text'])"),
    "tokenized_eval": (
        "VALUE = small_eval_dataset.map(lambda b: tokenizer(b['text'], truncation=True, "
        "max_length=MAX_LENGTH), batched=True, remove_columns=['text'])"),
    "model": (
        "from transformers import AutoModelForSequenceClassification\n"
        "VALUE = AutoModelForSequenceClassification.from_pretrained(BACKBONE.path, num_labels=2, "
        "id2label=ID2LABEL, label2id=LABEL2ID, pad_token_id=tokenizer.pad_token_id)"),
    "compute_metrics": "def VALUE(eval_pred):\n    return {}",
}


def _trainer_facts(probe: Probe) -> tuple[dict, str]:
    inputs = {"keys": list(ARG_KEYS), "names": list(SUBSTITUTES)}
    facts = probe.run(TRAINER_FACTS + "RESULT = trainer_facts(U)\n", inputs,
                      what="your training arguments and Trainer")
    if facts.get("trainer_type") and facts.get("args"):
        return facts, ""
    missing = [name for name, present in facts["names"].items() if not present]
    if not missing:
        return facts, ""
    substitutes = {name: SUBSTITUTES[name] for name in SUBSTITUTES if name in missing}
    rerun = probe.rerun_snippet("trainer", substitutes)
    if rerun is None:
        return facts, ""
    again = probe.run(rerun + TRAINER_FACTS + "RESULT = {'rerun_error': RERUN_ERROR, "
                      "'facts': trainer_facts(NS)}\n", inputs,
                      what="your Trainer cell, run with the earlier steps' reference answers")
    if again.get("rerun_error"):
        _fail(f"Your Trainer cell {raised({'raised': again['rerun_error']})} (run with the "
              f"reference answers of the earlier steps that are missing: {', '.join(missing)}).")
    note = (f" (Earlier steps left {', '.join(missing)} undefined, which costs their points; this "
            "cell was judged with their reference answers.)")
    return again["facts"], note


@check("test_trainer", CHECKS)
def test_trainer(probe: Probe) -> None:
    """Every TrainingArguments value the task names, and a Trainer that trains ``model`` itself on
    the tokenized subsets, with the tokenizer, a padding (not max-length) collator, the metrics
    function and no step limit."""
    plan = recipe(kernel_device(probe))
    facts, note = _trainer_facts(probe)
    if "args_type" not in facts:
        _fail("`training_args` is not defined. Did the cell fail? In transformers 5 the keyword "
              "`evaluation_strategy` is gone: use `eval_strategy=\"epoch\"`." + note)
    if "args" not in facts or "TrainingArguments" not in facts["args_type"]:
        _fail(f"`training_args` should be a TrainingArguments; it is a {facts['args_type']}." + note)
    args = facts["args"]
    output_dir = os.path.normpath(os.path.join(facts.get("output_dir_constant", ""), "checkpoints"))
    if args.get("eval_strategy") != "epoch":
        _fail(f"eval_strategy is {args.get('eval_strategy')!r}; set eval_strategy='epoch' so the "
              "model is scored on the held-out reviews after every epoch (older tutorials call "
              "it evaluation_strategy, removed in transformers 5)." + note)
    report_to = args.get("report_to")
    report_to = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if "mlflow" not in report_to and "all" not in report_to:
        _fail(f"report_to is {report_to}; set report_to='mlflow' so the run's parameters and "
              "metrics are recorded (transformers 5 reports nowhere by default)." + note)
    logging_steps = max(1, plan.train_size // plan.train_batch_size // 20)
    expected = [
        ("output_dir", output_dir, 'str(OUTPUT_DIR / "checkpoints")'),
        ("save_strategy", "no", '"no" (the notebook saves the model itself in step 8)'),
        ("learning_rate", plan.learning_rate, "LEARNING_RATE"),
        ("weight_decay", 0.01, "0.01"),
        ("per_device_train_batch_size", plan.train_batch_size, "TRAIN_BATCH_SIZE"),
        ("per_device_eval_batch_size", plan.eval_batch_size, "EVAL_BATCH_SIZE"),
        ("num_train_epochs", plan.epochs, "EPOCHS"),
        ("logging_steps", logging_steps, "LOGGING_STEPS"),
        ("logging_strategy", "steps", "the default, 'steps', with logging_steps=LOGGING_STEPS"),
        ("seed", SEED, "SEED"),
        ("max_steps", -1, "no step limit (-1, the default): remove max_steps"),
    ]
    for key, value, source in expected:
        found = args.get(key)
        if key == "output_dir":
            same = isinstance(found, str) and os.path.normpath(found) == value
        elif isinstance(value, str):
            same = found == value
        else:
            same = (isinstance(found, (int, float)) and not isinstance(found, bool)
                    and math.isclose(float(found), float(value), rel_tol=1e-9))
        if not same:
            _fail(f"training_args.{key} is {found!r}; expected {value!r} ({source})." + note)
    if "trainer_type" not in facts:
        _fail("`trainer` is not defined: build it in step 6 with "
              "`Trainer(model=model, args=training_args, ...)`." + note)
    if not facts.get("model_is_model"):
        _fail("The Trainer does not train `model` itself but another model object: pass "
              "`model=model` (step 8 saves and reloads `model`, which would stay untrained)."
              + note)
    if not facts.get("args_is_training_args") and facts.get("trainer_args") != args:
        _fail("The Trainer's arguments are not `training_args`: pass `args=training_args`." + note)
    for split, name, size in (("train_dataset", "tokenized_train", plan.train_size),
                              ("eval_dataset", "tokenized_eval", plan.eval_size)):
        info = facts.get(split)
        if info is None:
            _fail(f"trainer.{split} is None: pass `{split}={name}`." + note)
        if info.get("is_notebook_var"):
            continue
        columns = info.get("columns") or []
        if "input_ids" not in columns:
            _fail(f"trainer.{split} has the columns {columns}, no input_ids: the Trainer got the "
                  f"raw, untokenized subset, and training would crash. Pass `{split}={name}` "
                  "(the tokenized reviews)." + note)
        if info.get("length") != size or info.get("fingerprint") != info.get(
                "notebook_fingerprint"):
            _fail(f"trainer.{split} is not `{name}` ({info.get('length')} rows): pass "
                  f"`{split}={name}`." + note)
    if facts.get("processing_class") is None:
        _fail("Pass the tokenizer as `processing_class=tokenizer` (the old `tokenizer=` keyword "
              "is gone in transformers 5)." + note)
    collator = facts.get("collator") or {}
    if "DataCollatorWithPadding" not in (collator.get("mro") or []):
        _fail(f"The data collator is {collator.get('type')}: pass "
              "`data_collator=DataCollatorWithPadding(tokenizer)` so each batch is padded to its "
              "longest review." + note)
    if collator.get("padding") not in (True, "longest") or collator.get("max_length") is not None:
        _fail(f"The data collator pads with padding={collator.get('padding')!r}"
              f"{', max_length=' + str(collator['max_length']) if collator.get('max_length') else ''}"
              ": that pads every batch to a fixed length. Use "
              "`DataCollatorWithPadding(tokenizer)` as it is (padding=True): each batch is padded "
              "only to its own longest review." + note)
    collated = facts.get("collated")
    if collated is None and not facts.get("collator_can_pad"):
        collated = {"skipped": True}  # the tokenizer cannot pad: step 2's mistake, not this cell's
    if collated is None:
        error = facts.get("collate_error") or {}
        _fail(f"The data collator fails on two training examples: {error.get('type')}: "
              f"{error.get('message', '')[:300]}" + note)
    if "shape" in collated and collated["shape"][1] != max(collated["lengths"]):
        _fail(f"Two reviews of {collated['lengths']} tokens were padded to "
              f"{collated['shape'][1]}: the collator should pad a batch to its longest review "
              "only (DataCollatorWithPadding(tokenizer))." + note)
    if not facts.get("has_compute_metrics"):
        _fail("Pass `compute_metrics=compute_metrics` so evaluation reports accuracy, precision, "
              "recall and F1." + note)
    if not facts.get("compute_metrics_is_notebook"):
        _fail("The Trainer's compute_metrics is not your `compute_metrics` function: pass "
              "`compute_metrics=compute_metrics`." + note)
