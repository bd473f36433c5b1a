"""Assignment 02 end to end: the source notebook runs top to bottom in fast mode against a real
emulator server started here, reached only through AZURE_OPENAI_ENDPOINT / AZURE_OPENAI_API_KEY
(and the management variables): the notebook's Azure code path, unchanged, as it would talk to
Azure.

The run against the in-process emulator (no Azure variables) is the model submission graded by
real nbgrader in test_gpt4o_grading.py, whose outputs are checked with :func:`check_outputs`
below. The source notebook holds the solutions and the hidden tests, so each run also proves
that every hidden check passes the model solution."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = ROOT / "source" / "02-gpt4o-jsonl"
NOTEBOOK = "gpt4o_jsonl.ipynb"
AZURE_VARIABLES = (
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_API_VERSION",
    "AZURE_OPENAI_AD_TOKEN",
    "TEMP_AUTH_TOKEN",
    "AZURE_MANAGEMENT_ENDPOINT",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_RESOURCE_GROUP",
    "AZURE_OPENAI_RESOURCE",
    "NBGRADER_EXECUTION",
)


def _copy_assignment(tmp_path: Path) -> Path:
    folder = tmp_path / "02-gpt4o-jsonl"
    shutil.copytree(ASSIGNMENT, folder, ignore=shutil.ignore_patterns("outputs", ".*"))
    return folder


def _run_notebook(folder: Path, env: dict[str, str], timeout: int = 300):
    """Execute the notebook in ``folder`` with ``env`` as the kernel's environment; return it.
    A failing cell raises ``CellExecutionError`` with its traceback."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(folder / NOTEBOOK, as_version=4)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        nbformat.write(notebook, folder / f"executed-{NOTEBOOK}")  # to read when a test fails
    return notebook


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AZURE_VARIABLES}
    env.update(
        COURSE_FAST="1",
        COURSE_OUTPUT_DIR=str(tmp_path / "outputs"),
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    )
    return env


def _text(notebook) -> str:
    """Every stream and text/plain output of the notebook, in order."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output["text"])
            elif "data" in output and "text/plain" in output["data"]:
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


def check_outputs(notebook, kind: str) -> str:
    text = _text(notebook)
    assert f"Backend: {kind}" in text
    for message in (
        "Token counting looks right.",
        "token_counts looks right.",
        "estimate_training looks right.",
        "Both files are uploaded.",
        "submit_job sends the right request.",
    ):
        assert message in text
    assert "succeeded: gpt-4o" in text  # the job finished and named its fine-tuned model
    assert "'deleted': ['deployment gpt-4o-ft',\n  'file file-" in text  # clean-up ran
    # the side-by-side comparison and the loss plot were produced
    images = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 2, "expected the token histograms and the loss plot"
    return text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def emulator_server(tmp_path):
    """A real emulator server on a free loopback port, tiny backend; yields (url, key)."""
    port, key = _free_port(), "test-server-key"
    env = _base_env(tmp_path) | {"EMULATOR_BACKEND": "tiny"}
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "helpers", "emulator", "serve",
            "--host", "127.0.0.1", "--port", str(port),
            "--state-dir", str(tmp_path / "state"), "--api-key", key,
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    pytest.fail(
                        "emulator server did not start:\n"
                        + (tmp_path / "server.log").read_text(errors="replace")[-3000:]
                    )
                time.sleep(0.2)
        yield url, key
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_notebook_talks_to_a_server_only_through_the_azure_variables(tmp_path, emulator_server):
    url, key = emulator_server
    folder = _copy_assignment(tmp_path)
    env = _base_env(tmp_path) | {
        "AZURE_OPENAI_ENDPOINT": url,
        "AZURE_OPENAI_API_KEY": key,
        "TEMP_AUTH_TOKEN": key,
        "AZURE_MANAGEMENT_ENDPOINT": url,
        "AZURE_SUBSCRIPTION_ID": "00000000-1111-2222-3333-444444444444",
        "AZURE_RESOURCE_GROUP": "course-rg",
        "AZURE_OPENAI_RESOURCE": "course-res",
    }
    notebook = _run_notebook(folder, env)
    text = check_outputs(notebook, "azure")
    assert f"Azure OpenAI at {url}" in text
    # the management PUT went to the server with the lab's path
    assert (
        "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/course-rg/providers/"
        "Microsoft.CognitiveServices/accounts/course-res/deployments/gpt-4o-ft" in text
    )


def test_source_notebook_is_committed_clean():
    notebook = json.loads((ASSIGNMENT / NOTEBOOK).read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    grade_ids = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
        meta = cell["metadata"].get("nbgrader")
        if meta:
            assert meta["schema_version"] == 3
            grade_ids.append(meta["grade_id"])
    assert len(grade_ids) == len(set(grade_ids))
    # credentials never live in the notebook
    text = (ASSIGNMENT / NOTEBOOK).read_text(encoding="utf-8")
    assert 'os.environ["AZURE_OPENAI_API_KEY"] =' not in text
