"""The session (default) and http executors through a real LSP client."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.e2e.conftest import config, open_document, rng, run, start

TOKEN = secrets.token_urlsafe(24)


@pytest_lsp.fixture(config=config(CODEEXEC_TEST_EXEC_TOKEN=TOKEN))
async def bare_client(lsp_client: LanguageClient) -> AsyncIterator[LanguageClient]:
    yield lsp_client
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    """Our /execute server as a user starts it: `codeexec-lsp api`, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "CODEEXEC_API_TOKEN": TOKEN}
    process = subprocess.Popen(
        [sys.executable, "-m", "codeexec_lsp", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("codeexec-lsp api did not start")
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


async def test_session_keeps_state_and_restart_clears_it(
    bare_client: LanguageClient, workspace: Path
) -> None:
    await start(bare_client, "neovim", workspace)
    text = "import math\nradius = 2\nround(math.pi * radius**2, 2)\n"
    uri = open_document(bare_client, workspace / "s.py", text)
    first = await run(bare_client, uri, rng(0, 0, 2, 0))
    assert first["executor"] == "session"
    later = await run(bare_client, uri, rng(2, 0, 2, 29))  # uses `math` and `radius`
    assert later["value"] == "12.57"
    answer = await bare_client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="codeexec.restart", arguments=[])
    )
    assert answer["restarted"] >= 1
    gone = await run(bare_client, uri, rng(2, 0, 2, 29))
    assert gone["status"] == "error" and gone["error"]["type"] == "NameError"


async def test_http_executor_maps_errors_to_file_lines(
    bare_client: LanguageClient, workspace: Path, api_url: str
) -> None:
    settings: dict[str, Any] = {
        "executor": "http",
        "http": {"url": api_url, "tokenEnv": "CODEEXEC_TEST_EXEC_TOKEN"},
    }
    await start(bare_client, "visual-studio-code", workspace, options=settings)
    text = "".join(f"# line {n}\n" for n in range(1, 40)) + "if True:\n    a = [1]\n    a[5]\n"
    uri = open_document(bare_client, workspace / "remote.py", text)
    result = await run(bare_client, uri, rng(39, 0, 42, 0))
    assert result["executor"] == "http"
    assert result["status"] == "error" and result["error"]["type"] == "IndexError"
    assert result["error"]["line"] == 42
    await asyncio.sleep(0.2)
    assert bare_client.diagnostics[uri][0].range.start.line == 41
    ok = await run(bare_client, uri, rng(40, 4, 40, 11))
    assert ok["status"] == "ok"


async def test_http_executor_wrong_token_is_a_clear_message(
    bare_client: LanguageClient, workspace: Path, api_url: str
) -> None:
    settings = {"executor": "http", "http": {"url": api_url, "tokenEnv": "NO_SUCH_TOKEN_VAR"}}
    await start(bare_client, "neovim", workspace, options=settings)
    uri = open_document(bare_client, workspace / "t.py", "1 + 1\n")
    result = await run(bare_client, uri)
    assert result["status"] == "internal"
    assert "NO_SUCH_TOKEN_VAR" in result["message"]
    assert any("NO_SUCH_TOKEN_VAR" in m.message for m in bare_client.messages)
