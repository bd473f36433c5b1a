"""Where the course runs, where its data and outputs go, and how big its runs are.

This is the one module that holds process-wide state (DESIGN.md): every other module asks
here whether it runs in fast mode, on Databricks, under the grader, and which folders to use.

Modes:
- **full** (the default for learners): real pretrained models, sizes that finish in minutes
  on a CPU and the seed's sizes on a GPU;
- **fast** (grading, CI, ``COURSE_FAST=1``): tiny models and tiny subsets. On automatically
  when ``NBGRADER_EXECUTION`` is set (nbgrader sets it while autograding or validating).
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}

#: The package's own folder and the course root (the repository, when run from a clone).
PACKAGE_DIR = Path(__file__).resolve().parent


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def is_grading() -> bool:
    """True while nbgrader executes the notebook (autograde or validate)."""
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def is_fast() -> bool:
    """Fast mode: ``COURSE_FAST=1`` or any nbgrader execution. ``COURSE_FAST=0`` forces full mode
    even under nbgrader (for an instructor who wants a full grading run)."""
    value = os.environ.get("COURSE_FAST", "").strip().lower()
    if value in _TRUE:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    return is_grading()


def mode() -> str:
    """``"fast"`` or ``"full"``."""
    return "fast" if is_fast() else "full"


def is_databricks() -> bool:
    """True inside a Databricks runtime (notebook or job)."""
    return bool(os.environ.get("DATABRICKS_RUNTIME_VERSION"))


def is_ci() -> bool:
    return _flag("CI")


def environment() -> str:
    """Where we run: ``"databricks"``, ``"grading"``, ``"ci"`` or ``"local"``."""
    if is_databricks():
        return "databricks"
    if is_grading():
        return "grading"
    if is_ci():
        return "ci"
    return "local"


def course_root() -> Path:
    """The course's root folder: ``COURSE_ROOT`` if set, else the clone this package lives in,
    else the current directory (an installed, non-editable package)."""
    if os.environ.get("COURSE_ROOT"):
        return Path(os.environ["COURSE_ROOT"]).resolve()
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").is_file() and (candidate / "source").is_dir():
        return candidate
    return Path.cwd()


def volume_root() -> Path:
    """The Unity Catalog volume the course uses on Databricks:
    ``/Volumes/<catalog>/<schema>/<volume>``. Catalog, schema and volume come from
    ``COURSE_UC_CATALOG`` (default ``main``), ``COURSE_UC_SCHEMA`` (default ``default``) and
    ``COURSE_UC_VOLUME`` (default ``fine_tuning``); ``COURSE_VOLUMES_ROOT`` replaces ``/Volumes``
    (tests point it at a temporary folder)."""
    base = Path(os.environ.get("COURSE_VOLUMES_ROOT", "/Volumes"))
    return (
        base
        / os.environ.get("COURSE_UC_CATALOG", "main")
        / os.environ.get("COURSE_UC_SCHEMA", "default")
        / os.environ.get("COURSE_UC_VOLUME", "fine_tuning")
    )


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_databricks() and path.is_relative_to(volume_root().parent.parent.parent):
            raise OSError(
                f"cannot create {path} ({exc.strerror or exc}). On Databricks the course writes to "
                f"the Unity Catalog volume {volume_root()}: create it first (`CREATE VOLUME IF NOT "
                f"EXISTS {'.'.join(volume_root().parts[-3:])}`, or "
                "`helpers.databricks.create_volume()`), or choose another one with "
                "COURSE_UC_CATALOG / COURSE_UC_SCHEMA / COURSE_UC_VOLUME (course/databricks.md)"
            ) from exc
        raise
    return path


def data_dir() -> Path:
    """Where downloaded or generated data goes: ``COURSE_DATA_DIR``, the volume's ``data/`` on
    Databricks, else ``<course root>/.course-data``."""
    if os.environ.get("COURSE_DATA_DIR"):
        return _writable_dir(Path(os.environ["COURSE_DATA_DIR"]))
    if is_databricks():
        return _writable_dir(volume_root() / "data")
    return _writable_dir(course_root() / ".course-data")


def output_dir(name: str = "") -> Path:
    """Where a run writes models, logs and plots: ``COURSE_OUTPUT_DIR``, the volume's
    ``outputs/`` on Databricks, else ``./outputs`` (beside the notebook); ``name`` is a subfolder."""
    if os.environ.get("COURSE_OUTPUT_DIR"):
        base = Path(os.environ["COURSE_OUTPUT_DIR"])
    elif is_databricks():
        base = volume_root() / "outputs"
    else:
        base = Path.cwd() / "outputs"
    return _writable_dir(base / name if name else base)


def databricks_runtime_version() -> str | None:
    """The Databricks Runtime version (``"15.4"``, ``"16.4.x-gpu-ml-scala2.12"``...), None elsewhere."""
    return os.environ.get("DATABRICKS_RUNTIME_VERSION") or None


def mlflow_tracking_uri(default_local: str | Path | None = None) -> str:
    """Where MLflow records runs: ``MLFLOW_TRACKING_URI`` when set; ``"databricks"`` (the
    workspace's tracking server and its registry) on Databricks; else ``default_local`` (a URI
    or a folder, which gets a SQLite store ``mlflow.db``), by default ``sqlite:///<outputs>/mlflow.db``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if is_databricks():
        return "databricks"
    if isinstance(default_local, str) and "://" in default_local:
        return default_local
    folder = _writable_dir(Path(default_local) if default_local is not None else output_dir())
    return f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def network_blocked() -> bool:
    """True when the hub must not be tried: ``HF_HUB_OFFLINE=1`` (tests, grading) or
    ``COURSE_OFFLINE=1``."""
    return _flag("HF_HUB_OFFLINE") or _flag("COURSE_OFFLINE")


@functools.cache
def hub_reachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    """Can the Hugging Face Hub be reached? False at once when offline mode is set; otherwise one
    TCP connection attempt (cached for the process)."""
    if network_blocked():
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False
