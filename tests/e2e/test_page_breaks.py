"""A document with PEP 8 page breaks (form feeds) and U+2028 inside a string, through a real
LSP client: the editor numbers lines only at line feeds and carriage returns, and so must
the server, or every run, diagnostic and edit after such a character lands a line off."""

from __future__ import annotations

from pathlib import Path

from pytest_lsp import LanguageClient

from tests.e2e.conftest import edit, open_document, published_diagnostics, rng, run

PAGED = "import math\n\x0c\nlabel = 'a\u2028b'\n\x0c\nvalue = math.sqrt(-1)\n"


async def test_a_run_after_page_breaks_runs_and_marks_the_editors_line(
    client: LanguageClient, workspace: Path
) -> None:
    uri = open_document(client, workspace / "paged.py", PAGED)
    assert (await run(client, uri, rng(0, 0, 0, 11)))["status"] == "ok"  # import math
    result = await run(client, uri, rng(4, 0, 4, 21))
    assert result["status"] == "error", result
    assert result["error"]["type"] == "ValueError"
    assert result["error"]["line"] == 5  # 1-based, the editor's line 4
    [diagnostic] = await published_diagnostics(client, uri)
    assert diagnostic.range.start.line == 4


async def test_an_edit_after_a_page_break_changes_the_line_the_editor_changed(
    client: LanguageClient, workspace: Path
) -> None:
    uri = open_document(client, workspace / "paged_edit.py", PAGED)
    edit(client, uri, 2, (4, 18), (4, 20), "16")  # sqrt(-1) -> sqrt(16)
    whole = await run(client, uri)  # the whole file: every line where the editor has it
    assert whole["status"] == "ok", whole
    value = await run(client, uri, rng(4, 0, 4, 5))
    assert value["status"] == "ok" and value["value"] == "4.0", value
    label = await run(client, uri, rng(2, 0, 2, 5))
    assert label["value"] == repr("a\u2028b"), label
