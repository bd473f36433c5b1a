"""The emulator's two backends, training and generation, on one code path.

- ``smollm2``: SmolLM2-135M-Instruct (from ``helpers.assets.smollm2_dir()``, offline) with a
  LoRA adapter (``peft``, r=8 on ``q_proj``/``v_proj``); the adapter is the fine-tuned model.
- ``tiny``: a randomly initialised two-layer Llama (hidden size 64) with the same SmolLM2
  tokenizer and chat template, fully fine-tuned; a job takes seconds on a CPU.

Both render each example with the model's chat template and compute the loss on the tokens
of the assistant messages only (an assistant message with ``"weight": 0`` is not trained on),
like Azure OpenAI's supervised fine-tuning. Training is seeded: the same seed, data and
hyperparameters give the same loss sequence (on the same device).

Environment: ``EMULATOR_TORCH_THREADS`` (CPU threads, see :func:`torch_threads`) and
``EMULATOR_DEVICE`` (see :func:`device_for`; ``smollm2`` uses a visible GPU by default).

torch and transformers are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Learning rate of each backend at ``learning_rate_multiplier == 1`` (the "auto" value).
BASE_LEARNING_RATE = {"tiny": 2e-3, "smollm2": 1e-3}
#: The tiny backend's "pretrained" weights: always the same random initialisation.
TINY_BASE_SEED = 0
TINY_CONFIG = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
}
LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
#: Longest training example, in tokens of the local model (longer ones are truncated).
MAX_TRAINING_TOKENS = 2048
#: OpenAI's rule for ``n_epochs="auto"`` (the fine-tuning cookbook's constants).
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 3, 100, 25_000
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 1, 25
#: Checkpoints are kept for the last epochs, as Azure OpenAI does.
CHECKPOINT_EPOCHS = 3


class Cancelled(Exception):
    """Raised inside training when the job was cancelled (checked between steps)."""


# --------------------------------------------------------------------------- hyperparameters

@dataclass(frozen=True)
class Hyperparameters:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float

    def as_dict(self) -> dict[str, Any]:
        return {"n_epochs": self.n_epochs, "batch_size": self.batch_size,
                "learning_rate_multiplier": self.learning_rate_multiplier}


def auto_epochs(n_examples: int) -> int:
    """OpenAI's default: 3 epochs, more for small files (so ~100 examples are seen), fewer for
    huge ones."""
    n_epochs = TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n_epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // max(1, n_examples))
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n_epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return n_epochs


def resolve_hyperparameters(requested: dict[str, Any], n_examples: int) -> Hyperparameters:
    """Numbers for the ``"auto"`` (or missing) hyperparameters of a job."""
    def pick(key: str, auto: Any) -> Any:
        value = requested.get(key, "auto")
        return auto if value in (None, "auto") else value

    return Hyperparameters(
        n_epochs=int(pick("n_epochs", auto_epochs(n_examples))),
        batch_size=int(pick("batch_size", max(1, min(256, round(0.002 * n_examples))))),
        learning_rate_multiplier=float(pick("learning_rate_multiplier", 1.0)),
    )


# --------------------------------------------------------------------------- torch set-up

@contextlib.contextmanager
def torch_threads(backend: str) -> Iterator[int]:
    """Run with few torch threads, then restore the calling thread's setting.

    ``EMULATOR_TORCH_THREADS`` when set; else 1 for ``tiny`` and half the CPUs (at most 4) for
    ``smollm2``. Measured on a shared, busy 2-core machine: SmolLM2 + LoRA took 4-5 s a step
    with 1 thread and 50-140 s with 2 (OpenMP threads spin against the other processes), and
    the tiny model was 20x slower with 2 threads. Never raises the current setting."""
    import torch

    if os.environ.get("EMULATOR_TORCH_THREADS"):
        wanted = int(os.environ["EMULATOR_TORCH_THREADS"])
    elif backend == "tiny":
        wanted = 1
    else:
        wanted = max(1, min(4, (os.cpu_count() or 1) // 2))
    before = torch.get_num_threads()
    if before > wanted >= 1:
        torch.set_num_threads(wanted)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def device_for(backend: str) -> str:
    """Where a backend computes: ``EMULATOR_DEVICE`` (``cpu``, ``cuda``, ``cuda:1``, ...) when set;
    else ``cuda`` for ``smollm2`` when a GPU is visible, and ``cpu`` for ``tiny`` (its steps are
    too small to gain from a GPU)."""
    choice = os.environ.get("EMULATOR_DEVICE", "").strip().lower()
    if choice and choice != "auto":
        return choice
    if backend == "tiny":
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def preload() -> None:
    """Import what the worker threads use, once, in the calling thread. transformers resolves its
    names lazily; two threads resolving them at once have failed here with ``ImportError: cannot
    import name 'AutoTokenizer' from 'transformers'`` (seen under nbgrader)."""
    import peft  # noqa: F401
    import torch  # noqa: F401
    from transformers import (  # noqa: F401
        AutoModelForCausalLM,
        AutoTokenizer,
        LlamaConfig,
        LlamaForCausalLM,
    )


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No transformers progress bars ("Loading weights", "Writing model shards") while the
    service loads or saves a model, and none of the libraries' own deprecation chatter (peft
    reads transformers' deprecated ``is_gradient_checkpointing``): either would land on stderr in
    whichever notebook cell runs, as a warning the learner can do nothing about."""
    import warnings

    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    # catch_warnings swaps the process's filter list: the emulator's worker thread uses this
    # around model loading only, where the notebook's thread is not changing filters.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*",
                                category=FutureWarning)
        try:
            yield
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()


def load_tokenizer():
    """The SmolLM2 tokenizer (both backends), with its chat template."""
    from transformers import AutoTokenizer

    from helpers import assets

    tokenizer = AutoTokenizer.from_pretrained(assets.smollm2_dir())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _tiny_model(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **TINY_CONFIG,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_BASE_SEED)
        model = LlamaForCausalLM(config)
    return model


def base_model(backend: str, tokenizer):
    """The backend's base model (float32, eval mode)."""
    if backend == "tiny":
        model = _tiny_model(tokenizer)
    elif backend == "smollm2":
        import torch
        from transformers import AutoModelForCausalLM

        from helpers import assets

        with quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(assets.smollm2_dir(), dtype=torch.float32)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    return model.eval()


def load_trained_model(backend: str, folder: Path, tokenizer):
    """A model saved by :func:`train` (``final/`` or a checkpoint folder)."""
    if backend == "tiny":
        from transformers import AutoModelForCausalLM

        with quiet_progress():
            return AutoModelForCausalLM.from_pretrained(folder).eval()
    from peft import PeftModel

    base = base_model(backend, tokenizer)
    with quiet_progress():
        model = PeftModel.from_pretrained(base, folder)
    return model.merge_and_unload().eval()


def context_length(model) -> int:
    return int(getattr(model.config, "max_position_embeddings", 2048) or 2048)


# --------------------------------------------------------------------------- chat rendering

def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return json.dumps(content, ensure_ascii=False)


def normalise_messages(messages: Sequence[dict]) -> list[dict[str, str]]:
    """Messages the chat template can render: ``role`` and string ``content`` (content parts
    joined; function and tool calls appended as JSON)."""
    out = []
    for message in messages:
        text = _text(message.get("content"))
        for key in ("function_call", "tool_calls"):
            if message.get(key):
                text += ("\n" if text else "") + json.dumps(message[key], ensure_ascii=False)
        out.append({"role": str(message.get("role", "user")), "content": text})
    return out


def encode_chat(tokenizer, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
    """Token ids of a rendered conversation and its labels (``-100`` outside the trained
    assistant messages; each trained span includes the end-of-turn token)."""
    plain = normalise_messages(messages)
    full = tokenizer.apply_chat_template(plain, tokenize=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for i, (message, original) in enumerate(zip(plain, messages, strict=True)):
        if message["role"] != "assistant" or original.get("weight", 1) == 0:
            continue
        before = tokenizer.apply_chat_template(plain[:i], tokenize=False,
                                               add_generation_prompt=True) if i else ""
        through = tokenizer.apply_chat_template(plain[: i + 1], tokenize=False)
        if i and full.startswith(before) and full.startswith(through):
            start, end = len(before), len(through)
        else:  # a template without the prefix property: find the content itself
            start = full.find(message["content"], cursor)
            if start < 0:
                continue
            end = start + len(message["content"])
        spans.append((start, end))
        cursor = end
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    labels = [
        token if any(s <= begin < e for s, e in spans) else -100
        for token, (begin, _) in zip(ids, encoded["offset_mapping"], strict=True)
    ]
    return ids, labels


# --------------------------------------------------------------------------- training

@dataclass
class TrainingRequest:
    backend: str
    train_examples: list[dict]
    valid_examples: list[dict]
    hyperparameters: Hyperparameters
    seed: int
    output_dir: Path


@dataclass
class TrainingResult:
    steps: int
    trained_tokens: int
    rows: list[dict[str, Any]]  # one per step: results.csv / metrics events
    final_dir: Path
    truncated_examples: int = 0


@dataclass
class Observer:
    """What the worker wants to hear from training. Every callback is optional."""
    on_message: Callable[[str], None] = lambda message: None
    on_step: Callable[[dict[str, Any]], None] = lambda row: None
    on_checkpoint: Callable[[int, Path, dict[str, Any]], None] = lambda step, path, row: None
    should_stop: Callable[[], bool] = lambda: False
    extra: dict[str, Any] = field(default_factory=dict)


def _batch(encoded: list[tuple[list[int], list[int]]], pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    labels = torch.full((len(encoded), width), -100, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(labs)] = torch.tensor(labs)
        mask[row, : len(ids)] = 1
    return input_ids, labels, mask


def _loss_and_accuracy(model, batch):
    """Mean cross-entropy and token accuracy over the trained (assistant) tokens.

    The vocabulary projection (49,152 rows) is the costliest layer of both backends, so it is
    applied to the trained positions only, not to every position."""
    import torch.nn.functional as F

    device = next(model.parameters()).device
    input_ids, labels, mask = (tensor.to(device) for tensor in batch)
    target = labels[:, 1:]
    keep = target != -100
    if not bool(keep.any()):
        return None, None
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(core, "model") and hasattr(core, "lm_head"):
        hidden = core.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        chosen = core.lm_head(hidden[:, :-1][keep])
    else:  # another architecture: the full logits
        chosen = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1][keep]
    loss = F.cross_entropy(chosen.float(), target[keep])
    accuracy = (chosen.argmax(-1) == target[keep]).float().mean()
    return loss, accuracy


def _evaluate(model, batches) -> tuple[float | None, float | None]:
    import torch

    losses, accuracies, weights = [], [], []
    model.eval()
    with torch.no_grad():
        for batch in batches:
            loss, accuracy = _loss_and_accuracy(model, batch)
            if loss is None:
                continue
            n = int((batch[1][:, 1:] != -100).sum())
            losses.append(float(loss) * n)
            accuracies.append(float(accuracy) * n)
            weights.append(n)
    model.train()
    if not weights:
        return None, None
    return sum(losses) / sum(weights), sum(accuracies) / sum(weights)


def _save(model, tokenizer, backend: str, folder: Path, meta: dict[str, Any]) -> Path:
    tmp = folder.with_name(folder.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_progress():
        model.save_pretrained(tmp)
    (tmp / "emulator.json").write_text(json.dumps({"backend": backend, **meta}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def train(request: TrainingRequest, observer: Observer | None = None) -> TrainingResult:
    """Fine-tune ``request.backend`` on the examples; save checkpoints of the last epochs and
    the final model under ``request.output_dir``. Raises :class:`Cancelled` when
    ``observer.should_stop()`` turns true."""

    observer = observer or Observer()
    with torch_threads(request.backend):
        return _train(request, observer)


def _train(request: TrainingRequest, observer: Observer) -> TrainingResult:
    import torch

    tokenizer = load_tokenizer()
    hp = request.hyperparameters

    def encode_all(examples):
        out, truncated = [], 0
        for example in examples:
            ids, labels = encode_chat(tokenizer, example["messages"])
            if len(ids) > MAX_TRAINING_TOKENS:
                ids, labels, truncated = ids[:MAX_TRAINING_TOKENS], labels[:MAX_TRAINING_TOKENS], \
                    truncated + 1
            out.append((ids, labels))
        return out, truncated

    train_encoded, truncated = encode_all(request.train_examples)
    valid_encoded, _ = encode_all(request.valid_examples)
    if not any(any(label != -100 for label in labels) for _, labels in train_encoded):
        raise ValueError("the training file has no assistant message to train on")
    pad = tokenizer.pad_token_id

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(request.seed)
        model = base_model(request.backend, tokenizer)
        if request.backend == "smollm2":
            from peft import LoraConfig, get_peft_model

            with quiet_progress():
                model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
        model.to(device_for(request.backend))
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        lr = BASE_LEARNING_RATE[request.backend] * hp.learning_rate_multiplier
        optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
        steps_per_epoch = math.ceil(len(train_encoded) / hp.batch_size)
        total = steps_per_epoch * hp.n_epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: max(0.1, 1.0 - step / max(1, total))
        )
        shuffler = random.Random(request.seed)
        valid_batches = [_batch([e], pad) for e in valid_encoded]
        first_checkpoint_epoch = max(1, hp.n_epochs - CHECKPOINT_EPOCHS + 1)
        observer.on_message(
            f"Training {request.backend} on {len(train_encoded)} examples for {hp.n_epochs} "
            f"epochs ({total} steps, batch size {hp.batch_size}, learning rate {lr:g}, "
            f"seed {request.seed})."
        )
        rows: list[dict[str, Any]] = []
        step = 0
        for epoch in range(1, hp.n_epochs + 1):
            order = list(range(len(train_encoded)))
            shuffler.shuffle(order)
            for start in range(0, len(order), hp.batch_size):
                if observer.should_stop():
                    raise Cancelled()
                batch = _batch([train_encoded[i] for i in order[start: start + hp.batch_size]], pad)
                loss, accuracy = _loss_and_accuracy(model, batch)
                if loss is not None:
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                row: dict[str, Any] = {
                    "step": step,
                    "train_loss": None if loss is None else float(loss.detach()),
                    "train_mean_token_accuracy": None if accuracy is None else float(accuracy),
                    "valid_loss": None, "valid_mean_token_accuracy": None,
                    "full_valid_loss": None, "full_valid_mean_token_accuracy": None,
                }
                if valid_batches:
                    one = valid_batches[(step - 1) % len(valid_batches)]
                    row["valid_loss"], row["valid_mean_token_accuracy"] = _evaluate(model, [one])
                    if start + hp.batch_size >= len(order):  # end of an epoch
                        row["full_valid_loss"], row["full_valid_mean_token_accuracy"] = \
                            _evaluate(model, valid_batches)
                rows.append(row)
                observer.on_step({**row, "total_steps": total, "epoch": epoch})
            if epoch >= first_checkpoint_epoch and epoch < hp.n_epochs:
                folder = _save(model, tokenizer, request.backend,
                               request.output_dir / f"ckpt-step-{step}", {"step": step})
                observer.on_checkpoint(step, folder, rows[-1])
        final = _save(model, tokenizer, request.backend, request.output_dir / "final",
                      {"step": step})
        observer.on_checkpoint(step, final, rows[-1])
    trained_tokens = sum(len(ids) for ids, _ in train_encoded) * hp.n_epochs
    return TrainingResult(steps=step, trained_tokens=trained_tokens, rows=rows,
                          final_dir=final, truncated_examples=truncated)


# --------------------------------------------------------------------------- generation

def _cache(output):
    """The KV cache of a forward pass (``cache`` in transformers 5, ``past_key_values`` before)."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


@dataclass(frozen=True)
class ModelRef:
    """What answers a chat request: a backend's base model, or a folder saved by training."""
    backend: str
    folder: str | None = None  # None: the base model


@dataclass
class Completion:
    texts: list[str]
    finish_reasons: list[str]
    prompt_tokens: int
    completion_tokens: int


class ModelServer:
    """Loads models on demand (the last two stay in memory) and generates chat replies.

    Sampling uses its own seeded ``torch.Generator``, never torch's global one, so chat requests
    served while a job trains do not disturb the job's seeded randomness."""

    def __init__(self, keep: int = 2) -> None:
        self._lock = threading.Lock()
        self._models: OrderedDict[ModelRef, Any] = OrderedDict()
        self._keep = keep
        self._tokenizer = None

    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer()
        return self._tokenizer

    def _model(self, ref: ModelRef):
        if ref in self._models:
            self._models.move_to_end(ref)
            return self._models[ref]
        tokenizer = self.tokenizer()
        if ref.folder is None:
            model = base_model(ref.backend, tokenizer)
        else:
            model = load_trained_model(ref.backend, Path(ref.folder), tokenizer)
        model.to(device_for(ref.backend))
        self._models[ref] = model
        while len(self._models) > self._keep:
            self._models.popitem(last=False)
        return model

    def prompt_ids(self, messages: Sequence[dict]) -> list[int]:
        tokenizer = self.tokenizer()
        text = tokenizer.apply_chat_template(normalise_messages(messages), tokenize=False,
                                             add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def complete(
        self,
        ref: ModelRef,
        messages: Sequence[dict],
        *,
        max_tokens: int | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        n: int = 1,
        stop: Sequence[str] = (),
    ) -> Completion:
        """``n`` replies to ``messages``; ``temperature == 0`` is greedy decoding. Raises
        ``ValueError`` when the prompt does not fit the model's context."""
        import torch

        with self._lock, torch_threads(ref.backend):
            model = self._model(ref)
            tokenizer = self.tokenizer()
            prompt = self.prompt_ids(messages)
            room = context_length(model) - len(prompt)
            if room <= 0:
                raise ValueError(
                    f"The messages are {len(prompt)} tokens long; the local model's context "
                    f"is {context_length(model)} tokens. Shorten the conversation."
                )
            budget = min(room, 256 if max_tokens is None else max_tokens)
            generator = torch.Generator().manual_seed(
                secrets.randbits(63) if seed is None else int(seed)
            )
            stops = {tokenizer.eos_token_id}
            for token in ("<|im_end|>", "<|endoftext|>"):
                token_id = tokenizer.convert_tokens_to_ids(token)
                if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
                    stops.add(token_id)
            texts, reasons, used = [], [], 0
            for _ in range(n):
                ids, reason = self._sample(model, prompt, budget, temperature, top_p, generator,
                                           stops)
                text = tokenizer.decode(ids, skip_special_tokens=True)
                for marker in stop:
                    if marker and marker in text:
                        text, reason = text[: text.index(marker)], "stop"
                texts.append(text)
                reasons.append(reason)
                used += len(ids)
            return Completion(texts, reasons, len(prompt), used)

    @staticmethod
    def _sample(model, prompt, budget, temperature, top_p, generator, stops):
        import torch

        out_ids: list[int] = []
        with torch.no_grad():
            device = next(model.parameters()).device
            output = model(input_ids=torch.tensor([prompt], device=device), use_cache=True)
            for _ in range(budget):
                logits = output.logits[0, -1].float().cpu()  # sampled on the CPU generator
                if temperature <= 0:
                    token = int(logits.argmax())
                else:
                    probs = torch.softmax(logits / temperature, dim=-1)
                    if top_p < 1.0:
                        sorted_probs, order = probs.sort(descending=True)
                        cumulative = sorted_probs.cumsum(0)
                        cut = cumulative - sorted_probs > top_p
                        sorted_probs[cut] = 0
                        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
                    token = int(torch.multinomial(probs, 1, generator=generator))
                if token in stops:
                    return out_ids, "stop"
                out_ids.append(token)
                output = model(input_ids=torch.tensor([[token]], device=device), cache=_cache(output),
                               use_cache=True)
        return out_ids, "length"
