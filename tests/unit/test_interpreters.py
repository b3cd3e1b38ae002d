"""Interpreter detection per workspace folder; no tool is run, only files are looked at."""

from __future__ import annotations

import sys
from pathlib import Path

from codeexec_lsp.interpreters import find_interpreter, poetry_env_prefix


def fake_venv(folder: Path) -> Path:
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    return python


def test_setting_wins_and_relative_paths_are_in_the_workspace(tmp_path: Path) -> None:
    fake_venv(tmp_path / ".venv")
    found = find_interpreter("tools/py/bin/python", tmp_path, {})
    assert found.path == str(tmp_path / "tools/py/bin/python")
    assert found.source == "setting codeexec.python"


def test_workspace_venv_then_virtual_env_then_own(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    python = fake_venv(other)
    project = tmp_path / "project"
    project.mkdir()
    assert find_interpreter(None, project, {"VIRTUAL_ENV": str(other)}).path == str(python)
    local = fake_venv(project / "venv")
    found = find_interpreter(None, project, {"VIRTUAL_ENV": str(other)})
    assert (found.path, found.source) == (str(local), "workspace venv")
    assert find_interpreter(None, tmp_path / "none", {}).path == sys.executable


def test_uv_project_environment(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("")
    python = fake_venv(tmp_path / "envs" / "dev")
    found = find_interpreter(None, tmp_path, {"UV_PROJECT_ENVIRONMENT": "envs/dev"})
    assert (found.path, found.source) == (str(python), "uv project environment")


def test_poetry_environment_in_its_cache(tmp_path: Path) -> None:
    project = tmp_path / "My App"
    project.mkdir()
    (project / "poetry.lock").write_text("")
    (project / "pyproject.toml").write_text('[tool.poetry]\nname = "My App"\n')
    envs = tmp_path / "virtualenvs"
    python = fake_venv(envs / (poetry_env_prefix(project, "My App") + "3.11"))
    found = find_interpreter(None, project, {"POETRY_VIRTUALENVS_PATH": str(envs)})
    assert found.path == str(python) and found.source.startswith("Poetry environment my_app-")


def test_conda_environment_named_in_environment_yml(tmp_path: Path) -> None:
    (tmp_path / "environment.yml").write_text("name: analysis\ndependencies:\n  - numpy\n")
    conda = tmp_path / "miniconda" / "bin" / "conda"
    conda.parent.mkdir(parents=True)
    conda.write_text("")
    python = fake_venv(tmp_path / "miniconda" / "envs" / "analysis")
    found = find_interpreter(None, tmp_path, {"CONDA_EXE": str(conda)})
    assert (found.path, found.source) == (str(python), "conda environment analysis")
