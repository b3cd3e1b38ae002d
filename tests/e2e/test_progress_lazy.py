"""What a run tells the editor, and only when it is worth a message: work-done progress
only for runs still going after ~150 ms (with elapsed seconds and the last output line),
diagnostics and inlay hint refreshes only when they changed, cancel through the progress."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig
from pytest_lsp import LanguageClient as LspClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from tests.e2e.conftest import SERVER, _converter, open_document, rng, run, start


def counting_client() -> LspClient:
    """The usual test client, also counting what the server sent, by method."""
    client = LspClient(converter_factory=_converter)
    counted: Counter[str] = Counter()
    client.sent = counted  # type: ignore[attr-defined]
    features = dict(DEFAULT_CLIENT_FEATURES)

    def counting(method: str) -> Any:
        default = features.get(method, lambda client, params: None)

        def handler(client: LspClient, params: Any) -> Any:
            counted[method] += 1
            return default(client, params)

        return handler

    for method in (
        lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS,
        lsp.WORKSPACE_INLAY_HINT_REFRESH,
        lsp.WINDOW_WORK_DONE_PROGRESS_CREATE,
    ):
        features[method] = counting(method)
    register_lsp_features(client, features)
    return client


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=SERVER, client_factory=counting_client),
    params=["neovim", "visual-studio-code"],
)
async def client(
    lsp_client: LspClient, request: pytest.FixtureRequest, workspace: Path
) -> AsyncIterator[LspClient]:
    await start(lsp_client, request.param, workspace, options={"executor": "session"})
    yield lsp_client
    await lsp_client.shutdown_session()


def sent(client: LspClient) -> Counter[str]:
    return client.sent  # type: ignore[attr-defined, no-any-return]


async def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def begun(client: LspClient) -> list[tuple[str, list[Any]]]:
    """The progresses that have begun: (token, what was reported, begin first)."""
    return [
        (str(token), reports)
        for token, reports in client.progress_reports.items()
        if reports and isinstance(reports[0], lsp.WorkDoneProgressBegin)
    ]


async def test_a_fast_run_sends_no_progress_at_all(client: LspClient, workspace: Path) -> None:
    uri = open_document(client, workspace / "fast.py", "1 + 1\n")
    # The first run may wait for the session worker to start: that one may show progress.
    assert (await run(client, uri))["value"] == "2"
    await asyncio.sleep(0.4)
    sent(client).clear()
    client.progress_reports.clear()
    for _ in range(3):
        assert (await run(client, uri))["value"] == "2"
    await asyncio.sleep(0.4)  # past the delay: a progress created late would show now
    assert sent(client)[lsp.WINDOW_WORK_DONE_PROGRESS_CREATE] == 0
    assert client.progress_reports == {}


@pytest_lsp.fixture(
    config=ClientServerConfig(server_command=SERVER, client_factory=counting_client),
    params=[("neovim", "session"), ("visual-studio-code", "session"), ("neovim", "local")],
    ids=["neovim-session", "vscode-session", "neovim-local"],
)
async def client_of_each_executor(
    lsp_client: LspClient, request: pytest.FixtureRequest, workspace: Path
) -> AsyncIterator[LspClient]:
    editor, executor = request.param
    await start(lsp_client, editor, workspace, options={"executor": executor})
    yield lsp_client
    await lsp_client.shutdown_session()


async def test_a_long_run_reports_elapsed_seconds_and_its_last_line(
    client_of_each_executor: LspClient, workspace: Path
) -> None:
    client = client_of_each_executor
    code = (
        "import time\n"
        "for i in range(8):\n"
        "    print(f'epoch {i} loss 0.{i}', flush=True)\n"
        "    time.sleep(0.5)\n"
    )
    uri = open_document(client, workspace / "slow.py", code)
    result = await run(client, uri)
    assert result["status"] == "ok"
    ((_, reports),) = begun(client)
    begin, *middle, end = reports
    assert isinstance(begin, lsp.WorkDoneProgressBegin) and begin.cancellable
    assert begin.title.startswith("Running")
    assert isinstance(end, lsp.WorkDoneProgressEnd) and end.message == "done"
    messages = [r.message for r in middle if isinstance(r, lsp.WorkDoneProgressReport)]
    # At least once a second over ~4 s, each with the seconds so far and the latest line.
    assert len(messages) >= 3, messages
    for message in messages:
        assert re.fullmatch(r"\d+ s · .+", message or ""), message
    shown = [m for m in messages if m and re.fullmatch(r"\d+ s · epoch \d loss 0\.\d", m)]
    assert len(shown) >= 2, messages
    seconds = [int(m.split(" s", 1)[0]) for m in shown]
    assert seconds == sorted(seconds) and seconds[-1] >= 2
    epochs = [int(m.split("epoch ", 1)[1][0]) for m in shown]
    assert epochs == sorted(epochs) and epochs[-1] > epochs[0]  # the line moves with the run


async def test_a_queued_run_says_what_it_waits_for(client: LspClient, workspace: Path) -> None:
    code = "import time\ntime.sleep(3)\n1 + 1\n"
    uri = open_document(client, workspace / "queue.py", code)
    first = asyncio.ensure_future(run(client, uri, rng(0, 0, 1, 13)))
    await wait_for(lambda: len(begun(client)) == 1)
    second = asyncio.ensure_future(run(client, uri, rng(2, 0, 2, 5)))
    await wait_for(lambda: len(begun(client)) == 2)
    token = begun(client)[1][0]

    def said() -> list[str]:
        return [str(getattr(r, "message", "")) for r in client.progress_reports[token]]

    # Once the first run holds the session (before that both wait for it to start).
    await wait_for(lambda: any("waiting for the run at lines 1–2" in m for m in said()))
    assert all(re.fullmatch(r"\d+ s · .+", m) for m in said() if m != "None"), said()
    assert (await first)["status"] == "ok"
    assert (await second)["value"] == "2"


async def test_unchanged_diagnostics_and_hints_are_not_sent_again(
    client: LspClient, workspace: Path
) -> None:
    uri = open_document(client, workspace / "err.py", "x = 1\n1 / 0\nundefined_name\n")
    assert (await run(client, uri, rng(1, 0, 1, 5)))["status"] == "error"
    await wait_for(lambda: len(client.diagnostics.get(uri, [])) == 1)
    published = sent(client)[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]
    refreshed = sent(client)[lsp.WORKSPACE_INLAY_HINT_REFRESH]
    assert published >= 1
    for _ in range(3):  # the same error again: nothing new to tell
        assert (await run(client, uri, rng(1, 0, 1, 5)))["status"] == "error"
    await asyncio.sleep(0.3)
    assert sent(client)[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] == published
    assert sent(client)[lsp.WORKSPACE_INLAY_HINT_REFRESH] == refreshed
    # Another error: the client hears of it.
    assert (await run(client, uri, rng(2, 0, 2, 14)))["status"] == "error"
    await wait_for(lambda: len(client.diagnostics.get(uri, [])) == 2)
    assert sent(client)[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] == published + 1


async def test_a_changed_hint_refreshes_when_the_client_supports_refresh(
    client: LspClient, workspace: Path
) -> None:
    uri = open_document(client, workspace / "hint.py", "import random\nrandom.random()\n2 + 2\n")
    supports = client.capabilities is not None and bool(
        client.capabilities.workspace
        and client.capabilities.workspace.inlay_hint
        and client.capabilities.workspace.inlay_hint.refresh_support
    )
    assert (await run(client, uri, rng(2, 0, 2, 5)))["value"] == "4"
    first = sent(client)[lsp.WORKSPACE_INLAY_HINT_REFRESH]
    assert first == (1 if supports else 0)
    assert (await run(client, uri, rng(2, 0, 2, 5)))["value"] == "4"
    assert sent(client)[lsp.WORKSPACE_INLAY_HINT_REFRESH] == first  # same hint
    assert (await run(client, uri))["status"] == "ok"  # the whole file: a new value, 4 again
    assert (await run(client, uri, rng(0, 0, 1, 15)))["status"] == "ok"  # a new hint
    await asyncio.sleep(0.2)
    assert sent(client)[lsp.WORKSPACE_INLAY_HINT_REFRESH] == (2 if supports else 0)


async def test_cancel_through_the_progress_interrupts_the_run(
    client: LspClient, workspace: Path
) -> None:
    uri = open_document(client, workspace / "cancel.py", "import time\ntime.sleep(60)\n")
    running = asyncio.ensure_future(run(client, uri))
    await wait_for(lambda: bool(begun(client)))
    ((token, _),) = begun(client)
    client.window_work_done_progress_cancel(lsp.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(running, 20)
    assert result["status"] == "cancelled"
    await wait_for(lambda: isinstance(client.progress_reports[token][-1], lsp.WorkDoneProgressEnd))
    end = client.progress_reports[token][-1]
    assert isinstance(end, lsp.WorkDoneProgressEnd) and end.message == "cancelled"
    assert (await run(client, open_document(client, workspace / "after.py", "3\n")))["value"] == "3"
