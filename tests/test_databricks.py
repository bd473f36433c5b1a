"""Databricks, simulated: the notebooks' install cell, credentials from a secret scope, the Unity
Catalog volume (a temporary folder stands in for /Volumes) and the workspace's MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from autograder.reference import classifier as reference_classifier
from helpers import databricks, platform

REPO = Path(__file__).resolve().parent.parent
DATABRICKS_VARS = ("DATABRICKS_RUNTIME_VERSION", "COURSE_VOLUMES_ROOT", "COURSE_UC_CATALOG",
                   "COURSE_UC_SCHEMA", "COURSE_UC_VOLUME", "COURSE_DATA_DIR", "COURSE_OUTPUT_DIR",
                   "MLFLOW_TRACKING_URI", "COURSE_SECRET_SCOPE", "AZURE_OPENAI_ENDPOINT",
                   "AZURE_OPENAI_API_KEY", "TEMP_AUTH_TOKEN")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in DATABRICKS_VARS:
        monkeypatch.delenv(name, raising=False)


class FakeSecrets:
    def __init__(self, scopes: dict[str, dict[str, str]]) -> None:
        self.scopes = scopes
        self.asked: list[tuple[str, str]] = []

    def get(self, scope: str, key: str) -> str:
        self.asked.append((scope, key))
        try:
            return self.scopes[scope][key]
        except KeyError:  # like dbutils: an exception, not None
            raise RuntimeError(f"Secret does not exist with scope: {scope} and key: {key}") from None


class FakeLibrary:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def restartPython(self) -> None:
        self.calls.append(("restartPython",))


class FakeDbutils:
    def __init__(self, scopes: dict[str, dict[str, str]] | None = None) -> None:
        self.calls: list[tuple] = []
        self.secrets = FakeSecrets(scopes or {})
        self.library = FakeLibrary(self.calls)


@pytest.fixture
def shell():
    """An IPython shell with `%pip` replaced by a recorder (a real one would install)."""
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance()
    calls: list[tuple] = []
    ip.register_magic_function(lambda line: calls.append(("pip", line)), "line", "pip")
    ip.pip_calls = calls
    yield ip
    InteractiveShell.clear_instance()


def _git_folder(tmp_path: Path) -> Path:
    """A stand-in for the course's Git folder on Databricks, with the notebook's folder as cwd."""
    root = tmp_path / "Workspace" / "Users" / "me@example.com" / "fine-tuning-course"
    (root / "release" / "01-gpt2-imdb").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'fine-tuning-course'\n")
    return root


def test_install_cell_does_nothing_outside_databricks(shell, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # not even a course folder: it must not look
    result = shell.run_cell(databricks.INSTALL_CELL)
    assert result.success, result.error_in_exec
    assert shell.pip_calls == []
    assert "dbutils" not in shell.user_ns and "course" not in shell.user_ns


def test_install_cell_installs_from_the_git_folder_and_restarts(shell, monkeypatch,
                                                                 tmp_path: Path) -> None:
    root = _git_folder(tmp_path)
    monkeypatch.chdir(root / "release" / "01-gpt2-imdb")
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    fake = FakeDbutils()
    fake.calls = shell.pip_calls  # one log, to see the order
    fake.library = FakeLibrary(shell.pip_calls)
    shell.user_ns["dbutils"] = fake
    result = shell.run_cell(databricks.INSTALL_CELL)
    assert result.success, result.error_in_exec
    assert shell.pip_calls == [("pip", f'install --quiet "{root}"'), ("restartPython",)]


def test_install_cell_outside_the_git_folder_says_what_to_do(shell, monkeypatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    shell.user_ns["dbutils"] = FakeDbutils()
    result = shell.run_cell(databricks.INSTALL_CELL)
    assert isinstance(result.error_in_exec, RuntimeError)
    assert "open this notebook from the course's Git folder" in str(result.error_in_exec)
    assert shell.pip_calls == []


def test_install_cell_is_plain_python_that_calls_pip_through_ipython(tmp_path: Path) -> None:
    """The cell is plain Python (no `%` line): ruff, nbgrader and a plain interpreter all read it,
    and it reaches `%pip` only through `get_ipython().run_line_magic`, only on Databricks."""
    import ast
    import os
    import subprocess
    import sys

    from IPython.core.inputtransformer2 import TransformerManager

    cell = databricks.INSTALL_CELL
    # IPython rewrites magics (`%pip ...`, `!pip ...`) into calls; a plain-Python cell is left as is
    assert TransformerManager().transform_cell(cell) == cell + "\n"
    tree = ast.parse(cell)
    magic_calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                   and isinstance(node.func, ast.Attribute) and node.func.attr == "run_line_magic"]
    assert len(magic_calls) == 1
    assert isinstance(magic_calls[0].args[0], ast.Constant) and magic_calls[0].args[0].value == "pip"
    # that call (and the restart) sit under `if os.environ.get("DATABRICKS_RUNTIME_VERSION"):`
    (guard,) = [node for node in tree.body if isinstance(node, ast.If)]
    assert "DATABRICKS_RUNTIME_VERSION" in ast.unparse(guard.test)
    assert magic_calls[0] in list(ast.walk(guard))
    # a plain interpreter (no IPython, no `get_ipython`) runs it without a word and exit 0
    env = {k: v for k, v in os.environ.items() if k != "DATABRICKS_RUNTIME_VERSION"}
    run = subprocess.run([sys.executable, "-c", cell], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def _notebooks() -> list[Path]:
    return sorted(p for folder in ("source", "release") for p in (REPO / folder).glob("*/*.ipynb"))


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: str(p.relative_to(REPO)))
def test_notebooks_hold_the_install_cell_unchanged(path: Path) -> None:
    """Every assignment notebook starts with the install cell, exactly INSTALL_CELL."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"] if c["cell_type"] == "code"]
    marker = databricks.INSTALL_CELL.splitlines()[0]
    with_marker = [i for i, source in enumerate(code) if source.startswith(marker)]
    assert with_marker, f"{path}: the first code cell must be helpers.databricks.INSTALL_CELL"
    assert with_marker == [0], f"{path}: the install cell must be the first code cell"
    assert code[0] == databricks.INSTALL_CELL, (
        f"{path}: the install cell differs from helpers.databricks.INSTALL_CELL; copy it from there")


# --------------------------------------------------------------------------- volume and MLflow


def test_data_and_outputs_land_in_the_volume(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    monkeypatch.setenv("COURSE_VOLUMES_ROOT", str(tmp_path))
    monkeypatch.setenv("COURSE_UC_CATALOG", "teaching")
    volume = tmp_path / "teaching" / "default" / "fine_tuning"
    assert databricks.volume_name() == "teaching.default.fine_tuning"
    assert platform.data_dir() == volume / "data"
    assert platform.output_dir("gpt2-imdb") == volume / "outputs" / "gpt2-imdb"
    assert platform.mlflow_tracking_uri() == "databricks"
    assert platform.mlflow_tracking_uri("/somewhere") == "databricks"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "databricks://profile")
    assert platform.mlflow_tracking_uri() == "databricks://profile"


def test_local_mlflow_store(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert platform.mlflow_tracking_uri() == f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"
    assert platform.mlflow_tracking_uri(tmp_path / "m") == f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}"
    assert platform.mlflow_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_missing_volume_says_how_to_create_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    (tmp_path / "Volumes").write_text("not a folder")  # /Volumes/... cannot be created
    monkeypatch.setenv("COURSE_VOLUMES_ROOT", str(tmp_path / "Volumes"))
    with pytest.raises(OSError, match=r"CREATE VOLUME IF NOT EXISTS main\.default\.fine_tuning"):
        platform.output_dir("gpt2-imdb")


def test_create_volume_runs_the_sql(monkeypatch) -> None:
    monkeypatch.setenv("COURSE_UC_CATALOG", "teaching")

    class FakeSpark:
        def __init__(self) -> None:
            self.statements: list[str] = []

        def sql(self, statement: str) -> None:
            self.statements.append(statement)

    spark = FakeSpark()
    assert databricks.create_volume(spark) == "teaching.default.fine_tuning"
    assert spark.statements == ["CREATE SCHEMA IF NOT EXISTS `teaching`.`default`",
                                "CREATE VOLUME IF NOT EXISTS `teaching`.`default`.`fine_tuning`"]


def test_training_outputs_land_in_the_volume(monkeypatch, tmp_path: Path) -> None:
    """The GPT-2 notebook's training step, fast mode, on simulated Databricks: the model is
    saved under /Volumes/<catalog>/<schema>/<volume>/outputs."""

    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    monkeypatch.setenv("COURSE_VOLUMES_ROOT", str(tmp_path / "Volumes"))
    monkeypatch.setenv("COURSE_FAST", "1")
    result = reference_classifier.train_classifier({"fast": True, "report_to": "none"})
    volume = tmp_path / "Volumes" / "main" / "default" / "fine_tuning"
    assert Path(result.output_dir).is_relative_to(volume / "outputs")
    assert (Path(result.model_dir) / "config.json").is_file()


# --------------------------------------------------------------------------- credentials


def test_credentials_come_from_the_environment_first(monkeypatch) -> None:
    fake = FakeDbutils({"fine-tuning-course": {"azure-openai-api-key": "from-scope"}})
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "from-env")
    assert databricks.credential("AZURE_OPENAI_API_KEY", dbutils=fake) == "from-env"
    assert fake.secrets.asked == []
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    assert databricks.credential("AZURE_OPENAI_API_KEY", dbutils=fake) == "from-scope"
    assert fake.secrets.asked == [("fine-tuning-course", "azure-openai-api-key")]
    monkeypatch.setenv("COURSE_SECRET_SCOPE", "other")
    assert databricks.credential("AZURE_OPENAI_API_KEY", dbutils=fake, default="d") == "d"


def test_a_missing_required_credential_says_where_it_looked(monkeypatch) -> None:
    fake = FakeDbutils({"fine-tuning-course": {"unrelated": "s3cr3t"}})
    with pytest.raises(databricks.CredentialError) as info:
        databricks.credential("AZURE_OPENAI_API_KEY", required=True, dbutils=fake)
    message = str(info.value)
    assert "secret 'azure-openai-api-key' in the secret scope 'fine-tuning-course'" in message
    assert "databricks secrets put-secret fine-tuning-course azure-openai-api-key" in message
    assert "s3cr3t" not in message
    with pytest.raises(databricks.CredentialError, match="set AZURE_OPENAI_API_KEY$"):
        databricks.credential("AZURE_OPENAI_API_KEY", required=True)  # no Databricks here


def test_notebook_dbutils_is_found_in_ipython(shell, monkeypatch) -> None:
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    fake = FakeDbutils({"fine-tuning-course": {"temp-auth-token": "tok"}})
    shell.user_ns["dbutils"] = fake
    assert databricks.get_dbutils() is fake
    assert databricks.credential("TEMP_AUTH_TOKEN") == "tok"
    assert databricks.credentials(["TEMP_AUTH_TOKEN", "AZURE_OPENAI_ENDPOINT"]) == {"TEMP_AUTH_TOKEN": "tok"}


def test_azure_client_from_the_secret_scope(shell, monkeypatch) -> None:
    """helpers.azure.make_client reads its settings from a mapping: the secret-backed one gives
    it the workspace's Azure OpenAI resource without any key in the notebook or environment."""
    from helpers import azure

    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    shell.user_ns["dbutils"] = FakeDbutils({"fine-tuning-course": {
        "azure-openai-endpoint": "https://my-res.openai.azure.com",
        "azure-openai-api-key": "k3y",
    }})
    env = databricks.credential_env()
    assert env["AZURE_OPENAI_ENDPOINT"] == "https://my-res.openai.azure.com"
    assert env.get("AZURE_OPENAI_API_VERSION") is None
    backend = azure.make_client(env=env)
    assert backend.kind == "azure"
    assert "https://my-res.openai.azure.com" in backend.description
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION")
    assert databricks.credential_env() is __import__("os").environ
