"""The 20 hostile inputs of ../shared/notes/sandbox-and-latency.md, for every executor that
runs code here: `local`, `session` and the /execute API server.

Each test checks that the input ends with the right status and a message a user
understands (pytest-timeout bounds every test; how fast each limit acts is measured in
benchmarks/limits.py, not asserted here); that the next ordinary run works; that no process of
the run is left alive (every run carries a tag in its environment, and /proc is searched
for it, which also finds children that called setsid()); and, for the writes, that nothing
landed outside the run's folder.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.api.app import create_app
from codeexec_lsp.api.settings import ApiSettings
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import Executor
from codeexec_lsp.execution.http import HttpExecutor
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.results import RunResult
from tests.fakes.api_harness import ThreadedApi

pytestmark = pytest.mark.timeout(120)

TAG_VARIABLE = "CODEEXEC_HOSTILE_RUN"  # not secret-looking: it must reach the children
API_TOKEN_VARIABLE = "HOSTILE_SUITE_API_TOKEN"
API_TOKEN = secrets.token_urlsafe(24)
CANARY = "sk-hostile-canary-3e9d1c"
SUITE_SETTINGS: dict[str, Any] = {"timeout": 5.0, "memory_mb": 256, "max_file_mb": 8}


def tagged_processes(tag: str) -> list[int]:
    found = []
    needle = f"{TAG_VARIABLE}={tag}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                if needle in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def still_alive(pids: list[int], exempt: set[int]) -> list[int]:
    alive = []
    for pid in pids:
        if pid in exempt:
            continue
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().split(") ", 1)[1].startswith("Z"):
                    continue  # a zombie is dead, only not yet reaped by its parent
            alive.append(pid)
        except OSError:
            continue
    return alive


@dataclass
class Backend:
    """One executor, as a run of code in a folder with settings."""

    name: str
    executor: Executor
    folder: Path
    exempt: Callable[[], set[int]] = field(default=lambda: set())

    async def run(self, code: str, tag: str, **settings: Any) -> RunResult:
        path = self.folder / "hostile.py"
        path.write_text(code)
        merged = {**SUITE_SETTINGS, **settings}
        environ = {**os.environ, TAG_VARIABLE: tag}
        request = build_request(
            snippet.whole_file(code, str(path)), Settings(**merged), self.folder, environ
        )
        return await self.executor.run(request)


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    settings = ApiSettings(
        token_env=API_TOKEN_VARIABLE,
        memory_mb=256,
        max_concurrency=2,
        queue_size=16,
        max_run_time=30,
    )
    os.environ[API_TOKEN_VARIABLE] = API_TOKEN
    try:
        with ThreadedApi(create_app(settings)) as api:
            yield api.url
    finally:
        os.environ.pop(API_TOKEN_VARIABLE, None)


@pytest.fixture(params=["local", "session", "api"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    folder = tmp_path / "workspace"
    folder.mkdir()
    if request.param == "local":
        yield Backend("local", LocalExecutor(), folder)
    elif request.param == "session":
        session = SessionExecutor()
        try:
            yield Backend("session", session, folder, lambda: set(session.pids().values()))
        finally:
            await session.close()
    else:
        url = request.getfixturevalue("api_url")
        # The API server runs in this process: its children inherit this environment.
        http = HttpExecutor(url, API_TOKEN_VARIABLE)
        yield Backend("api", http, folder)
        await http.close()


async def assert_clean_after(backend: Backend, tag: str) -> None:
    """The next ordinary run works, and nothing the hostile run started is still alive."""
    follow_up = await backend.run("print(6 * 7)\n", tag + "-next")
    assert (follow_up.status, follow_up.stdout) == ("ok", "42\n"), follow_up
    deadline = time.monotonic() + 5
    while True:
        left = still_alive(tagged_processes(tag), backend.exempt())
        if not left or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert not left, f"processes of the run outlived it: {left}"


async def hostile(backend: Backend, code: str, **settings: Any) -> RunResult:
    tag = uuid.uuid4().hex
    if backend.name == "api":
        os.environ[TAG_VARIABLE] = tag  # the in-process API server passes it on
    try:
        result = await backend.run(code, tag, **settings)
    finally:
        if backend.name == "api":
            os.environ.pop(TAG_VARIABLE, None)
    await assert_clean_after(backend, tag)
    return result


def error_type(result: RunResult) -> str | None:
    return result.error.type if result.error else None


# --- 1-4: processes and output floods ---------------------------------------------------


async def test_01_fork_bomb(backend: Backend) -> None:
    result = await hostile(backend, "import os\nwhile True:\n    os.fork()\n")
    assert result.status in ("limit", "error"), result
    text = f"{result.message} {result.error.message if result.error else ''}".lower()
    assert "process" in text or "resource temporarily unavailable" in text, result


async def test_02_infinite_stdout(backend: Backend) -> None:
    result = await hostile(backend, "while True:\n    print('spam' * 20)\n")
    assert result.status == "limit" and result.truncated
    assert "maxOutputBytes" in result.message or "output" in result.message.lower()


async def test_03_stderr_flood(backend: Backend) -> None:
    code = "import sys\nwhile True:\n    sys.stderr.write('e' * 1000)\n"
    result = await hostile(backend, code)
    assert result.status == "limit" and result.truncated


async def test_04_one_huge_line_without_newline(backend: Backend) -> None:
    result = await hostile(backend, "import sys\nsys.stdout.write('x' * 30_000_000)\n")
    assert result.status == "limit" and result.truncated
    assert len(result.stdout) < 2_100_000


# --- 5-9: resource limits ---------------------------------------------------------------


async def test_05_disk_fill(backend: Backend) -> None:
    code = "with open('fill.bin', 'wb') as f:\n    while True:\n        f.write(b'0' * 1048576)\n"
    result = await hostile(backend, code)
    if backend.name == "api":
        # The API server's own file limit applies; its folder is removed after the run.
        assert result.status in ("error", "timeout", "limit"), result
    else:
        assert result.status == "error" and error_type(result) == "OSError", result
        assert "File too large" in (result.error.message if result.error else "")
        assert (backend.folder / "fill.bin").stat().st_size <= 8 * 1024 * 1024


async def test_06_memory_bomb(backend: Backend) -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(50_000_000))\n"
    result = await hostile(backend, code)
    assert result.status == "limit", result
    assert "memory" in result.message.lower() or error_type(result) == "MemoryError"


async def test_07_sleep_past_the_wall_limit(backend: Backend) -> None:
    result = await hostile(backend, "import time\ntime.sleep(10**6)\n", timeout=2)
    assert result.status == "timeout", result
    if backend.name != "api":
        assert "2 s" in result.message


async def test_08_cpu_burn_past_the_cpu_limit(backend: Backend) -> None:
    result = await hostile(backend, "while True:\n    pass\n", timeout=8, cpu_seconds=1)
    if backend.name == "api":
        assert result.status in ("limit", "timeout"), result  # the server sets its own CPU cap
    else:
        assert result.status == "limit" and error_type(result) == "CPUTimeLimitExceeded", result


async def test_09_sigint_ignored_then_loop(backend: Backend) -> None:
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
    result = await hostile(backend, code, timeout=1)
    assert result.status == "timeout", result
    if backend.name == "session":
        assert "state" in result.message and "lost" in result.message


# --- 10-13: escaping, secrets, network, the parent ---------------------------------------


async def test_10_setsid_child_does_not_outlive_the_run(backend: Backend) -> None:
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(300)\n"
        "    os._exit(0)\n"
        "print('parent done')\n"
    )
    result = await hostile(backend, code)
    assert result.status == "ok" and "parent done" in result.stdout, result


async def test_11_secrets_are_not_in_the_environment(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", CANARY)
    monkeypatch.setenv("DEPLOY_TOKEN", CANARY)
    result = await hostile(backend, "import os\nprint(sorted(os.environ.items()))\n")
    assert result.status == "ok"
    assert CANARY not in result.stdout and API_TOKEN not in result.stdout


@pytest.fixture
def listener() -> Iterator[tuple[int, list[str]]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append("connection")
            connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    server.close()


async def test_12_strict_network_is_off(backend: Backend, listener: tuple[int, list[str]]) -> None:
    port, accepted = listener
    code = (
        "import socket\n"
        "try:\n"
        "    socket.getaddrinfo('example.com', 80)\n"
        "    print('resolved')\n"
        "except OSError as exc:\n"
        "    print('no dns:', exc)\n"
        f"socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
    )
    result = await hostile(backend, code, sandbox="strict")
    assert result.status == "error", result
    assert "resolved" not in result.stdout
    assert isinstance(error_type(result), str) and "Error" in str(error_type(result))
    assert accepted == [], "executed code reached a server on the host's loopback"


async def test_13_killing_the_parent_does_not_kill_the_server(backend: Backend) -> None:
    code = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('still here')\n"
    result = await hostile(backend, code)
    # Reaching this line means the server (this very process, or the API server in it)
    # survived; the run itself reports the refusal or whatever became of it.
    assert result.status in ("ok", "error", "limit"), result


# --- 14-18: exits, input, bytes, recursion, files ----------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("import sys\nsys.exit(3)\n", "error", "SystemExit"),
        ("import os\nos._exit(0)\n", "ok", None),
        ("raise SystemExit\n", "ok", None),
        ("raise KeyboardInterrupt\n", "error", "KeyboardInterrupt"),
    ],
)
async def test_14_exits(backend: Backend, code: str, status: str, kind: str | None) -> None:
    result = await hostile(backend, code)
    assert result.status == status, result
    if kind is not None:
        assert error_type(result) == kind


async def test_15_input_says_there_is_no_stdin(backend: Backend) -> None:
    result = await hostile(backend, "name = input('name? ')\n")
    assert result.status == "error" and error_type(result) == "EOFError", result
    assert "standard input" in (result.error.message if result.error else "")


async def test_16_non_utf8_output(backend: Backend) -> None:
    code = "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe\\x80 bytes')\nsys.stdout.flush()\n"
    result = await hostile(backend, code)
    assert result.status == "ok" and "bytes" in result.stdout and "\ufffd" in result.stdout


@pytest.mark.parametrize(
    ("code", "kind", "line"),
    [
        ("def f(n):\n    return f(n + 1)\n\nf(0)\n", "RecursionError", 2),
        ("x = 1\ny = (\n", "SyntaxError", 2),
    ],
)
async def test_17_deep_recursion_and_syntax_error(
    backend: Backend, code: str, kind: str, line: int
) -> None:
    result = await hostile(backend, code)
    assert result.status == "error" and error_type(result) == kind, result
    assert result.error is not None and result.error.line == line


async def test_18_ten_thousand_open_files(backend: Backend) -> None:
    code = "import os\nfiles = [open(os.devnull) for _ in range(10_000)]\n"
    result = await hostile(backend, code)
    assert result.status == "error" and error_type(result) == "OSError", result
    assert "Too many open files" in (result.error.message if result.error else "")


# --- 19-20: the file system and many runs at once ----------------------------------------


async def test_19_strict_writes_outside_are_refused_and_inside_thrown_away(
    backend: Backend,
) -> None:
    # Outside the workspace and outside the private temp dirs a strict run gets (a HOME under
    # /tmp, as in a fresh-machine try with HOME=$(mktemp -d), would be one of those).
    home = Path.home()
    private = ("/tmp", "/var/tmp", "/run", "/dev/shm")
    folder = Path("/etc") if any(home.is_relative_to(p) for p in private) else home
    outside = folder / f"codeexec-hostile-{uuid.uuid4().hex}.txt"
    code = (
        "import os\n"
        "open('inside.txt', 'w').write('fine')\n"
        "assert open('inside.txt').read() == 'fine'\n"
        f"open({str(outside)!r}, 'w').write('escaped')\n"
    )
    try:
        result = await hostile(backend, code, sandbox="strict")
        assert result.status == "error" and error_type(result) in ("PermissionError", "OSError")
        assert result.error is not None
        assert any(
            reason in result.error.message
            for reason in ("Permission denied", "Read-only file system")
        ), result
        assert not outside.exists(), "the run wrote outside its folder"
        assert not (backend.folder / "inside.txt").exists(), "a strict run's write was kept"
    finally:
        outside.unlink(missing_ok=True)


async def test_20_fifty_runs_at_once(backend: Backend) -> None:
    tag = uuid.uuid4().hex
    if backend.name == "api":
        os.environ[TAG_VARIABLE] = tag
    try:
        results = await asyncio.gather(
            *(backend.run(f"sum(range(100_000)) + {n}\n", tag) for n in range(50))
        )
    finally:
        os.environ.pop(TAG_VARIABLE, None)
    expected = sum(range(100_000))
    finished = [r for r in results if r.status == "ok"]
    busy = [r for r in results if r.status == "internal"]
    assert len(finished) + len(busy) == 50, [r for r in results if r not in finished + busy]
    assert all(r.value == str(expected + n) for n, r in enumerate(results) if r.status == "ok")
    if backend.name == "api":
        assert all("busy" in r.message.lower() or "503" in r.message for r in busy)
        assert len(finished) >= 18  # 2 running + 16 queued are always served
    else:
        assert not busy
    await assert_clean_after(backend, tag)
