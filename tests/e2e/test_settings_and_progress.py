"""Settings from every source, bad settings, and cancellable progress."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.e2e.conftest import config, open_document, rng, run, start


@pytest_lsp.fixture(config=config())
async def bare_client(lsp_client: LanguageClient) -> Any:
    yield lsp_client
    await lsp_client.shutdown_session()


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_bad_settings_warn_and_server_keeps_serving(
    bare_client: LanguageClient, workspace: Path
) -> None:
    await start(bare_client, "neovim", workspace, options={"timeout": "soon", "memoryMb": 0})
    await wait_for(lambda: len(bare_client.messages) >= 2)
    texts = [m.message for m in bare_client.messages]
    assert any("codeexec.timeout" in t and "positive number" in t for t in texts)
    assert any("codeexec.memoryMb" in t for t in texts)
    assert all(m.type == lsp.MessageType.Warning for m in bare_client.messages)
    uri = open_document(bare_client, workspace / "a.py", "1 + 1\n")
    assert (await run(bare_client, uri))["value"] == "2"


async def test_workspace_configuration_then_did_change_configuration(
    bare_client: LanguageClient, workspace: Path
) -> None:
    bare_client.set_configuration({"timeout": 1}, section="codeexec")
    await start(bare_client, "visual-studio-code", workspace, options={"timeout": 20})
    uri = open_document(bare_client, workspace / "a.py", "import time\ntime.sleep(4)\n")
    await asyncio.sleep(0.3)  # let the initialized handler pull the configuration
    result = await run(bare_client, uri)
    assert result["status"] == "timeout" and "1 s" in result["message"]
    bare_client.set_configuration({"timeout": 10}, section="codeexec")
    bare_client.workspace_did_change_configuration(
        lsp.DidChangeConfigurationParams(settings={"codeexec": {"timeout": 10}})
    )
    await asyncio.sleep(0.3)
    result = await run(bare_client, uri)
    assert result["status"] == "ok"


async def test_progress_is_reported_and_cancel_stops_the_code(
    bare_client: LanguageClient, workspace: Path
) -> None:
    await start(bare_client, "visual-studio-code", workspace)
    uri = open_document(bare_client, workspace / "a.py", "import time\ntime.sleep(60)\n")
    running = asyncio.ensure_future(run(bare_client, uri, rng(0, 0, 1, 14)))
    # The token is recorded at create, begin arrives after: wait for a report itself.
    await wait_for(lambda: any(bare_client.progress_reports.values()))
    token, reports = next(iter(bare_client.progress_reports.items()))
    begin = reports[0]
    assert isinstance(begin, lsp.WorkDoneProgressBegin) and begin.cancellable
    assert "Running" in begin.title
    bare_client.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(running, timeout=5)
    assert result["status"] == "cancelled"
    await wait_for(
        lambda: isinstance(bare_client.progress_reports[token][-1], lsp.WorkDoneProgressEnd)
    )


async def test_bad_command_arguments_get_an_error_not_a_crash(
    bare_client: LanguageClient, workspace: Path
) -> None:
    await start(bare_client, "neovim", workspace)
    uri = open_document(bare_client, workspace / "a.py", "x = 1\n")
    for arguments in ([], [42], [uri, {"start": 1}], [uri, rng(0, 0, 0, 1), "extra"]):
        try:
            await bare_client.workspace_execute_command_async(
                lsp.ExecuteCommandParams(command="codeexec.run", arguments=arguments)
            )
        except Exception as exc:  # the JSON-RPC error the client raises
            assert "codeexec.run" in str(exc) or "range" in str(exc)
        else:
            raise AssertionError(f"{arguments!r} was accepted")
    past_end = await asyncio.gather(
        run(bare_client, uri, rng(40, 0, 42, 0)), return_exceptions=True
    )
    assert isinstance(past_end[0], Exception) and "past the end" in str(past_end[0])
    assert (await run(bare_client, uri))["status"] == "ok"
