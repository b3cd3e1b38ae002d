"""Which interpreter runs a workspace's code, and why (shown on hover and by `doctor`).

Order: the `python` setting; `.venv`/`venv` in the folder (also uv's default); $VIRTUAL_ENV;
an environment the folder declares for uv, Poetry or conda, where that is cheap to find
(no tool is run); else the server's own interpreter.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Interpreter:
    path: str
    source: str  # e.g. "setting codeexec.python", "workspace .venv", "$VIRTUAL_ENV"


def _venv_python(venv: Path) -> Path | None:
    for candidate in (venv / "bin" / "python", venv / "Scripts" / "python.exe"):
        if candidate.exists():
            return candidate
    return None


_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_NAME = re.compile(r"""^\s*name\s*=\s*["']([^"']+)["']""")


def _project_name(folder: Path) -> str | None:
    """`name` from [tool.poetry] (preferred) or [project]: a line scan, no TOML parser
    needed on Python 3.10."""
    try:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    names: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        if header := _SECTION.match(line):
            section = header.group(1).strip()
        elif (found := _NAME.match(line)) and section in ("tool.poetry", "project"):
            names.setdefault(section, found.group(1))
    return names.get("tool.poetry") or names.get("project")


def _uv_environment(folder: Path, environ: Mapping[str, str]) -> Interpreter | None:
    custom = environ.get("UV_PROJECT_ENVIRONMENT")
    if custom and (folder / "uv.lock").exists():
        venv = Path(custom) if os.path.isabs(custom) else folder / custom
        if (python := _venv_python(venv)) is not None:
            return Interpreter(str(python), "uv project environment")
    return None


def poetry_env_prefix(folder: Path, name: str) -> str:
    """Poetry's virtualenv folder prefix: sanitized name + hash of the project path."""
    sanitized = re.sub(r'[ $`!*@"\\\r\n\t]', "_", name.lower())[:42]
    digest = hashlib.sha256(str(folder).encode()).digest()
    return f"{sanitized}-{base64.urlsafe_b64encode(digest).decode()[:8]}-py"


def _poetry_environment(folder: Path, environ: Mapping[str, str]) -> Interpreter | None:
    if not (folder / "poetry.lock").exists():
        return None
    name = _project_name(folder)
    if name is None:
        return None
    cache = environ.get("POETRY_CACHE_DIR") or str(Path.home() / ".cache" / "pypoetry")
    envs = Path(environ.get("POETRY_VIRTUALENVS_PATH") or Path(cache) / "virtualenvs")
    prefix = poetry_env_prefix(folder, name)
    for venv in sorted(envs.glob(f"{prefix}*"), reverse=True):
        if (python := _venv_python(venv)) is not None:
            return Interpreter(str(python), f"Poetry environment {venv.name}")
    return None


_CONDA_NAME = re.compile(r"^name:\s*['\"]?([\w.-]+)", re.MULTILINE)


def _conda_environment(folder: Path, environ: Mapping[str, str]) -> Interpreter | None:
    for spec in ("environment.yml", "environment.yaml"):
        path = folder / spec
        if not path.is_file():
            continue
        try:
            match = _CONDA_NAME.search(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return None
        if match is None:
            return None
        roots = [
            Path(environ[var]).resolve().parent.parent
            for var in ("CONDA_EXE", "MAMBA_EXE")
            if environ.get(var)
        ]
        roots += [Path.home() / name for name in ("miniforge3", "miniconda3", "anaconda3")]
        for root in roots:
            if (python := _venv_python(root / "envs" / match.group(1))) is not None:
                return Interpreter(str(python), f"conda environment {match.group(1)}")
    return None


def find_interpreter(
    setting: str | None, workspace: Path | None, environ: Mapping[str, str] | None = None
) -> Interpreter:
    environ = os.environ if environ is None else environ
    if setting:
        expanded = os.path.expanduser(os.path.expandvars(setting))
        if workspace is not None and not os.path.isabs(expanded) and os.sep in expanded:
            expanded = str(workspace / expanded)
        return Interpreter(expanded, "setting codeexec.python")
    if workspace is not None:
        for name in (".venv", "venv"):
            python = _venv_python(workspace / name)
            if python is not None:
                return Interpreter(str(python), f"workspace {name}")
    virtual_env = environ.get("VIRTUAL_ENV")
    if virtual_env:
        python = _venv_python(Path(virtual_env))
        if python is not None:
            return Interpreter(str(python), "$VIRTUAL_ENV")
    if workspace is not None:
        for detect in (_uv_environment, _poetry_environment, _conda_environment):
            if (found := detect(workspace, environ)) is not None:
                return found
    return Interpreter(sys.executable, "the server's own interpreter")
