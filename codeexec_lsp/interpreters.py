"""Which interpreter runs a workspace's code, and why (shown on hover and by `doctor`)."""

from __future__ import annotations

import os
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
    return Interpreter(sys.executable, "the server's own interpreter")
