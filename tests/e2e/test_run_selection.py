"""Run selection through a real LSP client posing as Neovim and as VS Code."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.e2e.conftest import edit, open_document, rng, run, units

DOC = """import math


def ratio(a, b):
    return a / b


def report(values):
    total = sum(values)
    for v in values:
        print(v, ratio(v, total - 6))


for i in range(2):
    x = "żółw 🐢"; y = 1 / (1 - i)
"""


async def test_code_actions_listed_without_running(client: LanguageClient, workspace: Path) -> None:
    uri = open_document(client, workspace / "a.py", DOC)
    context = lsp.CodeActionContext(diagnostics=[])
    selection = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=3, character=0), end=lsp.Position(line=5, character=0)
            ),
            context=context,
        )
    )
    assert selection is not None
    titles = [action.title for action in selection]
    assert titles[:4] == ["Run selection", "Run file", "Explain selection", "Fix with LLM"]
    first = selection[0]
    assert isinstance(first, lsp.CodeAction) and first.command is not None
    assert first.command.command == "codeexec.run"
    assert list(first.command.arguments or []) == [uri, rng(3, 0, 5, 0)]
    cursor = await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=9, character=4), end=lsp.Position(line=9, character=4)
            ),
            context=context,
        )
    )
    assert cursor is not None and cursor[0].title == "Run statement"
    assert list(client.diagnostics.get(uri, [])) == []  # listing ran nothing


async def test_error_lands_on_real_line_and_utf16_column(
    client: LanguageClient, workspace: Path
) -> None:
    uri = open_document(client, workspace / "b.py", DOC)
    result = await run(client, uri, rng(13, 0, 15, 0))  # the for loop, lines 14-15
    assert result["status"] == "error"
    assert result["error"]["type"] == "ZeroDivisionError"
    assert result["error"]["line"] == 15
    line_text = DOC.splitlines()[14]
    # code points in the result...
    assert result["error"]["column"] == line_text.index("1 / (1 - i)")
    await asyncio.sleep(0.2)
    diagnostics = client.diagnostics[uri]
    assert len(diagnostics) == 1
    diagnostic = diagnostics[0]
    assert diagnostic.source == "codeexec" and diagnostic.code == "ZeroDivisionError"
    assert diagnostic.severity == lsp.DiagnosticSeverity.Error
    assert diagnostic.range.start.line == 14
    # ...the negotiated units on the wire (UTF-16 for VS Code: the turtle is two units)
    prefix = line_text[: line_text.index("1 / (1 - i)")]
    assert diagnostic.range.start.character == units(prefix, client.encoding)  # type: ignore[attr-defined]
    if client.encoding == "utf-16":  # type: ignore[attr-defined]
        assert diagnostic.range.start.character == len(prefix) + 1


async def test_indented_selection_far_down_with_related_frames(
    client: LanguageClient, workspace: Path
) -> None:
    filler = "".join(f"# filler {n}\n" for n in range(120))
    text = (
        filler
        + "def outer():\n"
        + "    def inner(v):\n"
        + "        return v[3]\n"
        + "    if True:\n"
        + "        data = [1, 2]\n"
        + "        inner(data)\n"
        + "    return 1\n"
    )
    uri = open_document(client, workspace / "c.py", text)
    # select the indented body of `outer` (lines 122-126, 1-based)
    result = await run(client, uri, rng(121, 4, 126, 0))
    assert result["status"] == "error", result
    assert result["error"]["type"] == "IndexError"
    assert result["error"]["line"] == 123
    assert result["error"]["column"] == text.splitlines()[122].index("v[3]")
    frames = [(f["line"], f["name"]) for f in result["error"]["frames"]]
    assert frames == [(126, "<module>"), (123, "inner")]
    await asyncio.sleep(0.2)
    diagnostic = client.diagnostics[uri][0]
    assert diagnostic.range.start.line == 122
    if diagnostic.related_information is not None:
        assert [info.location.range.start.line for info in diagnostic.related_information] == [125]


async def test_hover_and_inlay_hint_show_output_and_value(
    client: LanguageClient, workspace: Path
) -> None:
    text = "x = 6\nprint('hello')\nx * 7\n"
    uri = open_document(client, workspace / "d.py", text)
    result = await run(client, uri, rng(0, 0, 2, 5))
    assert result["status"] == "ok" and result["value"] == "42" and result["stdout"] == "hello\n"
    hover = await client.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=1, character=2),
        )
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert "hello" in hover.contents.value and "42" in hover.contents.value
    hints = await client.text_document_inlay_hint_async(
        lsp.InlayHintParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=0, character=0), end=lsp.Position(line=3, character=0)
            ),
        )
    )
    assert hints is not None and [h.label for h in hints] == ["→ 42"]
    assert hints[0].position == lsp.Position(line=2, character=5)


async def test_editing_run_lines_clears_and_lines_above_shift(
    client: LanguageClient, workspace: Path
) -> None:
    text = "a = 1\nb = 2\n1 / 0\n"
    uri = open_document(client, workspace / "e.py", text)
    await run(client, uri, rng(2, 0, 2, 5))
    await asyncio.sleep(0.2)
    assert client.diagnostics[uri][0].range.start.line == 2
    # insert a line at the top: the diagnostic moves down
    edit(client, uri, 2, (0, 0), (0, 0), "import os\n")
    await asyncio.sleep(0.3)
    assert client.diagnostics[uri][0].range.start.line == 3
    # edit the line that raised: the diagnostic goes away
    edit(client, uri, 3, (3, 4), (3, 5), "2")
    await asyncio.sleep(0.3)
    assert list(client.diagnostics[uri]) == []


async def test_server_answers_while_code_runs_and_rerun_cancels(
    client: LanguageClient, workspace: Path
) -> None:
    text = "import time\ntime.sleep(30)\n"
    uri = open_document(client, workspace / "f.py", text)
    first = asyncio.ensure_future(run(client, uri, rng(0, 0, 1, 14)))
    await asyncio.sleep(0.5)
    hover = await asyncio.wait_for(
        client.text_document_hover_async(
            lsp.HoverParams(
                text_document=lsp.TextDocumentIdentifier(uri=uri),
                position=lsp.Position(line=0, character=0),
            )
        ),
        timeout=2,
    )
    assert hover is None
    second = asyncio.ensure_future(run(client, uri, rng(0, 0, 1, 14)))
    first_result = await asyncio.wait_for(first, timeout=5)
    assert first_result["status"] == "cancelled"
    client.text_document_did_close(
        lsp.DidCloseTextDocumentParams(text_document=lsp.TextDocumentIdentifier(uri=uri))
    )
    second_result = await asyncio.wait_for(second, timeout=5)
    assert second_result["status"] == "cancelled"
