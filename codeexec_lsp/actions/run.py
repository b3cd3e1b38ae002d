"""Run a snippet with the configured executor: settings + snippet -> RunRequest -> RunResult,
and what follows a run (what the user is told, whether its result is kept)."""

from __future__ import annotations

import asyncio
import functools
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from codeexec_lsp.config import FixSettings, LlmSettings, Settings
from codeexec_lsp.execution.base import Executor, Limits, RunRequest
from codeexec_lsp.execution.environment import scrubbed_environment
from codeexec_lsp.interpreters import find_interpreter
from codeexec_lsp.results import RunResult
from codeexec_lsp.snippet import Snippet

if TYPE_CHECKING:
    from codeexec_lsp.execution.registry import Executors

# The largest values the executors can carry out: resource limits are C longs, and a timer
# needs a finite number. Anything above means "practically unlimited" and is clamped.
MAX_SECONDS = 7 * 24 * 3600.0
MAX_MEGABYTES = 2**30  # 1 PiB
MAX_OUTPUT_BYTES = 2**30
MAX_OPEN_FILES = 2**20
MAX_FIX_ATTEMPTS = 10
# The executors that keep state between runs (and say in `extra[name]` when it was lost).
STATEFUL_EXECUTORS = ("session", "jupyter")
_DEFAULTS = Settings()


def _shown(value: float | None) -> str:
    if value is None:
        return "unset"
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _bounded(
    key: str, value: float | None, default: float | None, most: float, warnings: list[str]
) -> float | None:
    if value is None:
        return None
    if math.isnan(value):
        warnings.append(
            f"codeexec.{key}: NaN is not a number; using the default ({_shown(default)})"
        )
        return default
    if value > most:
        warnings.append(
            f"codeexec.{key}: {_shown(value)} is over the maximum this server can apply; "
            f"using {_shown(most)}"
        )
        return most
    return value


def usable_settings(settings: Settings) -> tuple[Settings, list[str]]:
    """Settings every executor can carry out, and a warning for each value changed.

    The settings parser checks types; this checks range: NaN, infinity, or a limit too
    large for the operating system would otherwise make every run fail, or hang.
    """
    warnings: list[str] = []

    def seconds(key: str, value: float | None, default: float | None) -> float | None:
        return _bounded(key, value, default, MAX_SECONDS, warnings)

    def count(key: str, value: int, default: int, most: int) -> int:
        return int(_bounded(key, value, default, most, warnings) or default)

    timeout = seconds("timeout", settings.timeout, _DEFAULTS.timeout) or _DEFAULTS.timeout
    llm_timeout = seconds("llm.timeout", settings.llm.timeout, LlmSettings().timeout)
    python = settings.python
    if python is not None and not _usable_path(python):
        warnings.append(
            f"codeexec.python: {python[:40]!r} is not a usable path (it has a NUL or an "
            "unencodable character); using the default interpreter"
        )
        python = None
    usable = replace(
        settings,
        python=python,
        timeout=timeout,
        cpu_seconds=seconds("cpuSeconds", settings.cpu_seconds, None),
        memory_mb=count("memoryMb", settings.memory_mb, _DEFAULTS.memory_mb, MAX_MEGABYTES),
        max_output_bytes=count(
            "maxOutputBytes",
            settings.max_output_bytes,
            _DEFAULTS.max_output_bytes,
            MAX_OUTPUT_BYTES,
        ),
        max_file_mb=count("maxFileMb", settings.max_file_mb, _DEFAULTS.max_file_mb, MAX_MEGABYTES),
        max_open_files=count(
            "maxOpenFiles", settings.max_open_files, _DEFAULTS.max_open_files, MAX_OPEN_FILES
        ),
        llm=replace(settings.llm, timeout=llm_timeout or LlmSettings().timeout),
        fix=replace(
            settings.fix,
            attempts=count(
                "fix.attempts", settings.fix.attempts, FixSettings().attempts, MAX_FIX_ATTEMPTS
            ),
        ),
    )
    return usable, warnings


def _usable_path(path: str) -> bool:
    if "\0" in path:
        return False
    try:
        os.fsencode(path)
    except UnicodeError:
        return False
    return True


def limits_from(settings: Settings) -> Limits:
    return Limits(
        timeout_s=settings.timeout,
        cpu_s=settings.cpu_seconds,
        memory_mb=settings.memory_mb,
        max_output_bytes=settings.max_output_bytes,
        max_file_mb=settings.max_file_mb,
        max_open_files=settings.max_open_files,
    )


def warm_request(settings: Settings, folders: Sequence[str]) -> RunRequest | None:
    """The request a session (or kernel) would be started for ahead of the first run: the
    first workspace folder's. None when the executor keeps no session or there is no
    folder. One function for the server's warm-up and the early start (early_session.py),
    so both ask for the same worker."""
    if settings.executor not in STATEFUL_EXECUTORS or not folders:
        return None
    from codeexec_lsp import snippet

    probe = snippet.for_lines("pass\n", str(Path(folders[0]) / "__warm__.py"), 0, 0)
    return build_request(probe, settings, Path(folders[0]))


def workspace_for(path: str, folders: Sequence[str]) -> Path | None:
    """The deepest workspace folder that contains `path`."""
    return _workspace_for(path, tuple(folders))


@functools.lru_cache(maxsize=256)
def _workspace_for(path: str, folders: tuple[str, ...]) -> Path | None:
    # Pure string work on paths, asked on every run: remembered.
    candidates = [Path(folder) for folder in folders if folder]
    file_path = Path(path)
    containing = [folder for folder in candidates if file_path.is_relative_to(folder)]
    return max(containing, key=lambda folder: len(folder.parts), default=None)


@dataclass(frozen=True)
class _Place:
    """Where and with what a folder's code runs: what build_request resolves per run."""

    python: str
    interpreter_source: str
    cwd: str
    sys_path: tuple[str, ...]
    env: dict[str, str]


# Resolving a place costs ~0.5 ms (a dozen stats, the environment scrubbed name by name);
# it changes only when the folder, the interpreter's folder or the environment does.
PLACE_TTL_S = 2.0  # also re-resolved this often: what no cheap check sees heals by itself
_MAX_PLACES = 64
_places: dict[
    tuple[object, ...], tuple[float, tuple[int | None, ...], dict[bytes, bytes], _Place]
] = {}


def _environ_snapshot(environ: Mapping[str, str]) -> dict[bytes, bytes]:
    """A copy cheap to take and to compare: os.environ keeps its raw bytes in `_data`
    (~1 µs to copy, where decoding every item takes ~50 µs)."""
    data = getattr(environ, "_data", None)
    if isinstance(data, dict):
        return dict(data)
    return {os.fsencode(key): os.fsencode(value) for key, value in environ.items()}


def _mtimes(*paths: str | None) -> tuple[int | None, ...]:
    stamps: list[int | None] = []
    for path in paths:
        try:
            stamps.append(os.stat(path).st_mtime_ns if path else None)
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def _resolve_place(
    snippet_path: str, settings: Settings, workspace: Path | None, environ: Mapping[str, str]
) -> _Place:
    interpreter = find_interpreter(settings.python, workspace, environ)
    file_dir = Path(snippet_path).parent if os.path.isabs(snippet_path) else None
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
    return _Place(interpreter.path, interpreter.source, str(cwd), sys_path, env)


def _place(
    snippet_path: str, settings: Settings, workspace: Path | None, environ: Mapping[str, str]
) -> _Place:
    """`_resolve_place`, remembered per folder. Still valid while the environment is the
    same, and the workspace, the file's folder and the interpreter's folder keep their
    mtimes (a venv created, removed or rebuilt changes one of them); at most PLACE_TTL_S."""
    file_dir = os.path.dirname(snippet_path) if os.path.isabs(snippet_path) else None
    key = (
        file_dir,
        workspace,
        settings.python,
        settings.env_passthrough,
        settings.secret_env_names,
        os.getcwd() if file_dir is None else None,
    )
    snapshot = _environ_snapshot(environ)
    now = time.monotonic()
    cached = _places.get(key)
    if cached is not None:
        when, stamp, cached_environ, place = cached
        if (
            now - when < PLACE_TTL_S
            and cached_environ == snapshot
            and stamp
            == _mtimes(
                str(workspace) if workspace else None, file_dir, os.path.dirname(place.python)
            )
        ):
            return place
    place = _resolve_place(snippet_path, settings, workspace, environ)
    if len(_places) >= _MAX_PLACES:
        _places.clear()
    stamp = _mtimes(str(workspace) if workspace else None, file_dir, os.path.dirname(place.python))
    _places[key] = (now, stamp, snapshot, place)
    return place


def build_request(
    snippet: Snippet,
    settings: Settings,
    workspace: Path | None,
    environ: Mapping[str, str] | None = None,
) -> RunRequest:
    environ = os.environ if environ is None else environ
    place = _place(snippet.path, settings, workspace, environ)
    return RunRequest(
        snippet=snippet,
        python=place.python,
        cwd=place.cwd,
        env=dict(place.env),  # the caller's own copy: the cached one must never change
        limits=limits_from(settings),
        sys_path=place.sys_path,
        interpreter_source=place.interpreter_source,
        sandbox="strict" if settings.sandbox == "strict" else "standard",
        network=settings.network,
    )


def untrusted(request: RunRequest) -> RunRequest:
    """The same run in the strict box with no network, whatever the settings say: for code
    the user did not write (a model's fix candidate being verified)."""
    return replace(request, sandbox="strict", network=False)


def throwaway_runner(
    executors: Executors, cancel: asyncio.Event | None = None
) -> Callable[[RunRequest], Awaitable[RunResult]]:
    """How code the user did not write (a model's fix candidate) is run: each run in a
    process of its own (the local executor), never in a session or kernel whose state it
    could change or read, whatever codeexec.executor says."""
    return lambda request: run_snippet(executors.local, request, cancel)


async def run_snippet(
    executor: Executor, request: RunRequest, cancel: asyncio.Event | None = None
) -> RunResult:
    return await executor.run(request, cancel)


@dataclass(frozen=True)
class Notice:
    """What the user is told after a run: "error" or "warning", and the text."""

    level: Literal["error", "warning"]
    message: str


@dataclass(frozen=True)
class AfterRun:
    """What follows a finished run: a notice (or None) and whether its result is kept."""

    notice: Notice | None
    record: bool


def after_run(
    result: RunResult, lines_before: Sequence[str], lines_now: Sequence[str] | None
) -> AfterRun:
    """What the user is told and whether the result is kept, once a run has ended.

    `lines_before` are the run's lines as it started, `lines_now` the same lines now (None
    once the document is closed). An internal failure is an error; a session or kernel
    that lost its state is a warning (the run went, its variables are gone); anything else
    is silent, as its result shows on hover, inlay hints and diagnostics. A result is kept
    only for an open document (didClose is what forgets them), for a run not cancelled, and
    while its lines are as they were: a result pinned to edited lines would describe code
    that is no longer there.
    """
    notice = None
    if result.status == "internal":
        notice = Notice("error", result.message)
    elif any(result.extra.get(kind, {}).get("state_lost") for kind in STATEFUL_EXECUTORS):
        notice = Notice("warning", result.message)
    record = (
        result.status != "cancelled"
        and lines_now is not None
        and list(lines_now) == list(lines_before)
    )
    return AfterRun(notice, record)
