"""The session worker starts at `initialize`, so the first run finds it; the client's pulled
configuration replaces it only when it asks for another one. And big documents: code
actions and runs in a 10,000-line document find the right cell, before and after edits."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient, client_capabilities

from tests.e2e.conftest import config, open_document, rng, run, server_pid, start


@pytest_lsp.fixture(config=config())
async def bare_client(lsp_client: LanguageClient) -> AsyncIterator[LanguageClient]:
    yield lsp_client
    await lsp_client.shutdown_session()


def session_workers(parent: int) -> set[int]:
    """The server's session workers: its children running worker.py (Linux /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"worker.py" in cmdline and b"--request-fd" in cmdline:
            found.add(int(entry))
    return found


async def wait_for_workers(parent: int, count: int = 1) -> set[int]:
    for _ in range(600):  # a generous deadline on a loaded machine, not a timing check
        workers = session_workers(parent)
        if len(workers) >= count:
            return workers
        await asyncio.sleep(0.05)
    raise AssertionError(f"no session worker under the server ({parent})")


async def initialize_only(client: LanguageClient, root: Path, options: Any) -> None:
    """`initialize` answered, `initialized` not sent yet."""
    client.capabilities = client_capabilities("neovim")
    await client.initialize_async(
        lsp.InitializeParams(
            capabilities=client.capabilities,
            root_uri=root.as_uri(),
            workspace_folders=[lsp.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=options,
        )
    )


async def test_the_worker_starts_at_initialize_and_serves_the_first_run(
    bare_client: LanguageClient, workspace: Path
) -> None:
    bare_client.set_configuration({"executor": "session"}, section="codeexec")
    await initialize_only(bare_client, workspace, {"executor": "session"})
    (early,) = await wait_for_workers(server_pid(bare_client))
    bare_client.initialized(lsp.InitializedParams())
    uri = open_document(bare_client, workspace / "first.py", "x = 40\nx + 2\n")
    result = await run(bare_client, uri)
    assert result["status"] == "ok" and result["value"] == "42"
    assert result["extra"]["session"]["pid"] == early
    assert result["extra"]["session"]["run"] == 1
    assert "New session" not in result.get("message", "")


async def test_a_pulled_configuration_for_another_box_replaces_the_early_worker(
    bare_client: LanguageClient, workspace: Path
) -> None:
    # initializationOptions say standard; the workspace configuration says strict.
    bare_client.set_configuration({"executor": "session", "sandbox": "strict"}, section="codeexec")
    await initialize_only(bare_client, workspace, {"executor": "session"})
    server = server_pid(bare_client)
    (early,) = await wait_for_workers(server)
    bare_client.initialized(lsp.InitializedParams())
    for _ in range(600):  # once the settings are pulled, the unused standard worker goes
        if early not in session_workers(server):
            break
        await asyncio.sleep(0.05)
    assert early not in session_workers(server)
    uri = open_document(bare_client, workspace / "strict.py", "1 + 1\n")
    result = await run(bare_client, uri)
    assert result["status"] == "ok" and result["value"] == "2"
    assert result["extra"]["sandbox"]["profile"] == "strict"
    assert result["extra"]["session"]["run"] == 1
    assert "New session" not in result.get("message", "")


def big_document(cells: int = 1000, lines_per_cell: int = 10) -> str:
    """1,000 cells; each appends its number to `order` and shows `order`."""
    lines = []
    for cell in range(cells):
        lines.append(f"# %% cell {cell}")
        lines.append(f"order.append({cell})")
        lines.extend(f"filler_{cell}_{k} = {k}" for k in range(lines_per_cell - 3))
        lines.append("order")
    return "\n".join(lines) + "\n"


async def code_action_titles(client: LanguageClient, uri: str, line: int) -> list[str]:
    actions = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=line, character=0), end=lsp.Position(line=line, character=0)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    return [action.title for action in actions or []]


async def test_cells_of_a_big_document_are_found_before_and_after_edits(
    bare_client: LanguageClient, workspace: Path
) -> None:
    await start(bare_client, "neovim", workspace, {"executor": "session"})
    reset = open_document(bare_client, workspace / "reset.py", "order = []\n")
    text = big_document()
    uri = open_document(bare_client, workspace / "big.py", text)
    assert "Run cell" in await code_action_titles(bare_client, uri, 5001)
    await run(bare_client, reset)
    assert (await run(bare_client, uri, rng(5001, 0, 5001, 0)))["value"] == "[500]"

    # Remove the marker of cell 500: its lines join cell 499.
    bare_client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                lsp.TextDocumentContentChangePartial(range=rng_of(5000, 0, 5001, 0), text="")
            ],
        )
    )
    assert "Run cell" in await code_action_titles(bare_client, uri, 5000)
    await run(bare_client, reset)
    assert (await run(bare_client, uri, rng(5000, 0, 5000, 0)))["value"] == "[499, 500]"

    # Every marker gone: an empty range means the statement there, not a cell.
    bare_client.text_document_did_change(
        lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=3),
            content_changes=[
                lsp.TextDocumentContentChangeWholeDocument(text=text.replace("# %%", "# no"))
            ],
        )
    )
    titles = await code_action_titles(bare_client, uri, 5001)
    assert "Run statement" in titles and "Run cell" not in titles


def rng_of(line_0: int, char_0: int, line_1: int, char_1: int) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=line_0, character=char_0),
        end=lsp.Position(line=line_1, character=char_1),
    )


async def test_a_run_sent_right_after_initialized_uses_the_pulled_settings(
    bare_client: LanguageClient, workspace: Path
) -> None:
    """The run goes out with `initialized`, before the server has the client's own
    settings: it waits for them rather than run in the box initializationOptions named."""
    bare_client.set_configuration({"executor": "session", "sandbox": "strict"}, section="codeexec")
    await initialize_only(bare_client, workspace, {"executor": "session"})
    bare_client.initialized(lsp.InitializedParams())
    uri = open_document(bare_client, workspace / "at_once.py", "1 + 1\n")
    result = await run(bare_client, uri)
    assert result["status"] == "ok" and result["value"] == "2"
    assert result["extra"]["sandbox"]["profile"] == "strict"


async def test_the_worker_starts_before_the_server_has_loaded(
    bare_client: LanguageClient, workspace: Path
) -> None:
    """From the raw `initialize` (early_session.py): the worker is running while the server
    still imports pygls, so it shows up before `initialize` is answered (a worker started by
    the `initialize` handler appears only after its answer is written), and that same worker
    (not a second one) serves the first run."""
    bare_client.set_configuration({"executor": "session"}, section="codeexec")
    server = server_pid(bare_client)
    answering = asyncio.ensure_future(
        initialize_only(bare_client, workspace, {"executor": "session"})
    )
    before_the_answer: set[int] = set()
    while not answering.done() and not before_the_answer:
        before_the_answer = session_workers(server)
        await asyncio.sleep(0.002)
    await answering
    assert len(before_the_answer) == 1, "no worker before initialize was answered"
    bare_client.initialized(lsp.InitializedParams())
    uri = open_document(bare_client, workspace / "first.py", "6 * 7\n")
    result = await run(bare_client, uri)
    assert result["status"] == "ok" and result["value"] == "42"
    assert result["extra"]["session"]["pid"] in before_the_answer
    assert session_workers(server) == before_the_answer
