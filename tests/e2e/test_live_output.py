"""Output while a run is still going, through the real server: Show output on a run in
progress writes a page of what it printed so far, marked as running; a run queued behind a
busy session says which run it waits for (on that page and in its progress)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.e2e.conftest import config, open_document, rng, run, start

CACHE_DIR = tempfile.mkdtemp(prefix="codeexec-e2e-live-cache-")
LOOP = (
    "import time\nfor i in range(4):\n    print(f'tick {i} <b>', flush=True)\n    time.sleep(1)\n"
)


@pytest_lsp.fixture(config=config(CODEEXEC_CACHE_DIR=CACHE_DIR))
async def vscode(lsp_client: LanguageClient) -> AsyncIterator[LanguageClient]:
    yield lsp_client
    await lsp_client.shutdown_session()


async def show_output(editor: LanguageClient, uri: str, range_: Any) -> str:
    """Show output for `range_`; returns the text of the page it wrote."""
    answer: Any = await editor.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="codeexec.showOutput", arguments=[uri, range_])
    )
    return page_text(answer["uri"])


def page_text(uri: str) -> str:
    return Path(unquote(urlparse(uri).path)).read_text(encoding="utf-8")


async def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` until it returns something truthy (the bound only stops a hang)."""
    for _ in range(600):
        found = await check() if asyncio.iscoroutinefunction(check) else check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.parametrize("executor", ["local", "session"])
async def test_show_output_while_a_loop_runs_gives_the_lines_so_far(
    vscode: LanguageClient, tmp_path: Path, executor: str
) -> None:
    await start(vscode, "visual-studio-code", tmp_path, options={"executor": executor})
    uri = open_document(vscode, tmp_path / "loop.py", LOOP)
    running = asyncio.ensure_future(run(vscode, uri, rng(0, 0, 3, 17)))

    async def page_with_a_tick() -> str | None:
        try:
            page = await show_output(vscode, uri, rng(2, 0, 2, 0))
        except Exception:  # not registered yet: "no finished run here, and none going"
            return None
        return page if "tick 0" in page else None

    page = await eventually(page_with_a_tick, "a page with the first line")
    assert "running for" in page and "output so far" in page
    # The code action that gets there is offered on the running lines too.
    actions = await vscode.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(lsp.Position(2, 0), lsp.Position(2, 0)),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    assert "Show output" in [action.title for action in actions or []]
    assert "tick 0 &lt;b&gt;" in page  # escaped like every page
    assert "tick 3" not in page  # printed a second or more later, after the run is over
    assert 'http-equiv="refresh"' in page  # the browser reloads it while the run goes
    # Without another Show output, the server keeps the same page current ...
    (shown,) = {document.uri for document in vscode.shown_documents}
    await eventually(lambda: "tick 2" in page_text(shown), "the page following the run")
    result = await running
    assert result["status"] == "ok"
    assert result["stdout"].count("tick") == 4
    # ... and, once the run is over, it holds the whole result and stops reloading.
    final = await eventually(
        lambda: (text := page_text(shown)) and "running for" not in text and text,
        "the whole result on the followed page",
    )
    assert "tick 3 &lt;b&gt;" in final and 'http-equiv="refresh"' not in final
    assert "ok ·" in final
    finished = await show_output(vscode, uri, rng(2, 0, 2, 0))
    assert "tick 3 &lt;b&gt;" in finished and "running for" not in finished
    # Both pages went to the browser through window/showDocument, the same file each time.
    assert len({shown.uri for shown in vscode.shown_documents}) == 1


async def test_a_run_queued_behind_a_busy_session_says_what_it_waits_for(
    vscode: LanguageClient, tmp_path: Path
) -> None:
    await start(vscode, "visual-studio-code", tmp_path, options={"executor": "session"})
    gate = tmp_path / "go"
    text = (
        "import os, time\n"
        "print('busy', flush=True)\n"
        f"while not os.path.exists({str(gate)!r}):\n"
        "    time.sleep(0.02)\n"
        "print('queued ran')\n"
    )
    uri = open_document(vscode, tmp_path / "queue.py", text)
    busy = asyncio.ensure_future(run(vscode, uri, rng(0, 0, 3, 20)))
    try:

        async def busy_is_printing() -> bool:
            try:
                return "busy" in await show_output(vscode, uri, rng(1, 0, 1, 0))
            except Exception:
                return False

        await eventually(busy_is_printing, "the first run printing")
        queued = asyncio.ensure_future(run(vscode, uri, rng(4, 0, 4, 19)))

        async def queued_page() -> str | None:
            try:
                page = await show_output(vscode, uri, rng(4, 0, 4, 0))
            except Exception:
                return None
            return page if "waiting for" in page else None

        page = await eventually(queued_page, "the queued run's page")
        assert "waiting for the run at lines 1–4" in page
        assert "queued ran" not in page

        def waiting_reported() -> bool:
            return any(
                isinstance(report, lsp.WorkDoneProgressReport)
                and "waiting for the run at lines 1–4" in (report.message or "")
                for reports in vscode.progress_reports.values()
                for report in reports
            )

        await eventually(waiting_reported, "progress saying what the queued run waits for")
        assert not queued.done()
    finally:
        gate.touch()
    assert (await busy)["status"] == "ok"
    result = await queued
    assert result["stdout"] == "queued ran\n"
    finished = await show_output(vscode, uri, rng(4, 0, 4, 0))
    assert "queued ran" in finished and "waiting for" not in finished


async def test_a_followed_page_of_a_cancelled_run_says_it_ended_without_a_result(
    vscode: LanguageClient, tmp_path: Path
) -> None:
    await start(vscode, "visual-studio-code", tmp_path, options={"executor": "session"})
    text = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    uri = open_document(vscode, tmp_path / "cancel.py", text)
    running = asyncio.ensure_future(run(vscode, uri, rng(0, 0, 2, 14)))

    async def running_page() -> str | None:
        try:
            page = await show_output(vscode, uri, rng(1, 0, 1, 0))
        except Exception:
            return None
        return page if "started" in page else None

    await eventually(running_page, "the page of the run")
    (shown,) = {document.uri for document in vscode.shown_documents}
    token = await eventually(lambda: next(iter(vscode.progress_reports), None), "progress")
    vscode.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=token))
    assert (await running)["status"] == "cancelled"
    final = await eventually(
        lambda: (page := page_text(shown)) and "ended after" in page and page,
        "the page saying the run ended",
    )
    assert "without a result to show" in final and "started" in final
    assert 'http-equiv="refresh"' not in final
