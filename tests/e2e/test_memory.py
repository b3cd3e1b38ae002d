"""A leak check, not a speed check: 1,000 runs in one server session leave its memory stable.

The runs go through everything a long editing session does: work-done progress tokens,
published diagnostics, hovers, inlay hints, documents opened and closed (each with run
history), runs that raise, and runs of files the editor never opened. The server's RSS is
read from /proc at run 100 (after warm-up: imports, caches, the session worker) and at run
1,000; the growth between them must stay small.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer
from pygls.protocol import default_converter
from pytest_lsp import LanguageClient

from codeexec_lsp.results import RunResult
from codeexec_lsp.run_history import MAX_RECORDS_PER_DOCUMENT, RunHistory, RunRecord
from codeexec_lsp.server import CodeexecProtocol, CodeexecServer
from tests.e2e.conftest import config, open_document, rng, rss_kib, run, server_pid, start

LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

RUNS = 1000
WARM_UP = 100
MAX_GROWTH_KIB = 30 * 1024
CODE = (
    "total = 0\nfor i in range(10):\n    total += i\nprint(total)\ntotal * 2\n1 / (total - total)\n"
)


@pytest_lsp.fixture(config=config())
async def session(lsp_client: LanguageClient) -> AsyncIterator[LanguageClient]:
    yield lsp_client
    await lsp_client.shutdown_session()


async def one_run(client: LanguageClient, workspace: Path, index: int, kept: str) -> None:
    """One of a few kinds of run, in turn."""
    kind = index % 5
    if kind == 0:
        result = await run(client, kept, rng(0, 0, 5, 0))  # prints, with a trailing value
        assert result["stdout"] == "45\n" and result["value"] == "90", result
    elif kind == 1:
        result = await run(client, kept, rng(0, 0, 6, 0))  # raises: a diagnostic
        assert result["error"]["type"] == "ZeroDivisionError", result
    elif kind == 2:
        # A document opened, run and closed: its history must go with it.
        uri = open_document(client, workspace / f"short_lived_{index}.py", CODE)
        await run(client, uri, rng(0, 0, 4, 0))
        client.text_document_did_close(
            lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
        )
        (workspace / f"short_lived_{index}.py").unlink()
    elif kind == 3:
        result = await run(client, (workspace / "on_disk.py").as_uri())  # never opened
        assert result["stdout"] == "on disk\n", result
    else:
        await run(client, kept, rng(3, 0, 3, 12))
        await client.text_document_hover_async(
            lsp.HoverParams(
                text_document=lsp.TextDocumentIdentifier(uri=kept),
                position=lsp.Position(line=3, character=2),
            )
        )
        await client.text_document_inlay_hint_async(
            lsp.InlayHintParams(
                text_document=lsp.TextDocumentIdentifier(uri=kept), range=rng_lsp(0, 6)
            )
        )


def rng_lsp(first: int, last: int) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=first, character=0), end=lsp.Position(line=last, character=0)
    )


@LINUX_ONLY
async def test_memory_is_stable_over_a_thousand_runs(
    session: LanguageClient, workspace: Path
) -> None:
    client = session
    # VS Code's capabilities: work-done progress, inlay hint refresh, related information.
    await start(client, "visual-studio-code", workspace)
    (workspace / "on_disk.py").write_text("print('on disk')\n")
    kept = open_document(client, workspace / "kept.py", CODE)
    pid = server_pid(client)
    sizes: dict[int, int] = {}
    for index in range(1, RUNS + 1):
        await one_run(client, workspace, index, kept)
        if index in (WARM_UP, RUNS):
            sizes[index] = rss_kib(pid)
    growth = sizes[RUNS] - sizes[WARM_UP]
    print(
        f"\nserver RSS: {sizes[WARM_UP] / 1024:.1f} MiB at run {WARM_UP}, "
        f"{sizes[RUNS] / 1024:.1f} MiB at run {RUNS} ({growth / 1024:+.1f} MiB)"
    )
    assert growth < MAX_GROWTH_KIB, f"RSS grew by {growth / 1024:.1f} MiB: {sizes}"


# --- the leaks found, one by one (in process) ------------------------------------------------


async def test_finished_handler_futures_are_dropped() -> None:
    # pygls keeps the future of every async sub-handler (each executeCommand, each async
    # notification) and of every generator handler (didOpen, didClose) forever.
    protocol = CodeexecProtocol(LanguageServer("leak-check", "0"), default_converter())

    async def command() -> str:
        return "x" * 10_000

    def notification() -> Iterator[Any]:
        yield from ()

    for index in range(100):
        protocol._execute_handler(f"async-{index}", command, callback=lambda done: None)
        protocol._execute_handler(f"gen-{index}", notification, callback=lambda done: None)
    await asyncio.sleep(0.05)
    assert not protocol._request_futures


def test_run_history_per_document_is_bounded() -> None:
    history = RunHistory()
    for line in range(10 * MAX_RECORDS_PER_DOCUMENT):
        history.add("file:///long.py", RunRecord(line, line, RunResult("ok"), "line", "/long.py"))
    records = history.records("file:///long.py")
    assert len(records) == MAX_RECORDS_PER_DOCUMENT
    assert records[-1].first_line == 10 * MAX_RECORDS_PER_DOCUMENT - 1  # the newest are kept


def test_settings_warnings_are_not_remembered_forever() -> None:
    # A client pushing ever-different bad values used to grow the set of warnings shown.
    ls = CodeexecServer()
    for index in range(100):
        ls.settings_store.pushed = {"timeout": f"soon-{index}"}
        ls.apply_settings()
    assert len(ls._warned) == 1
