"""Run a snippet with the configured executor: settings + snippet -> RunRequest -> RunResult."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import Executor, Limits, RunRequest
from codeexec_lsp.execution.environment import scrubbed_environment
from codeexec_lsp.interpreters import find_interpreter
from codeexec_lsp.results import RunResult
from codeexec_lsp.snippet import Snippet


def limits_from(settings: Settings) -> Limits:
    return Limits(
        timeout_s=settings.timeout,
        cpu_s=settings.cpu_seconds,
        memory_mb=settings.memory_mb,
        max_output_bytes=settings.max_output_bytes,
        max_file_mb=settings.max_file_mb,
        max_open_files=settings.max_open_files,
    )


def workspace_for(path: str, folders: Sequence[str]) -> Path | None:
    """The deepest workspace folder that contains `path`."""
    candidates = [Path(folder) for folder in folders if folder]
    file_path = Path(path)
    containing = [folder for folder in candidates if file_path.is_relative_to(folder)]
    return max(containing, key=lambda folder: len(folder.parts), default=None)


def build_request(
    snippet: Snippet,
    settings: Settings,
    workspace: Path | None,
    environ: Mapping[str, str] | None = None,
) -> RunRequest:
    environ = os.environ if environ is None else environ
    interpreter = find_interpreter(settings.python, workspace, environ)
    file_dir = Path(snippet.path).parent if os.path.isabs(snippet.path) else None
    if workspace is not None and workspace.is_dir():
        cwd = workspace
    elif file_dir is not None and file_dir.is_dir():
        cwd = file_dir
    else:
        cwd = Path.cwd()
    # The workspace root makes the user's own packages importable; the file's folder
    # makes its sibling modules importable, as `python file.py` would.
    sys_path = tuple(dict.fromkeys(str(p) for p in (file_dir, workspace) if p is not None))
    env = scrubbed_environment(
        environ, passthrough=settings.env_passthrough, never=settings.secret_env_names
    )
    return RunRequest(
        snippet=snippet,
        python=interpreter.path,
        cwd=str(cwd),
        env=env,
        limits=limits_from(settings),
        sys_path=sys_path,
        interpreter_source=interpreter.source,
    )


async def run_snippet(
    executor: Executor, request: RunRequest, cancel: asyncio.Event | None = None
) -> RunResult:
    return await executor.run(request, cancel)
