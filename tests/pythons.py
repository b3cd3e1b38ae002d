"""Interpreters the tests need besides the one running them: one that another uid may start
(the sandbox's run-as tests), and the oldest that runner.py supports (3.8–3.10: runner.py
must stay valid Python 3.8 and runs under the user's interpreter, while the suite itself
runs under one newer Python)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp.execution import runner

# Run by the older interpreter: runner.py loaded from its file, as the child loads it.
_DRIVER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("codeexec_runner", sys.argv[1])
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)
print(json.dumps([runner.run_request(request) for request in json.loads(sys.stdin.read())]))
"""


def python_another_user_can_run() -> str | None:
    """An interpreter whose whole path a non-root uid may traverse (not one under /root)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        path = Path(candidate).resolve()
        if path.is_file() and all(
            part.stat().st_mode & stat.S_IXOTH for part in [path, *path.parents]
        ):
            return str(path)
    return None


def older_python(minor: int) -> str | None:
    """A working CPython 3.<minor> on this machine: one pyenv installed, or on PATH (where a
    pyenv shim may name a version it will not run)."""
    installed = sorted(Path.home().glob(f".pyenv/versions/3.{minor}.*/bin/python3"), reverse=True)
    on_path = shutil.which(f"python3.{minor}")
    for candidate in [*map(str, installed), *([on_path] if on_path else [])]:
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == f"(3, {minor})":
            return candidate
    return None


def run_requests_under(minor: int, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each request's result from runner.py run by CPython 3.<minor>; the test is skipped
    where there is none, and under mutmut (its copy of runner.py imports mutmut, which older
    Pythons lack; mutation testing cannot see this child anyway)."""
    if "MUTANT_UNDER_TEST" in os.environ:
        pytest.skip("mutmut's copy of runner.py imports mutmut, which older Pythons lack")
    python = older_python(minor)
    if python is None:
        pytest.skip(f"no Python 3.{minor} on this machine (PATH or pyenv)")
    finished = subprocess.run(
        [python, "-c", _DRIVER, runner.RUNNER_FILE],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    results: list[dict[str, Any]] = json.loads(finished.stdout)
    return results
