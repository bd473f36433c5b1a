"""The emulator's two backends, training and generation, on one code path.

- ``smollm2``: SmolLM2-135M-Instruct (from ``helpers.assets.smollm2_dir()``, offline) with a
  LoRA adapter (``peft``, r=8 on ``q_proj``/``v_proj``); the adapter is the fine-tuned model.
- ``tiny``: a randomly initialised two-layer Llama (hidden size 64) with the same SmolLM2
  tokenizer and chat template, fully fine-tuned; a job takes seconds on a CPU.

Both render each example with the model's chat template and compute the loss on the tokens
of the assistant messages only (an assistant message with ``"weight": 0`` is not trained on),
like Azure OpenAI's supervised fine-tuning; ``helpers.emulator.trainer`` runs the loop
(supervised or DPO, pause and resume). Training is seeded: the same seed, data and
hyperparameters give the same loss sequence (on the same device).

Environment: ``EMULATOR_TORCH_THREADS`` (CPU threads, see :func:`torch_threads`) and
``EMULATOR_DEVICE`` (see :func:`device_for`; ``smollm2`` uses a visible GPU by default).

torch and transformers are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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


class Paused(Exception):
    """Raised inside training when the job was paused; its state is saved to resume from."""

    def __init__(self, step: int) -> None:
        super().__init__(f"paused at step {step}")
        self.step = step


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


def load_chat_tokenizer():
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


def load_trained_model(backend: str, folder: Path, tokenizer, *, trainable: bool = False):
    """A model saved by :func:`train` (``final/`` or a checkpoint folder). ``trainable``: to
    train it further (continuous fine-tuning), keeping the LoRA adapter separate."""
    if backend == "tiny":
        from transformers import AutoModelForCausalLM

        with quiet_progress():
            model = AutoModelForCausalLM.from_pretrained(folder)
        return model if trainable else model.eval()
    from peft import PeftModel

    base = base_model(backend, tokenizer)
    with quiet_progress():
        model = PeftModel.from_pretrained(base, folder, is_trainable=trainable)
    return model if trainable else model.merge_and_unload().eval()


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

def train(request, observer=None):
    """Fine-tune as ``request`` says (:class:`helpers.emulator.trainer.TrainingRequest`); see
    :func:`helpers.emulator.trainer.run`. The worker calls this name, so a test can replace it."""
    from .trainer import run

    return run(request, observer)
