"""Running the course on Databricks: the install cell, credentials, the Unity Catalog volume.

- `INSTALL_CELL`: the first code cell of every notebook. On Databricks it installs this course
  (the ``helpers`` package and its dependencies) with ``%pip`` from the Git folder the notebook
  sits in, then restarts Python; anywhere else it does nothing. It cannot import ``helpers``
  (that is what it installs), so it is plain Python; the text here is the one the notebooks
  hold (tests compare them).
- `credential` / `credentials`: a setting such as ``AZURE_OPENAI_API_KEY`` from the
  environment, else, on Databricks, from the course's secret scope (``dbutils.secrets``).
- `create_volume`: the Unity Catalog schema and volume the course writes to
  (``helpers.platform.volume_root``), created if missing.
- `current_user` / `user_slug`: who runs the notebook (``SELECT current_user()``), and that
  name as a Unity Catalog identifier, so that each student registers a model of their own
  (``helpers.classifier.registered_model_name``): only a registered model's owner may add
  versions to it.

Where data and outputs go (the volume) and which MLflow tracking server is used (the
workspace's) is decided in ``helpers.platform``; course/databricks.md walks through the set-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from helpers import platform

#: The notebooks' first cell (exact text; tests/test_databricks.py runs it).
INSTALL_CELL = '''\
# Databricks only: install the course (the `helpers` package and what it needs) from this Git
# folder with %pip, then restart Python so the next cells import it. Elsewhere it does nothing:
# there you installed the course once with `make setup` (see the README).
import os

if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
    from pathlib import Path

    course = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "pyproject.toml").is_file()), None)
    if course is None:
        raise RuntimeError(f"No pyproject.toml above {Path.cwd()}: open this notebook from the course's "
                           "Git folder (course/databricks.md, step 4).")
    get_ipython().run_line_magic("pip", f'install --quiet "{course}"')
    dbutils.library.restartPython()'''

#: The secret scope the course reads credentials from (``COURSE_SECRET_SCOPE`` overrides it).
DEFAULT_SECRET_SCOPE = "fine-tuning-course"


class CredentialError(LookupError):
    """A credential that is neither in the environment nor in the secret scope."""


def secret_scope() -> str:
    return os.environ.get("COURSE_SECRET_SCOPE", DEFAULT_SECRET_SCOPE)


def secret_key(name: str) -> str:
    """The secret's key in the scope for an environment variable name:
    ``AZURE_OPENAI_API_KEY`` → ``azure-openai-api-key``."""
    return name.strip().lower().replace("_", "-")


def get_dbutils() -> Any | None:
    """Databricks' ``dbutils``: the notebook's own (from IPython's namespace), else one built
    on the active Spark session; None outside Databricks."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is always there with Jupyter
        shell = None
    if shell is not None and "dbutils" in shell.user_ns:
        return shell.user_ns["dbutils"]
    if not platform.is_databricks():
        return None
    try:  # a job or a plain Python process on a Databricks cluster
        from pyspark.dbutils import DBUtils  # type: ignore[import-not-found]
        from pyspark.sql import SparkSession

        return DBUtils(SparkSession.builder.getOrCreate())
    except ImportError:
        return None


def credential(name: str, default: str | None = None, *, required: bool = False,
               scope: str | None = None, dbutils: Any | None = None) -> str | None:
    """A setting by its environment name: the environment first, else (on Databricks) the
    secret ``secret_key(name)`` of the course's secret scope, else ``default``.

    ``required=True`` raises `CredentialError` saying where it was looked for and how to set it.
    Secret values never appear in the message."""
    value = os.environ.get(name)
    if value:
        return value
    scope = scope or secret_scope()
    utils = dbutils if dbutils is not None else (get_dbutils() if platform.is_databricks() else None)
    if utils is not None:
        try:
            value = utils.secrets.get(scope=scope, key=secret_key(name))
        except Exception:  # noqa: BLE001 - dbutils raises its own (py4j / IllegalArgument) errors
            value = None
        if value:
            return value
    if default is not None:
        return default
    if required:
        where = f"the environment variable {name}"
        fix = f"set {name}"
        if utils is not None:
            where += f" or the secret {secret_key(name)!r} in the secret scope {scope!r}"
            fix = (f"databricks secrets put-secret {scope} {secret_key(name)} (or set {name} on the "
                   "cluster)")
        raise CredentialError(f"{name} not found in {where}; {fix}")
    return None


def credentials(names: list[str] | tuple[str, ...], *, scope: str | None = None,
                dbutils: Any | None = None) -> dict[str, str]:
    """The credentials among ``names`` that are set (environment or secret scope)."""
    found = {}
    for name in names:
        value = credential(name, scope=scope, dbutils=dbutils)
        if value:
            found[name] = value
    return found


class CredentialEnv(Mapping[str, str]):
    """The environment, with the secret scope behind it: ``env["AZURE_OPENAI_API_KEY"]`` is the
    environment variable when set, else (on Databricks) the secret ``azure-openai-api-key``.

    Pass it where a function reads settings from a mapping, e.g.
    ``helpers.azure.make_client(env=CredentialEnv())``. Iterating lists the environment only
    (secret scopes are not enumerated)."""

    def __init__(self, scope: str | None = None, dbutils: Any | None = None) -> None:
        self._scope = scope
        self._dbutils = dbutils
        self._secrets: dict[str, str | None] = {}  # one scope look-up per name

    def __getitem__(self, name: str) -> str:
        value = os.environ.get(name)
        if not value:
            if name not in self._secrets:
                self._secrets[name] = credential(name, scope=self._scope, dbutils=self._dbutils)
            value = self._secrets[name]
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


def credential_env(scope: str | None = None) -> Mapping[str, str]:
    """The environment on a laptop; the environment backed by the secret scope on Databricks."""
    return CredentialEnv(scope) if platform.is_databricks() else os.environ


def volume_name() -> str:
    """The volume's three-part name, ``catalog.schema.volume``."""
    return ".".join(platform.volume_root().parts[-3:])


def create_volume(spark: Any | None = None) -> str:
    """Create the course's schema and managed volume if missing (needs the ``CREATE SCHEMA`` /
    ``CREATE VOLUME`` privileges on the catalog); returns ``catalog.schema.volume``."""
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()
    catalog, schema, volume = platform.volume_root().parts[-3:]
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS `{catalog}`.`{schema}`")
    spark.sql(f"CREATE VOLUME IF NOT EXISTS `{catalog}`.`{schema}`.`{volume}`")
    return f"{catalog}.{schema}.{volume}"


def current_user(spark: Any | None = None) -> str | None:
    """The workspace user running this code, as Databricks names it (``SELECT current_user()``:
    an e-mail address, or a service principal's application id); None outside Databricks or when
    no Spark session answers.

    ``spark`` defaults to the notebook's own ``spark`` (from IPython's namespace), else the active
    session; no session is started for the question."""
    if spark is None:
        if not platform.is_databricks():
            return None
        spark = _active_spark()
        if spark is None:
            return None
    try:
        row = spark.sql("SELECT current_user() AS user").first()
    except Exception:  # noqa: BLE001 - py4j / Spark Connect raise their own errors
        return None
    user = str(row[0]).strip() if row is not None and row[0] is not None else ""
    return user or None


def _active_spark() -> Any | None:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is always there with Jupyter
        shell = None
    if shell is not None and "spark" in shell.user_ns:
        return shell.user_ns["spark"]
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()


def user_slug(user: str) -> str:
    """``user`` as a Unity Catalog name part: lower case, every run of characters other than
    letters and digits turned into one ``_`` (``Jane.Doe@example.com`` → ``jane_doe_example_com``).

    Raises ValueError for a name with no letter or digit."""
    slug = re.sub(r"[^a-z0-9]+", "_", user.strip().lower()).strip("_")
    if not slug:
        raise ValueError(f"cannot turn the user name {user!r} into a Unity Catalog name: it has "
                         "no letter or digit; set COURSE_UC_MODEL_NAME to the model name to use")
    return slug
