"""The Unity Catalog name lab 01 registers its model under on Databricks: one per student.

Only a registered model's owner may add versions to it, so in a schema the class shares, the
second student to register ``main.default.gpt2_imdb`` would fail; each student gets
``<catalog>.<schema>.gpt2_imdb_<user>`` instead (course/databricks.md, section 6). Databricks
is simulated: ``DATABRICKS_RUNTIME_VERSION`` set, and a stand-in for the notebook's ``spark``.
"""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from helpers import classifier, databricks

ENV = ("DATABRICKS_RUNTIME_VERSION", "COURSE_UC_CATALOG", "COURSE_UC_SCHEMA",
       "COURSE_UC_MODEL_NAME")


class FakeRow(tuple):
    pass


class FakeSpark:
    """Answers ``SELECT current_user()`` like a Databricks session (or fails like one)."""

    def __init__(self, user: str | None, error: Exception | None = None) -> None:
        self.user = user
        self.error = error
        self.queries: list[str] = []

    def sql(self, query: str):
        self.queries.append(query)
        if self.error is not None:
            raise self.error
        spark = self

        class Result:
            def first(self):
                return FakeRow((spark.user,))

        return Result()


@pytest.fixture(autouse=True)
def databricks_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")


@pytest.fixture
def notebook_spark():
    """An IPython shell whose namespace holds ``spark``, as a Databricks notebook's does."""
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()

    def put(spark):
        shell.user_ns["spark"] = spark
        return spark

    yield put
    InteractiveShell.clear_instance()


def test_two_students_get_two_models(notebook_spark) -> None:
    notebook_spark(FakeSpark("jane.doe@example.com"))
    jane = classifier.registered_model_name()
    notebook_spark(FakeSpark("raj.patel@example.com"))
    raj = classifier.registered_model_name()
    assert jane == "main.default.gpt2_imdb_jane_doe_example_com"
    assert raj == "main.default.gpt2_imdb_raj_patel_example_com"


def test_the_notebooks_spark_is_asked_who_runs_it(notebook_spark) -> None:
    spark = notebook_spark(FakeSpark("jane.doe@example.com"))
    assert databricks.current_user() == "jane.doe@example.com"
    assert spark.queries == ["SELECT current_user() AS user"]


def test_catalog_and_schema_come_from_the_course_settings(notebook_spark, monkeypatch) -> None:
    notebook_spark(FakeSpark("jane.doe@example.com"))
    monkeypatch.setenv("COURSE_UC_CATALOG", "ml_class")
    monkeypatch.setenv("COURSE_UC_SCHEMA", "jane")
    assert classifier.registered_model_name() == "ml_class.jane.gpt2_imdb_jane_doe_example_com"


@pytest.mark.parametrize(("user", "slug"), [
    ("Jane.Doe+ml@Example.COM", "jane_doe_ml_example_com"),
    ("  jane--doe@example.com ", "jane_doe_example_com"),
    ("4a1c5b7e-0f3d-4e52-9d8e-1f2a3b4c5d6e", "4a1c5b7e_0f3d_4e52_9d8e_1f2a3b4c5d6e"),  # a service principal
    ("ünïcode@example.com", "n_code_example_com"),
])
def test_user_names_become_unity_catalog_names(user: str, slug: str) -> None:
    assert databricks.user_slug(user) == slug


def test_a_name_without_letters_or_digits_is_refused() -> None:
    with pytest.raises(ValueError, match="COURSE_UC_MODEL_NAME"):
        databricks.user_slug("@.-")


def test_an_explicit_model_name_wins(notebook_spark, monkeypatch) -> None:
    spark = notebook_spark(FakeSpark("jane.doe@example.com"))
    monkeypatch.setenv("COURSE_UC_MODEL_NAME", "imdb_team_3")
    assert classifier.registered_model_name() == "main.default.imdb_team_3"
    assert spark.queries == []


@pytest.mark.parametrize("bad", ["main.default.x", "my model", "modèle"])
def test_an_explicit_model_name_must_be_one_name(monkeypatch, bad: str) -> None:
    monkeypatch.setenv("COURSE_UC_MODEL_NAME", bad)
    with pytest.raises(ValueError, match="COURSE_UC_MODEL_NAME"):
        classifier.registered_model_name()


def test_when_spark_cannot_say_the_shared_name_is_used(notebook_spark) -> None:
    notebook_spark(FakeSpark(None, error=RuntimeError("[PERMISSION_DENIED]")))
    assert databricks.current_user() is None
    assert classifier.registered_model_name() == "main.default.gpt2_imdb"
    notebook_spark(FakeSpark(""))
    assert classifier.registered_model_name() == "main.default.gpt2_imdb"


def test_no_spark_session_is_started_to_ask() -> None:
    """Outside a notebook with ``spark`` and with no active session: no user, no new session."""
    InteractiveShell.clear_instance()
    assert databricks.current_user() is None
    assert classifier.registered_model_name() == "main.default.gpt2_imdb"
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return
    assert SparkSession.getActiveSession() is None


def test_nothing_is_registered_outside_databricks(notebook_spark, monkeypatch) -> None:
    spark = notebook_spark(FakeSpark("jane.doe@example.com"))
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION")
    assert classifier.registered_model_name() is None
    assert databricks.current_user() is None
    assert spark.queries == []
