"""`make lab`: JupyterLab with nbgrader's extensions works on this course (started the way the
Makefile starts it, on 127.0.0.1 with a token)."""

from __future__ import annotations


def test_formgrader_lists_the_course_assignments(lab) -> None:
    response = lab.get("/formgrader/api/assignments")
    assert response.status_code == 200, response.text[:500]
    names = {a["name"] for a in response.json()}
    expected = {p.name for p in (lab.root / "source").iterdir() if p.is_dir()}
    assert "selftest" in names
    assert expected <= names


def test_lab_serves_the_release_notebooks(lab) -> None:
    response = lab.get("/api/contents/release/selftest/selftest.ipynb")
    assert response.status_code == 200
    assert response.json()["type"] == "notebook"


def test_nbgrader_lab_extensions_are_loaded(lab) -> None:
    # The Lab page's configuration lists the federated extensions it loads.
    page = lab.get("/lab").text
    assert '"name": "@jupyter/nbgrader"' in page or '"name":"@jupyter/nbgrader"' in page
