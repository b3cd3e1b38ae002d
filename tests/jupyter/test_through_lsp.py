"""`executor: "jupyter"` chosen in the editor's settings: the same actions, through a real LSP
client, on a local ipykernel the server starts (and shuts down when it exits)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.e2e.conftest import config, open_document, rng, run, start


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest_lsp.fixture(config=config())
async def client(lsp_client: LanguageClient) -> AsyncIterator[LanguageClient]:
    yield lsp_client
    await lsp_client.shutdown_session()


async def test_jupyter_executor_from_the_editor(client: LanguageClient, workspace: Path) -> None:
    await start(client, "neovim", workspace, options={"executor": "jupyter", "timeout": 60})
    text = (
        "".join(f"# line {n}\n" for n in range(1, 30))
        + "counter = 41\n"
        + "def bump():\n"
        + "    return counter + 1\n"
        + "bump()\n"
        + "1 / 0\n"
        + "%time x = 1\n"
    )
    uri = open_document(client, workspace / "kernel.py", text)
    first = await run(client, uri, rng(29, 0, 33, 0))  # counter, bump(), bump() -> 42
    assert first["executor"] == "jupyter", first
    assert first["status"] == "ok" and first["value"] == "42", first
    # State lives in the kernel between runs; an error deep in the file is on its real line.
    error = await run(client, uri, rng(33, 0, 34, 0))
    assert error["status"] == "error" and error["error"]["type"] == "ZeroDivisionError"
    assert error["error"]["line"] == 34, error["error"]
    await asyncio.sleep(0.2)
    assert client.diagnostics[uri][0].range.start.line == 33
    magic = await run(client, uri, rng(34, 0, 35, 0))
    assert magic["status"] == "ok" and "Wall time" in magic["stdout"], magic
    again = await run(client, uri, rng(32, 0, 33, 0))
    assert again["value"] == "42"
    answer = await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="codeexec.restart", arguments=[])
    )
    assert answer["restarted"] >= 1
    gone = await run(client, uri, rng(32, 0, 33, 0))
    assert gone["status"] == "error" and gone["error"]["type"] == "NameError", gone
