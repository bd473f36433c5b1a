"""Full mode: the emulator really fine-tunes SmolLM2-135M-Instruct (LoRA) on the lab's data and
the deployment answers a training question with the trained answer.

Minutes on a CPU, so marked slow (``make test-slow``); run it alone with::

    bash tests/offline.sh .venv/bin/python -m pytest tests/test_emulator_slow.py -m slow -q
"""

from __future__ import annotations

import time

import pytest

from helpers.emulator.client import InProcessEmulator
from tests.test_emulator_api import LAB_DATA, between_cells, deploy, loss_sequence, upload

QUESTION = [
    {"role": "system", "content": "Clippy is a factual chatbot that is also sarcastic."},
    {"role": "user", "content": "What is the biggest ocean?"},
]
TRAINED = "The Pacific Ocean. It's not like it's a small pond or anything."  # training line 2


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(not LAB_DATA.is_dir(), reason="upstream lab data not present (../shared)")
def test_smollm2_learns_the_lab_data_and_answers_with_it():
    started = time.monotonic()
    with InProcessEmulator(backend="smollm2") as emu:
        client = emu.azure_client()
        train = upload(client, LAB_DATA / "training_set.jsonl")
        valid = upload(client, LAB_DATA / "validation_set.jsonl")
        job = client.fine_tuning.jobs.create(training_file=train.id, validation_file=valid.id,
                                             model="gpt-4o-2024-08-06", seed=105)
        job = emu.wait_for_job(job.id, timeout=3000)
        assert job.status == "succeeded", job.error
        losses = loss_sequence(client, job)
        assert len(losses) == 100  # "auto": 10 epochs of 10 examples
        assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10

        assert deploy(emu.http, emu.api_key, job.fine_tuned_model).status_code == 201
        between_cells(emu)
        tuned = client.chat.completions.create(model="gpt-4o-ft", messages=QUESTION,
                                               temperature=0, max_tokens=40)
        base = client.chat.completions.create(model="gpt-4o", messages=QUESTION,
                                              temperature=0, max_tokens=40)
        tuned_text = tuned.choices[0].message.content
        base_text = base.choices[0].message.content
        print(f"\nbase:  {base_text!r}\ntuned: {tuned_text!r}\n"
              f"{time.monotonic() - started:.0f} s in all")
        assert "Pacific" in tuned_text
        assert tuned_text != base_text
        assert tuned_text.startswith(TRAINED[:17])  # the trained answer, not the base one
