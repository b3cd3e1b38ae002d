"""What the code raises is clipped before it reaches the editor (issue 10, output safety).

`raise ValueError("x" * 8_000_000)` once sent an 8 MB diagnostic and 16 MB of error to the
editor; now the diagnostic is a few KB, the command's result is small, the hover shows a
clipped text with counts and no live Markdown, and the server goes on answering.
"""

from __future__ import annotations

import json
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.e2e.conftest import open_document, published_diagnostics, rng, run

HUGE = "x = 1\nraise ValueError('[click](http://evil.example/) ' + 'x' * 8_000_000)\n"


async def test_a_huge_exception_gives_a_small_diagnostic_and_the_server_stays_responsive(
    client: LanguageClient, workspace: Path
) -> None:
    uri = open_document(client, workspace / "huge.py", HUGE)
    result = await run(client, uri, rng(0, 0, 2, 0))
    assert result["status"] == "error" and result["error"]["type"] == "ValueError"
    assert result["error"]["line"] == 2
    assert len(json.dumps(result)) < 200_000  # was 16 MB
    [diagnostic] = await published_diagnostics(client, uri)
    assert diagnostic.range.start.line == 1
    assert diagnostic.message.startswith("ValueError: [click](http://evil.example/) xxx")
    assert len(diagnostic.message.encode()) < 4096 and "more characters" in diagnostic.message
    hover = await client.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=1, character=0),
        )
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert len(hover.contents.value) < 20_000 and "more characters" in hover.contents.value
    assert "```text\nValueError: [click](http://evil.example/)" in hover.contents.value
    # Still serving: the next run and its hover come back as usual.
    again = await run(client, open_document(client, workspace / "next.py", "6 * 7\n"))
    assert again["status"] == "ok" and again["value"] == "42"
