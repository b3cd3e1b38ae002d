"""Live variables through a real LSP client: hover on names, completion of attributes and
keys, the `codeexec.variables` list, and the bounds (a hanging __repr__, a busy session)."""

from __future__ import annotations

import asyncio
import importlib.util
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pygls.uris import to_fs_path
from pytest_lsp import LanguageClient, client_capabilities

from tests.e2e.conftest import config, open_document, rng, run

CACHE_DIR = tempfile.mkdtemp(prefix="codeexec-e2e-variables-cache-")


@pytest_lsp.fixture(config=config(CODEEXEC_CACHE_DIR=CACHE_DIR), params=["neovim"])
async def editor(
    lsp_client: LanguageClient, request: pytest.FixtureRequest, workspace: Path
) -> AsyncIterator[LanguageClient]:
    capabilities = client_capabilities(request.param)
    assert capabilities.text_document is not None
    await lsp_client.initialize_session(
        lsp.InitializeParams(
            capabilities=capabilities,
            root_uri=workspace.as_uri(),
            workspace_folders=[lsp.WorkspaceFolder(uri=workspace.as_uri(), name="project")],
        )
    )
    yield lsp_client
    await lsp_client.shutdown_session()


async def hover(editor: LanguageClient, uri: str, line: int, character: int) -> str | None:
    answer = await editor.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=character),
        )
    )
    if answer is None:
        return None
    assert isinstance(answer.contents, lsp.MarkupContent)
    return answer.contents.value


async def complete(
    editor: LanguageClient, uri: str, line: int, character: int
) -> lsp.CompletionList:
    answer = await editor.text_document_completion_async(
        lsp.CompletionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=line, character=character),
        )
    )
    assert isinstance(answer, lsp.CompletionList)
    return answer


async def variables(editor: LanguageClient, *arguments: Any) -> dict[str, Any]:
    answer = await editor.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command="codeexec.variables", arguments=list(arguments))
    )
    assert isinstance(answer, dict)
    return answer


def read_page(uri: str) -> str:
    path = to_fs_path(uri)
    assert path is not None
    return Path(path).read_text(encoding="utf-8")


SOURCE = """\
n = 42
names = ["a"]
d = {"k": 1}
total = n + unknown_name
names.
d["
nothere.
"""


async def test_hover_completion_and_list_after_session_runs(
    editor: LanguageClient, workspace: Path
) -> None:
    uri = open_document(editor, workspace / "live.py", SOURCE)
    assert await hover(editor, uri, 3, 8) is None  # no run yet: no session holds `n`
    result = await run(editor, uri, rng(0, 0, 2, 12))
    assert result["status"] == "ok", result

    on_n = await hover(editor, uri, 3, 8)
    assert on_n is not None and "n: int = 42" in on_n and "session" in on_n
    assert await hover(editor, uri, 3, 16) is None  # `unknown_name`: not in the session
    on_run_line = await hover(editor, uri, 1, 1)
    assert on_run_line is not None and "names: list" not in on_run_line  # the run's hover wins

    attributes = await complete(editor, uri, 4, 6)
    assert attributes.is_incomplete is False
    append = [item for item in attributes.items if item.label == "append"]
    assert append and "session" in (append[0].detail or "")
    assert not [item for item in attributes.items if item.label.startswith("_")]

    keys = await complete(editor, uri, 5, 3)
    assert [item.label for item in keys.items] == ["k"]
    assert keys.items[0].text_edit is not None and keys.items[0].text_edit.new_text == "k"

    nothing = await complete(editor, uri, 6, 8)
    assert not nothing.items and nothing.is_incomplete is False

    listed = await variables(editor, uri)
    by_name = {entry["name"]: entry for entry in listed["variables"]}
    assert by_name["n"] == {"name": "n", "type": "int", "summary": "42", "kind": "value"}
    assert by_name["names"]["type"] == "list" and by_name["d"]["summary"] == "{'k': 1}"
    page = Path(CACHE_DIR) / "variables"
    shown = [doc.uri for doc in editor.shown_documents if doc.uri.startswith(page.as_uri())]
    assert shown and listed["uri"] == shown[-1]
    assert "| `n` | int | 42 |" in read_page(shown[-1])
    without_uri = await variables(editor)  # the first workspace folder's session
    assert without_uri["variables"] == listed["variables"]


async def test_a_hanging_repr_is_cut_off_and_the_session_keeps_its_state(
    editor: LanguageClient, workspace: Path
) -> None:
    source = (
        "import time\n"
        "class Slow:\n"
        "    def __repr__(self):\n"
        "        while True:\n"
        "            time.sleep(1)\n"
        "slow = Slow()\n"
        "kept = 7\n"
        "print(slow, kept)\n"
        "kept\n"
    )
    uri = open_document(editor, workspace / "slow.py", source)
    assert (await run(editor, uri, rng(0, 0, 6, 8)))["status"] == "ok"

    on_slow = await hover(editor, uri, 7, 7)
    assert on_slow is not None and "slow: Slow = (could not show" in on_slow
    listed = await variables(editor, uri)
    summaries = {entry["name"]: entry["summary"] for entry in listed["variables"]}
    assert summaries["slow"].startswith("(could not show") and summaries["kept"] == "7"

    again = await run(editor, uri, rng(8, 0, 8, 4))  # `kept`: the state is still there
    assert again["status"] == "ok" and again["value"] == "7"
    assert not again.get("message")  # no "New session" note: nothing was lost


async def test_hover_says_busy_while_code_runs(editor: LanguageClient, workspace: Path) -> None:
    source = "n = 1\nimport time; time.sleep(3)\nn\n"
    uri = open_document(editor, workspace / "busy.py", source)
    assert (await run(editor, uri, rng(0, 0, 0, 5)))["status"] == "ok"
    long_run = asyncio.ensure_future(run(editor, uri, rng(1, 0, 1, 26)))
    seen_busy = False
    while not long_run.done():
        text = await hover(editor, uri, 2, 0)
        if text is not None and "(session busy)" in text:
            seen_busy = not long_run.done()  # answered while the run still went on
            break
        await asyncio.sleep(0.05)
    assert seen_busy
    on_running_line = await hover(editor, uri, 1, 13)  # `time`, in the run still going
    assert on_running_line is None or long_run.done()  # its result's hover comes at the end
    listed = await variables(editor, uri)
    assert "(session busy)" in listed.get("message", "") or long_run.done()
    completions = await complete(editor, uri, 2, 1)
    assert completions.is_incomplete is False
    assert (await long_run)["status"] == "ok"
    after = await hover(editor, uri, 2, 0)
    assert after is not None and "n: int = 1" in after


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="needs pandas")
async def test_dataframe_shape_on_hover_and_columns_in_completion(
    editor: LanguageClient, workspace: Path
) -> None:
    source = (
        "import pandas as pd\n"
        'df = pd.DataFrame({"a": range(100), "b": 1.5, "c": "x"})\n'
        "df\n"
        'df["\n'
        "pd.DataFrame\n"
    )
    uri = open_document(editor, workspace / "frame.py", source)
    assert (await run(editor, uri, rng(0, 0, 1, 56)))["status"] == "ok"
    on_df = await hover(editor, uri, 2, 1)
    assert on_df is not None and "df: DataFrame = 100 rows × 3 columns" in on_df
    assert "```text" in on_df  # the first rows as a preview
    on_pd = await hover(editor, uri, 4, 1)
    assert on_pd is not None and "pd: module = pandas" in on_pd
    columns = await complete(editor, uri, 3, 4)
    assert [item.label for item in columns.items] == ["a", "b", "c"]
    assert "float64" in (columns.items[1].detail or "")
