"""What the user is told: one `codeexec: ` prefix, and each message also in the log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient as LspClient

from tests.e2e.conftest import config, open_document, run, start


@pytest_lsp.fixture(config=config())
async def editor(lsp_client: LspClient) -> Any:
    yield lsp_client
    await lsp_client.shutdown_session()


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_messages_have_one_prefix_and_are_also_logged(
    editor: LspClient, workspace: Path
) -> None:
    await start(editor, "neovim", workspace, options={"timeout": "soon", "executor": "session"})
    await wait_for(lambda: bool(editor.messages))
    uri = open_document(editor, workspace / "a.py", "x = 1\n")
    assert (await run(editor, uri))["status"] == "ok"
    restarted = await editor.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="codeexec.restart", arguments=[])
    )
    await wait_for(lambda: any("restarted" in m.message for m in editor.messages))
    shown = [(m.type, m.message) for m in editor.messages]
    assert any("codeexec.timeout" in text for _, text in shown)
    assert (lsp.MessageType.Info, restarted["message"]) in shown
    for kind, text in shown:
        assert text.startswith("codeexec: ") and not text.startswith("codeexec: codeexec: ")
        logged = [(m.type, m.message) for m in editor.log_messages]
        assert (kind, text) in logged, (text, logged)
    # A run that went fine told nothing.
    assert not any("a.py" in text for _, text in shown)
