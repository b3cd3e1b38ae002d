"""`environment.libraries`: check that they import, and optionally install the missing ones.

Installs never happen during a run: they are a separate step, with network, into a virtual
environment cached per (interpreter, library set). That environment sees the executing
interpreter's own packages through a .pth file, so only the missing libraries are installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codeexec_lsp.api.settings import ApiSettings

log = logging.getLogger("codeexec_lsp.api")

CHECK_TIMEOUT_S = 30.0
READY_MARKER = ".codeexec-ready"
BASE_PATHS_FILE = "_codeexec_base.pth"
LOCK_POLL_S = 0.1
OUTPUT_TAIL_CHARS = 2000

# Runs in the executing interpreter (any Python >= 3.8), so the standard library only.
# Installed distributions are looked up by metadata first: that runs no package code. Only
# top-level names are looked up as modules, because finding `a.b` would import `a`.
CHECK_SCRIPT = r"""
import importlib.metadata, importlib.util, json, sys, sysconfig
missing = []
for name in sys.argv[1:]:
    try:
        importlib.metadata.distribution(name)
        continue
    except Exception:
        pass
    module = name.replace("-", "_")
    try:
        found = "." not in module and importlib.util.find_spec(module) is not None
    except Exception:
        found = False
    if not found:
        missing.append(name)
paths = sysconfig.get_paths()
print(json.dumps({"missing": missing, "site": [paths["purelib"], paths["platlib"]]}))
"""


class LibraryProblem(Exception):
    """The requested libraries cannot be provided; the message is shown to the client as
    `Type: text`, like an exception the code itself raised."""


@dataclass(frozen=True)
class CheckResult:
    missing: tuple[str, ...]
    site_paths: tuple[str, ...]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def environment_key(python: str, libraries: Sequence[str]) -> str:
    payload = json.dumps([python, sorted({normalized(name) for name in libraries})])
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def venv_python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _run(
    argv: Sequence[str], env: Mapping[str, str], cwd: str, timeout: float
) -> tuple[int, str]:
    """Exit status and combined output of a helper process, killed with its group on timeout
    or cancellation."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except BaseException:
        _kill_group(process.pid)
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", "replace")


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= OUTPUT_TAIL_CHARS else "…" + text[-OUTPUT_TAIL_CHARS:]


async def check_libraries(
    python: str, libraries: Sequence[str], env: Mapping[str, str], cwd: str
) -> CheckResult:
    try:
        status, output = await _run(
            [python, "-c", CHECK_SCRIPT, *libraries], env, cwd, CHECK_TIMEOUT_S
        )
    except asyncio.TimeoutError:
        raise LibraryProblem(
            f"LibraryCheckError: checking the libraries took longer than {CHECK_TIMEOUT_S:g} s"
        ) from None
    try:
        data = json.loads(output.strip().splitlines()[-1])
        return CheckResult(tuple(data["missing"]), tuple(data["site"]))
    except (ValueError, IndexError, KeyError, TypeError):
        log.error("library check failed (exit status %s): %s", status, _tail(output))
        raise LibraryProblem(
            "LibraryCheckError: the execution server could not check the libraries; "
            "see the server log"
        ) from None


def _missing_message(missing: Sequence[str]) -> str:
    names = ", ".join(repr(name) for name in missing)
    one = len(missing) == 1
    subject = f"library {names} is" if one else f"libraries {names} are"
    return (
        f"ModuleNotFoundError: {subject} not installed on this execution server. Ask its "
        f"operator to install {'it' if one else 'them'}, or to start the server with "
        "--allow-install so that requests can install libraries."
    )


@contextlib.asynccontextmanager
async def _file_lock(path: Path, timeout: float) -> AsyncIterator[None]:
    """An exclusive lock shared with other server processes using the same cache directory."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if loop.time() > deadline:
                    raise LibraryProblem(
                        "InstallError: timed out waiting for another install of the same libraries"
                    ) from None
            await asyncio.sleep(LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _write_base_paths(env_site: str, base_paths: Sequence[str]) -> None:
    Path(env_site).mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{path}\n" for path in dict.fromkeys(base_paths))
    (Path(env_site) / BASE_PATHS_FILE).write_text(lines)


class LibraryManager:
    """Decides which interpreter runs a request, given the libraries it asks for."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.installs_completed = 0
        self._installs: dict[str, asyncio.Task[str]] = {}

    async def interpreter_for(
        self, libraries: Sequence[str], env: Mapping[str, str], cwd: str
    ) -> str:
        """The interpreter that has `libraries`; raises LibraryProblem when none can."""
        base = self.settings.python
        if not libraries:
            return base
        check = await check_libraries(base, libraries, env, cwd)
        if not check.missing:
            return base
        if not self.settings.allow_install:
            raise LibraryProblem(_missing_message(check.missing))
        return await self._environment(libraries, check, env)

    async def _environment(
        self, libraries: Sequence[str], check: CheckResult, env: Mapping[str, str]
    ) -> str:
        key = environment_key(self.settings.python, libraries)
        env_dir = self.settings.cache_dir / key
        if (env_dir / READY_MARKER).is_file():
            return str(venv_python(env_dir))
        task = self._installs.get(key)
        if task is None:
            task = asyncio.create_task(self._install(key, env_dir, check, env))
            self._installs[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: one client giving up must not cancel an install others wait for.
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[str]) -> None:
        self._installs.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved, so a failure nobody awaited is not reported twice

    async def _install(
        self, key: str, env_dir: Path, check: CheckResult, env: Mapping[str, str]
    ) -> str:
        settings = self.settings
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        python = str(venv_python(env_dir))
        async with _file_lock(settings.cache_dir / f"{key}.lock", settings.install_timeout):
            if (env_dir / READY_MARKER).is_file():
                return python  # another server process installed them meanwhile
            log.info("installing %s into %s", ", ".join(check.missing), env_dir)
            await asyncio.to_thread(shutil.rmtree, env_dir, True)
            try:
                await self._create(env_dir, check, env)
                verified = await check_libraries(python, check.missing, env, str(env_dir))
                if verified.missing:
                    raise LibraryProblem(
                        f"ModuleNotFoundError: installed {', '.join(check.missing)}, but "
                        f"{', '.join(verified.missing)} still cannot be found; check the "
                        "library names"
                    )
                (env_dir / READY_MARKER).write_text(json.dumps(sorted(check.missing)))
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, env_dir, True)
                raise
        self.installs_completed += 1
        log.info("installed %s", ", ".join(check.missing))
        return python

    async def _create(self, env_dir: Path, check: CheckResult, env: Mapping[str, str]) -> None:
        settings = self.settings
        python = str(venv_python(env_dir))
        cwd = str(settings.cache_dir)
        # The server's own pip can install into a venv that has none: much faster than
        # bootstrapping pip into every environment.
        own_pip = importlib.util.find_spec("pip") is not None
        create = [settings.python, "-m", "venv", str(env_dir)]
        await self._step(create + (["--without-pip"] if own_pip else []), env, cwd, "create")
        site = await check_libraries(python, (), env, cwd)
        await asyncio.to_thread(_write_base_paths, site.site_paths[0], check.site_paths)
        pip = (
            [sys.executable, "-m", "pip", "--python", python] if own_pip else [python, "-m", "pip"]
        )
        # Wheels only: building an sdist would run its setup code outside the sandbox.
        options = [
            "install",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ]
        await self._step([*pip, *options, *check.missing], env, cwd, "install")

    async def _step(self, argv: list[str], env: Mapping[str, str], cwd: str, what: str) -> None:
        try:
            status, output = await _run(argv, env, cwd, self.settings.install_timeout)
        except asyncio.TimeoutError:
            raise LibraryProblem(
                f"InstallError: could not {what} the environment within "
                f"{self.settings.install_timeout:g} s"
            ) from None
        if status != 0:
            log.warning("library %s step failed (exit status %d): %s", what, status, _tail(output))
            raise LibraryProblem(
                f"InstallError: could not {what} the libraries (exit status {status}): "
                f"{_tail(output)}"
            )
