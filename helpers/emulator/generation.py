"""Chat generation for the emulator's chat completions: a base model or a folder saved by
training answers ``messages`` (``helpers.emulator.training`` trains them).

torch is imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .training import (
    base_model,
    context_length,
    device_for,
    load_chat_tokenizer,
    load_trained_model,
    normalise_messages,
    torch_threads,
)

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
            self._tokenizer = load_chat_tokenizer()
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
