"""The training loop of both backends: supervised fine-tuning or DPO, paused and resumed at a
step boundary, optionally continuing from an earlier job's weights.

- Supervised: mean cross-entropy on the assistant tokens (``helpers.emulator.training``).
- DPO (Rafailov et al. 2023, "Direct Preference Optimization"): each example is a prompt with a
  preferred and a non-preferred answer; the loss is ``-log sigmoid(beta * ((log pi(y_w|x) -
  log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))))`` summed over the answers' tokens, with
  the reference log-probabilities computed once, before the first step, from the model the job
  starts from (the base model, or the fine-tuned model a continuous job continues). The reported
  ``train_loss`` is that loss; ``train_mean_token_accuracy`` is the share of pairs whose
  preferred answer wins (Azure does not document what it reports for DPO).
- Pause: when ``observer.should_pause()`` turns true before a step, the trainable weights,
  optimizer, scheduler, data order and metrics so far are saved to ``paused.pt`` and
  :class:`~helpers.emulator.training.Paused` is raised; ``resume=True`` continues from that
  step, and the loss sequence is the one an uninterrupted run gives.

torch is imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .training import (
    BASE_LEARNING_RATE,
    CHECKPOINT_EPOCHS,
    LORA,
    MAX_TRAINING_TOKENS,
    Cancelled,
    Hyperparameters,
    Paused,
    base_model,
    device_for,
    encode_chat,
    load_chat_tokenizer,
    load_trained_model,
    quiet_progress,
    torch_threads,
)

PAUSE_FILE = "paused.pt"


@dataclass
class TrainingRequest:
    backend: str
    train_examples: list[dict]
    valid_examples: list[dict]
    hyperparameters: Hyperparameters
    seed: int
    output_dir: Path
    method: str = "supervised"  # or "dpo"
    beta: float = 0.1
    init_from: Path | None = None  # a fine-tuned model's folder: continuous fine-tuning
    resume: bool = False  # continue from output_dir/paused.pt


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
    should_pause: Callable[[], bool] = lambda: False
    extra: dict[str, Any] = field(default_factory=dict)


def _save(model, tokenizer, backend: str, folder: Path, meta: dict[str, Any]) -> Path:
    import json
    import os
    import shutil

    tmp = folder.with_name(folder.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    with quiet_progress():
        model.save_pretrained(tmp)
    (tmp / "emulator.json").write_text(json.dumps({"backend": backend, **meta}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


# --------------------------------------------------------------------------- batches and losses

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


def _trained_logits(model, batch):
    """Logits at the trained (label != -100) positions only, and their targets and rows.

    The vocabulary projection (49,152 rows) is the costliest layer of both backends, so it is
    applied to the trained positions only, not to every position."""
    device = next(model.parameters()).device
    input_ids, labels, mask = (tensor.to(device) for tensor in batch)
    target = labels[:, 1:]
    keep = target != -100
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(core, "model") and hasattr(core, "lm_head"):
        hidden = core.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        chosen = core.lm_head(hidden[:, :-1][keep])
    else:  # another architecture: the full logits
        chosen = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1][keep]
    return chosen.float(), target[keep], keep.nonzero()[:, 0]


def _loss_and_accuracy(model, batch):
    """Mean cross-entropy and token accuracy over the trained (assistant) tokens."""
    import torch.nn.functional as F

    if not bool((batch[1][:, 1:] != -100).any()):
        return None, None
    logits, target, _ = _trained_logits(model, batch)
    loss = F.cross_entropy(logits, target)
    accuracy = (logits.argmax(-1) == target).float().mean()
    return loss, accuracy


def _sequence_logps(model, batch):
    """Sum of the log-probabilities of each row's trained tokens (one value per row)."""
    import torch

    logits, target, rows = _trained_logits(model, batch)
    token_lp = logits.log_softmax(-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    out = torch.zeros(batch[0].shape[0], device=token_lp.device, dtype=token_lp.dtype)
    return out.index_add(0, rows, token_lp)


def _dpo_loss(model, pairs, pad: int, beta: float):
    """DPO loss and preference accuracy of a batch of encoded pairs."""
    import torch
    import torch.nn.functional as F

    chosen = [p["chosen"] for p in pairs]
    rejected = [p["rejected"] for p in pairs]
    logps = _sequence_logps(model, _batch(chosen + rejected, pad))
    n = len(pairs)
    ref = torch.tensor([p["ref_chosen"] for p in pairs] + [p["ref_rejected"] for p in pairs],
                       device=logps.device, dtype=logps.dtype)
    margin = beta * ((logps[:n] - ref[:n]) - (logps[n:] - ref[n:]))
    return -F.logsigmoid(margin).mean(), (margin > 0).float().mean()


# --------------------------------------------------------------------------- objectives

class _Supervised:
    def __init__(self, tokenizer, examples: list[dict]) -> None:
        self.pad = tokenizer.pad_token_id
        self.items, self.truncated = [], 0
        for example in examples:
            ids, labels = encode_chat(tokenizer, example["messages"])
            if len(ids) > MAX_TRAINING_TOKENS:
                ids, labels = ids[:MAX_TRAINING_TOKENS], labels[:MAX_TRAINING_TOKENS]
                self.truncated += 1
            self.items.append((ids, labels))

    def check(self) -> None:
        if not any(any(label != -100 for label in labels) for _, labels in self.items):
            raise ValueError("the training file has no assistant message to train on")

    def prepare(self, model) -> None:
        pass

    def step(self, model, items):
        return _loss_and_accuracy(model, _batch(items, self.pad))

    def evaluate(self, model, items) -> tuple[float | None, float | None]:
        import torch

        losses, accuracies, weights = [], [], []
        model.eval()
        with torch.no_grad():
            for item in items:
                batch = _batch([item], self.pad)
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

    def tokens(self) -> int:
        return sum(len(ids) for ids, _ in self.items)


class _Preference:
    """DPO pairs: the prompt (assistant turns in it are context, not trained) followed by the
    preferred or the non-preferred output; only the output's assistant tokens count."""

    def __init__(self, tokenizer, examples: list[dict], beta: float) -> None:
        self.pad = tokenizer.pad_token_id
        self.beta = beta
        self.items, self.truncated = [], 0
        for example in examples:
            prompt = [dict(m, weight=0) if m.get("role") == "assistant" else m
                      for m in example["input"]["messages"]]
            pair = {}
            for key, output in (("chosen", "preferred_output"),
                                ("rejected", "non_preferred_output")):
                ids, labels = encode_chat(tokenizer, prompt + list(example[output]))
                if len(ids) > MAX_TRAINING_TOKENS:
                    ids, labels = ids[:MAX_TRAINING_TOKENS], labels[:MAX_TRAINING_TOKENS]
                    self.truncated += 1
                pair[key] = (ids, labels)
            self.items.append(pair)

    def check(self) -> None:
        for pair in self.items:
            if not all(any(label != -100 for label in pair[k][1]) for k in ("chosen", "rejected")):
                raise ValueError("a preference pair has no assistant output to compare")

    def prepare(self, model) -> None:
        """The reference log-probabilities: the starting model's, computed once."""
        import torch

        model.eval()
        with torch.no_grad():
            for pair in self.items:
                logps = _sequence_logps(model, _batch([pair["chosen"], pair["rejected"]],
                                                      self.pad))
                pair["ref_chosen"], pair["ref_rejected"] = float(logps[0]), float(logps[1])
        model.train()

    def step(self, model, items):
        return _dpo_loss(model, items, self.pad, self.beta)

    def evaluate(self, model, items) -> tuple[float | None, float | None]:
        import torch

        if not items:
            return None, None
        model.eval()
        with torch.no_grad():
            loss, accuracy = _dpo_loss(model, items, self.pad, self.beta)
        model.train()
        return float(loss), float(accuracy)

    def tokens(self) -> int:
        return sum(len(p["chosen"][0]) + len(p["rejected"][0]) for p in self.items)


# --------------------------------------------------------------------------- the loop

def run(request: TrainingRequest, observer: Observer | None = None) -> TrainingResult:
    """Fine-tune ``request.backend`` on the examples; save checkpoints of the last epochs and
    the final model under ``request.output_dir``. Raises :class:`Cancelled` when
    ``observer.should_stop()`` turns true and :class:`Paused` when ``should_pause()`` does."""
    observer = observer or Observer()
    with torch_threads(request.backend):
        return _run(request, observer)


def _starting_model(request: TrainingRequest, tokenizer):
    if request.init_from is not None:
        return load_trained_model(request.backend, request.init_from, tokenizer, trainable=True)
    model = base_model(request.backend, tokenizer)
    if request.backend == "smollm2":
        from peft import LoraConfig, get_peft_model

        with quiet_progress():
            model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
    return model


def _run(request: TrainingRequest, observer: Observer) -> TrainingResult:
    import torch

    tokenizer = load_chat_tokenizer()
    hp = request.hyperparameters
    if request.method == "dpo":
        train_set = _Preference(tokenizer, request.train_examples, request.beta)
        valid_set = _Preference(tokenizer, request.valid_examples, request.beta)
    else:
        train_set = _Supervised(tokenizer, request.train_examples)
        valid_set = _Supervised(tokenizer, request.valid_examples)
    train_set.check()
    pause_file = request.output_dir / PAUSE_FILE
    saved = None
    if request.resume and pause_file.is_file():
        saved = torch.load(pause_file, weights_only=False)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(request.seed)
        model = _starting_model(request, tokenizer)
        model.to(device_for(request.backend))
        model.train()
        if saved is not None:  # DPO's references: the ones computed before the first step
            for items, refs in ((train_set.items, saved["train_refs"]),
                                (valid_set.items, saved["valid_refs"])):
                for item, ref in zip(items, refs, strict=True):
                    if ref:
                        item.update(ref)
        else:
            train_set.prepare(model)
            valid_set.prepare(model)
        trainable = [p for p in model.parameters() if p.requires_grad]
        lr = BASE_LEARNING_RATE[request.backend] * hp.learning_rate_multiplier
        optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
        steps_per_epoch = math.ceil(len(train_set.items) / hp.batch_size)
        total = steps_per_epoch * hp.n_epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: max(0.1, 1.0 - step / max(1, total))
        )
        shuffler = random.Random(request.seed)
        rows: list[dict[str, Any]] = []
        step, first_epoch, first_offset = 0, 1, 0
        if saved is not None:
            names = [n for n, p in model.named_parameters() if p.requires_grad]
            with torch.no_grad():
                for name, param in zip(names, trainable, strict=True):
                    param.copy_(saved["params"][name].to(param.device))
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            shuffler.setstate(saved["shuffler"])
            torch.set_rng_state(saved["torch_rng"])
            rows, step = saved["rows"], saved["step"]
            first_epoch, first_offset = saved["epoch"], saved["offset"]
            observer.on_message(f"Resuming training from step {step} of {total}.")
        else:
            observer.on_message(
                f"Training {request.backend} ({request.method}) on {len(train_set.items)} "
                f"examples for {hp.n_epochs} epochs ({total} steps, batch size {hp.batch_size}, "
                f"learning rate {lr:g}, seed {request.seed})."
            )
        first_checkpoint_epoch = max(1, hp.n_epochs - CHECKPOINT_EPOCHS + 1)
        final = None
        for epoch in range(first_epoch, hp.n_epochs + 1):
            before_shuffle = shuffler.getstate()
            order = list(range(len(train_set.items)))
            shuffler.shuffle(order)
            offset = first_offset if epoch == first_epoch else 0
            for start in range(offset, len(order), hp.batch_size):
                if observer.should_stop():
                    raise Cancelled()
                if observer.should_pause():
                    _save_pause(pause_file, model, optimizer, scheduler, before_shuffle, rows,
                                step, epoch, start, train_set, valid_set)
                    raise Paused(step)
                items = [train_set.items[i] for i in order[start: start + hp.batch_size]]
                loss, accuracy = train_set.step(model, items)
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
                if valid_set.items:
                    one = valid_set.items[(step - 1) % len(valid_set.items)]
                    row["valid_loss"], row["valid_mean_token_accuracy"] = \
                        valid_set.evaluate(model, [one])
                    if start + hp.batch_size >= len(order):  # end of an epoch
                        row["full_valid_loss"], row["full_valid_mean_token_accuracy"] = \
                            valid_set.evaluate(model, valid_set.items)
                rows.append(row)
                observer.on_step({**row, "total_steps": total, "epoch": epoch})
            if epoch >= first_checkpoint_epoch and epoch < hp.n_epochs:
                folder = _save(model, tokenizer, request.backend,
                               request.output_dir / f"ckpt-step-{step}", {"step": step})
                observer.on_checkpoint(step, folder, rows[-1])
        final = _save(model, tokenizer, request.backend, request.output_dir / "final",
                      {"step": step, "method": request.method})
        observer.on_checkpoint(step, final, rows[-1])
    pause_file.unlink(missing_ok=True)
    return TrainingResult(steps=step, trained_tokens=train_set.tokens() * hp.n_epochs, rows=rows,
                          final_dir=final,
                          truncated_examples=train_set.truncated)


def _save_pause(path: Path, model, optimizer, scheduler, shuffler_state, rows, step, epoch,
                offset, train_set, valid_set) -> None:
    """Everything :func:`_run` needs to go on from ``step``, written atomically."""
    import os

    import torch

    refs = ("ref_chosen", "ref_rejected")
    state = {
        "params": {n: p.detach().cpu().clone() for n, p in model.named_parameters()
                   if p.requires_grad},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "shuffler": shuffler_state, "torch_rng": torch.get_rng_state(),
        "rows": rows, "step": step, "epoch": epoch, "offset": offset,
        "train_refs": [{k: item[k] for k in refs if isinstance(item, dict) and k in item}
                       for item in train_set.items],
        "valid_refs": [{k: item[k] for k in refs if isinstance(item, dict) and k in item}
                       for item in valid_set.items],
    }
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    os.replace(tmp, path)
