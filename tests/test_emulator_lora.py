"""The real SmolLM2-135M-Instruct + LoRA backend trains: a few steps on two short examples and
the loss falls (issue 17). The one fast SmolLM2 test; the longer ones are in
``tests/test_emulator_slow.py`` (``-m slow``)."""

from __future__ import annotations

import json

import pytest

from helpers.emulator.trainer import Observer, TrainingRequest, run
from helpers.emulator.training import Hyperparameters

EXAMPLES = [
    {"messages": [{"role": "user", "content": "Biggest ocean?"},
                  {"role": "assistant", "content": "The Pacific. Obviously."}]},
    {"messages": [{"role": "user", "content": "Largest planet?"},
                  {"role": "assistant", "content": "Jupiter. Obviously."}]},
]


def test_smollm2_lora_loss_falls_in_a_few_steps(tmp_path):
    rows, messages = [], []
    result = run(TrainingRequest(
        backend="smollm2", train_examples=EXAMPLES, valid_examples=[],
        hyperparameters=Hyperparameters(n_epochs=3, batch_size=2, learning_rate_multiplier=2.0),
        seed=1, output_dir=tmp_path), Observer(on_step=rows.append, on_message=messages.append))
    losses = [row["train_loss"] for row in rows]
    assert len(losses) == 3 and all(loss > 0 for loss in losses)
    assert losses[-1] < 0.8 * losses[0], losses
    saved = json.loads((result.final_dir / "emulator.json").read_text())
    assert saved["backend"] == "smollm2"
    assert (result.final_dir / "adapter_config.json").is_file()  # a LoRA adapter, not a model
    assert "smollm2 (supervised)" in messages[0]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_smollm2_dpo_prefers_the_preferred_answer(tmp_path):
    pairs = [{"input": {"messages": [{"role": "user", "content": q}]},
              "preferred_output": [{"role": "assistant", "content": good}],
              "non_preferred_output": [{"role": "assistant", "content": bad}]}
             for q, good, bad in (("Biggest ocean?", "The Pacific.", "No idea."),
                                  ("Largest planet?", "Jupiter.", "Not sure."))]
    rows = []
    run(TrainingRequest(
        backend="smollm2", train_examples=pairs, valid_examples=[], method="dpo", beta=0.5,
        hyperparameters=Hyperparameters(n_epochs=4, batch_size=2, learning_rate_multiplier=2.0),
        seed=1, output_dir=tmp_path), Observer(on_step=rows.append))
    losses = [row["train_loss"] for row in rows]
    assert abs(losses[0] - 0.6931) < 0.01 and losses[-1] < losses[0]
    assert rows[-1]["train_mean_token_accuracy"] == 1.0
