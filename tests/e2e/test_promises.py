"""Promises guarded end to end through a real LSP client (issue 15).

- A fix computed for an older version of the document is refused by the *server*, whatever
  the editor would do with it: an editor that applies every edit it is sent, and one that
  lacks `documentChanges` (so it would get an unversioned edit), both keep what the user
  typed, and nothing is sent to them. The same for "Apply unverified fix".
- A one-line selection that starts after a character outside the BMP (😀: two UTF-16 units,
  four UTF-8 bytes, one code point) runs exactly the selected code, and the diagnostic's
  column is in the client's units.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient, client_capabilities

from tests.e2e.conftest import config, open_document, published_diagnostics, rng, run, units
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, FakeLlmServer

CACHE_DIR = tempfile.mkdtemp(prefix="codeexec-e2e-promises-cache-")

BUGGY = (
    "import math\n"
    "\n"
    "\n"
    "def mean(values):\n"
    "    return sum(values) / len(values)\n"
    "\n"
    "\n"
    "print(mean([1, 2, 3]))\n"
    "print(mean([]))\n"
)
FIXED_FUNCTION = (
    "def mean(values):\n"
    "    if not values:\n"
    "        return 0.0\n"
    "    return sum(values) / len(values)\n"
)
WRONG_FUNCTION = "def mean(values):\n    return sum(values) / (len(values) - 0)\n"
CALLS = "\n\nprint(mean([1, 2, 3]))\nprint(mean([]))\n"
TYPED = "# typed by the user while the fix was being made\n"


def fenced(code: str) -> str:
    return f"Here is the fix:\n\n```python\n{code}```\n"


class CarelessEditor:
    """An editor that applies every edit it is sent, versioned or not, without checking the
    version: only the server's own check can keep a stale fix out of its buffer."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.text: dict[str, str] = {}
        self.version: dict[str, int] = {}
        self.received: list[lsp.WorkspaceEdit] = []

    def open(self, path: Path, text: str) -> str:
        path.write_text(text)
        uri = path.as_uri()
        self.text[uri], self.version[uri] = text, 1
        self.client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        return uri

    def replace_text(self, uri: str, text: str) -> None:
        self.text[uri] = text
        self.version[uri] += 1
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.version[uri]
                ),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def apply(self, params: lsp.ApplyWorkspaceEditParams) -> lsp.ApplyWorkspaceEditResult:
        self.received.append(params.edit)
        per_document: list[tuple[str, list[Any]]] = [
            (change.text_document.uri, list(change.edits))
            for change in params.edit.document_changes or []
            if isinstance(change, lsp.TextDocumentEdit)
        ]
        per_document += [(uri, list(edits)) for uri, edits in (params.edit.changes or {}).items()]
        for uri, edits in per_document:
            lines = self.text[uri].splitlines(keepends=True)
            for edit in sorted(edits, key=lambda e: e.range.start.line, reverse=True):
                start, end = edit.range.start, edit.range.end
                head = "".join(lines[: start.line]) + lines[start.line][: start.character]
                tail = lines[end.line][end.character :] if end.line < len(lines) else ""
                lines = (head + edit.new_text + tail + "".join(lines[end.line + 1 :])).splitlines(
                    keepends=True
                )
            self.replace_text(uri, "".join(lines))
        return lsp.ApplyWorkspaceEditResult(applied=True)


def capabilities(document_changes: bool) -> lsp.ClientCapabilities:
    # Neovim's own capabilities lack documentChanges; VS Code's have them.
    chosen = client_capabilities("visual-studio-code" if document_changes else "neovim")
    assert chosen.workspace is not None and chosen.workspace.workspace_edit is not None
    assert bool(chosen.workspace.workspace_edit.document_changes) is document_changes
    return chosen


@pytest_lsp.fixture(
    config=config(CODEEXEC_CACHE_DIR=CACHE_DIR),
    params=["documentChanges", "no-documentChanges"],
)
async def careless(
    lsp_client: LanguageClient, request: pytest.FixtureRequest
) -> AsyncIterator[LanguageClient]:
    editor = CarelessEditor(lsp_client)
    lsp_client.careless = editor  # type: ignore[attr-defined]
    lsp_client.document_changes = request.param == "documentChanges"  # type: ignore[attr-defined]

    @lsp_client.feature(lsp.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: lsp.ApplyWorkspaceEditParams) -> lsp.ApplyWorkspaceEditResult:
        return editor.apply(params)

    yield lsp_client
    await lsp_client.shutdown_session()


async def begin(client: LanguageClient, workspace: Path, fake_llm: FakeLlmServer) -> CarelessEditor:
    settings = {
        "llm": {"baseUrl": fake_llm.openai_base_url, "model": "fake-model"},
        "fix": {"attempts": 1},
    }
    await client.initialize_session(
        lsp.InitializeParams(
            capabilities=capabilities(client.document_changes),  # type: ignore[attr-defined]
            root_uri=workspace.as_uri(),
            workspace_folders=[lsp.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)],
            initialization_options=settings,
        )
    )
    return client.careless  # type: ignore[attr-defined,no-any-return]


async def command(client: LanguageClient, name: str, *arguments: Any) -> Any:
    return await client.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=name, arguments=list(arguments))
    )


async def settle(client: LanguageClient, uri: str) -> None:
    """One request round trip: the server handles messages in order, so every notification
    sent before (the user's typing) has been applied to its copy of the document."""
    await client.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )


async def wait_for_model_request(fake_llm: FakeLlmServer, count: int) -> None:
    for _ in range(600):
        if len(fake_llm.model_requests) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the model got {len(fake_llm.model_requests)} request(s), not {count}")


async def test_verified_fix_for_an_older_version_is_refused_by_the_server(
    careless: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    editor = await begin(careless, workspace, fake_llm)
    uri = editor.open(workspace / "stale_fix.py", BUGGY)
    gate = threading.Event()
    # The answer is a good fix, held back after its first word until the user has typed.
    fake_llm.script(Answer(fenced(FIXED_FUNCTION + CALLS), gate=gate))
    fixing = asyncio.ensure_future(command(careless, "codeexec.fix", uri, rng(3, 0, 9, 0)))
    await wait_for_model_request(fake_llm, 1)
    typed = TYPED + BUGGY
    editor.replace_text(uri, typed)
    await settle(careless, uri)
    gate.set()
    result = await asyncio.wait_for(fixing, timeout=60)
    assert result["applied"] is False and result["verified"] is True
    assert "changed" in result["message"]
    assert editor.received == []  # nothing was sent to the editor
    assert editor.text[uri] == typed  # what the user typed is all there, untouched


async def test_unverified_fix_for_an_older_version_is_refused_by_the_server(
    careless: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    editor = await begin(careless, workspace, fake_llm)
    uri = editor.open(workspace / "stale_unverified.py", BUGGY)
    fake_llm.script(Answer(fenced(WRONG_FUNCTION + CALLS)))
    result = await command(careless, "codeexec.fix", uri, rng(3, 0, 9, 0))
    assert (result["applied"], result["verified"]) == (False, False)
    assert "Apply unverified fix" in result["message"]
    typed = TYPED + BUGGY
    editor.replace_text(uri, typed)
    await settle(careless, uri)
    applied = await command(careless, "codeexec.applyFix", uri)
    assert applied["applied"] is False and "changed" in applied["message"]
    assert editor.received == []
    assert editor.text[uri] == typed


async def test_unverified_fix_for_the_current_version_is_applied(
    careless: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    """The control for the two tests above: the same editor does get a fix that is not
    stale, so their empty `received` means refused, not undeliverable."""
    editor = await begin(careless, workspace, fake_llm)
    uri = editor.open(workspace / "fresh_unverified.py", BUGGY)
    fake_llm.script(Answer(fenced(WRONG_FUNCTION + CALLS)))
    result = await command(careless, "codeexec.fix", uri, rng(3, 0, 9, 0))
    assert (result["applied"], result["verified"]) == (False, False)
    applied = await command(careless, "codeexec.applyFix", uri)
    assert applied["applied"] is True
    assert len(editor.received) == 1
    assert editor.text[uri] == BUGGY.replace(
        "def mean(values):\n    return sum(values) / len(values)\n", WRONG_FUNCTION
    )


# --- a selection that starts after 😀 -------------------------------------------------------


async def test_selection_after_an_astral_character_runs_exactly_the_selected_code(
    client: LanguageClient, workspace: Path
) -> None:
    encoding: str = client.encoding  # type: ignore[attr-defined]
    prefix = 'mood = "😀"; '
    selected = 'print("selected", len("😀")); z = 1 / 0'
    line = prefix + selected
    uri = open_document(client, workspace / "astral.py", f"x = 1\n{line}\n")
    start, end = units(prefix, encoding), units(line, encoding)
    result = await run(client, uri, rng(1, start, 1, end))
    # Exactly the selection ran: not the assignment before it, not a character less.
    assert result["stdout"] == "selected 1\n"
    error = result["error"]
    assert (error["type"], error["line"]) == ("ZeroDivisionError", 2)
    assert error["column"] == line.index("1 / 0")  # code points, in the result
    [diagnostic] = await published_diagnostics(client, uri)
    assert diagnostic.range.start.line == 1
    # Client units in the diagnostic.
    assert diagnostic.range.start.character == units(line[: line.index("1 / 0")], encoding)
