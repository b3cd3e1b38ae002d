"""REPL fidelity as the editor sees it (the real server, a real LSP client): an exception's
notes and a SyntaxError's file lines reach the diagnostic; `_` and a __future__ import carry
over between runs of the default (session) executor."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.e2e.conftest import open_document, rng, run


async def diagnostics_of(client: LanguageClient, uri: str) -> list[lsp.Diagnostic]:
    """The diagnostics published for `uri` once the run's arrive (they follow its result)."""
    for _ in range(200):
        published = list(client.diagnostics.get(uri, []))
        if published:
            return published
        await asyncio.sleep(0.05)
    raise AssertionError(f"no diagnostics were published for {uri}")


async def test_exception_notes_reach_the_diagnostic(
    client: LanguageClient, workspace: Path
) -> None:
    code = (
        "e = KeyError('k')\ne.add_note('checked the cache')\ne.add_note('retry later')\nraise e\n"
    )
    uri = open_document(client, workspace / "notes.py", code)
    result = await run(client, uri)
    assert result["error"]["message"] == "'k'\nchecked the cache\nretry later"
    (diagnostic,) = await diagnostics_of(client, uri)
    assert diagnostic.code == "KeyError"
    assert diagnostic.range.start.line == 3
    assert "checked the cache" in diagnostic.message and "retry later" in diagnostic.message


async def test_a_syntax_error_diagnostic_names_file_lines(
    client: LanguageClient, workspace: Path
) -> None:
    document = "".join(f"v{n} = {n}\n" for n in range(1, 14)) + "for x in range(3):\nprint(x)\n"
    uri = open_document(client, workspace / "indent.py", document)
    result = await run(client, uri, rng(13, 0, 15, 0))  # lines 14-15
    expected = "expected an indented block after 'for' statement on line 14"
    assert result["error"]["message"] == expected
    (diagnostic,) = await diagnostics_of(client, uri)
    assert diagnostic.range.start.line == 14
    assert expected in diagnostic.message


async def test_underscore_and_future_imports_carry_over_between_runs(
    client: LanguageClient, workspace: Path
) -> None:
    document = (
        "from __future__ import annotations\n"
        "6 * 7\n"
        "def f(x: NotDefinedAnywhere): pass\n"
        "(_, f.__annotations__['x'])\n"
    )
    uri = open_document(client, workspace / "repl.py", document)
    first = await run(client, uri, rng(0, 0, 2, 0))
    assert (first["status"], first["value"]) == ("ok", "42")
    second = await run(client, uri, rng(2, 0, 4, 0))
    assert (second["status"], second["value"]) == ("ok", "(42, 'NotDefinedAnywhere')")
