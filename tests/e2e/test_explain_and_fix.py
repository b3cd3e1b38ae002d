"""Explain and Fix with LLM through a real LSP client, against a fake model on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.e2e.conftest import config, rng, run, start
from tests.fakes.llm_fixtures import fake_llm_fixture  # noqa: F401
from tests.fakes.llm_server import Answer, Delay, FakeLlmServer, rate_limited

CANARY = "sk-canary-e2e-5b1d7f3a9c2e"
CACHE_DIR = tempfile.mkdtemp(prefix="codeexec-e2e-cache-")

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


def read_uri(uri: str) -> str:
    return Path(uri.removeprefix("file://")).read_text()


def fenced(code: str) -> str:
    return f"Here is the fix:\n\n```python\n{code}```\n\nThis guards the empty list."


class EditorBuffers:
    """What an editor does with workspace/applyEdit: check versions, change text, send didChange."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.text: dict[str, str] = {}
        self.version: dict[str, int] = {}
        self.edits: list[lsp.WorkspaceEdit] = []

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

    def type_text(self, uri: str, line: int, text: str) -> None:
        lines = self.text[uri].splitlines(keepends=True)
        lines.insert(line, text)
        self.change(uri, "".join(lines), line, text)

    def change(self, uri: str, new_text: str, line: int, inserted: str) -> None:
        self.text[uri] = new_text
        self.version[uri] += 1
        position = lsp.Position(line=line, character=0)
        self.client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.version[uri]
                ),
                content_changes=[
                    lsp.TextDocumentContentChangePartial(
                        range=lsp.Range(start=position, end=position), text=inserted
                    )
                ],
            )
        )

    def apply(self, params: lsp.ApplyWorkspaceEditParams) -> lsp.ApplyWorkspaceEditResult:
        self.edits.append(params.edit)
        for change in params.edit.document_changes or []:
            assert isinstance(change, lsp.TextDocumentEdit)
            uri = change.text_document.uri
            if change.text_document.version != self.version[uri]:
                return lsp.ApplyWorkspaceEditResult(applied=False, failure_reason="stale version")
            lines = self.text[uri].splitlines(keepends=True)
            for edit in sorted(change.edits, key=lambda e: e.range.start.line, reverse=True):
                assert isinstance(edit, lsp.TextEdit)
                assert edit.range.start.character == 0 and edit.range.end.character == 0
                lines[edit.range.start.line : edit.range.end.line] = [edit.new_text]
            self.text[uri] = "".join(lines)
            self.version[uri] += 1
            self.client.text_document_did_change(
                lsp.DidChangeTextDocumentParams(
                    text_document=lsp.VersionedTextDocumentIdentifier(
                        uri=uri, version=self.version[uri]
                    ),
                    content_changes=[
                        lsp.TextDocumentContentChangeWholeDocument(text=self.text[uri])
                    ],
                )
            )
        return lsp.ApplyWorkspaceEditResult(applied=True)


@pytest_lsp.fixture(config=config(CODEEXEC_CACHE_DIR=CACHE_DIR, OPENAI_API_KEY=CANARY))
async def editor(lsp_client: LanguageClient) -> AsyncIterator[LanguageClient]:
    buffers = EditorBuffers(lsp_client)
    lsp_client.buffers = buffers  # type: ignore[attr-defined]

    @lsp_client.feature(lsp.WORKSPACE_APPLY_EDIT)
    def apply_edit(params: lsp.ApplyWorkspaceEditParams) -> lsp.ApplyWorkspaceEditResult:
        return buffers.apply(params)

    yield lsp_client
    await lsp_client.shutdown_session()


async def begin(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer, **llm: Any
) -> None:
    settings = {"llm": {"baseUrl": fake_llm.openai_base_url, "model": "fake-model", **llm}}
    await start(editor, "visual-studio-code", workspace, options=settings)


def buffers(editor: LanguageClient) -> EditorBuffers:
    return editor.buffers  # type: ignore[attr-defined,no-any-return]


async def command(editor: LanguageClient, name: str, *arguments: Any) -> Any:
    return await editor.workspace_execute_command_async(
        lsp.ExecuteCommandParams(command=name, arguments=list(arguments))
    )


async def test_explain_streams_opens_document_hovers_and_caches(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await begin(editor, workspace, fake_llm)
    uri = buffers(editor).open(workspace / "explain_me.py", BUGGY)
    await run(editor, uri, rng(3, 0, 9, 0))  # ran first: the explanation is grounded in it
    fake_llm.script(Answer("`mean` divides by `len(values)`, which is **0** for `[]`."))
    result = await command(editor, "codeexec.explain", uri, rng(3, 0, 9, 0))
    assert "divides by" in result["markdown"]
    [request] = fake_llm.model_requests
    prompt = str(request.body)
    assert "ZeroDivisionError" in prompt and "2.0" in prompt  # what it printed and raised
    assert editor.shown_documents and editor.shown_documents[-1].uri.endswith(".md")
    assert "divides by" in read_uri(editor.shown_documents[-1].uri)
    hover = await editor.text_document_hover_async(
        lsp.HoverParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            position=lsp.Position(line=4, character=4),
        )
    )
    assert hover is not None and isinstance(hover.contents, lsp.MarkupContent)
    assert "divides by" in hover.contents.value and "ZeroDivisionError" in hover.contents.value
    again = await command(editor, "codeexec.explain", uri, rng(3, 0, 9, 0))
    assert again["markdown"] == result["markdown"] and again["cached"]
    assert len(fake_llm.model_requests) == 1  # the repeat never reached the model


async def test_explain_survives_a_429_then_succeeds(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await begin(editor, workspace, fake_llm)
    uri = buffers(editor).open(workspace / "rate.py", "x = [1, 2]\nsum(x) * 2\n")
    fake_llm.script(rate_limited("0"), Answer("It doubles the sum."))
    result = await command(editor, "codeexec.explain", uri, rng(0, 0, 2, 0))
    assert result["markdown"] == "It doubles the sum."
    assert len(fake_llm.model_requests) == 2


async def test_model_that_never_answers_times_out_and_server_keeps_serving(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await begin(editor, workspace, fake_llm, timeout=1)
    uri = buffers(editor).open(workspace / "slow.py", "y = 41\ny + 1\n")
    fake_llm.script(Delay(30))
    with pytest.raises(Exception, match=r"(?i)timed? ?out|did not answer"):
        await command(editor, "codeexec.explain", uri, rng(0, 0, 2, 0))
    assert any(m.type == lsp.MessageType.Error for m in editor.messages)
    assert (await run(editor, uri))["value"] == "42"


async def test_no_key_and_no_local_url_says_what_to_set(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await start(
        editor, "neovim", workspace, options={"llm": {"provider": "anthropic", "apiKeyEnv": "NOPE"}}
    )
    uri = buffers(editor).open(workspace / "k.py", "1 + 1\n")
    actions = await editor.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=5)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions is not None and "Explain selection" in [a.title for a in actions]
    with pytest.raises(Exception, match="NOPE"):
        await command(editor, "codeexec.explain", uri, rng(0, 0, 0, 5))
    assert "NOPE" in editor.messages[-1].message


async def test_fix_on_our_diagnostic_is_verified_and_applied_as_a_minimal_versioned_edit(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await begin(editor, workspace, fake_llm)
    uri = buffers(editor).open(workspace / "fix_me.py", BUGGY)
    await run(editor, uri, rng(3, 0, 9, 0))
    await asyncio.sleep(0.2)
    [diagnostic] = editor.diagnostics[uri]
    actions = await editor.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=lsp.CodeActionContext(diagnostics=[diagnostic]),
        )
    )
    assert actions is not None
    fix_action = next(a for a in actions if a.title == "Fix with LLM")
    assert isinstance(fix_action, lsp.CodeAction) and fix_action.command is not None
    assert fix_action.kind == "quickfix.codeexec.fix"
    assert not fake_llm.model_requests  # listing never calls the model
    fake_llm.script(Answer(fenced(FIXED_FUNCTION)))
    result = await command(editor, fix_action.command.command, *fix_action.command.arguments or [])
    assert result == {
        "applied": True,
        "verified": True,
        "attempts": 1,
        "message": result["message"],
    }
    assert "verified" in result["message"]
    assert buffers(editor).text[uri] == BUGGY.replace(
        "def mean(values):\n    return sum(values) / len(values)\n", FIXED_FUNCTION
    )
    [edit] = buffers(editor).edits
    [document_edit] = edit.document_changes or []
    assert isinstance(document_edit, lsp.TextDocumentEdit)
    assert document_edit.text_document.version == 1
    [text_edit] = document_edit.edits
    assert isinstance(text_edit, lsp.TextEdit)
    # minimal: only the guard lines are inserted, the untouched lines are not rewritten
    assert text_edit.range.start.line == 4 and text_edit.range.end.line == 4
    assert text_edit.new_text == "    if not values:\n        return 0.0\n"


async def test_wrong_candidate_then_right_one_takes_two_attempts(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await begin(editor, workspace, fake_llm)
    uri = buffers(editor).open(workspace / "loop.py", BUGGY)
    # A selection is replaced whole: the model answers with the whole selection.
    fake_llm.script(Answer(fenced(WRONG_FUNCTION + CALLS)), Answer(fenced(FIXED_FUNCTION + CALLS)))
    result = await command(editor, "codeexec.fix", uri, rng(3, 0, 9, 0))
    assert (result["applied"], result["verified"], result["attempts"]) == (True, True, 2)
    second_prompt = str(fake_llm.model_requests[1].body)
    assert "ZeroDivisionError" in second_prompt and "len(values) - 0" in second_prompt


async def test_never_verified_changes_nothing_and_offers_apply_unverified(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await begin(editor, workspace, fake_llm, model="fake-model")
    uri = buffers(editor).open(workspace / "stubborn.py", BUGGY)
    fake_llm.default = Answer(fenced(WRONG_FUNCTION + CALLS))
    result = await command(editor, "codeexec.fix", uri, rng(3, 0, 9, 0))
    assert (result["applied"], result["verified"], result["attempts"]) == (False, False, 3)
    assert buffers(editor).text[uri] == BUGGY and not buffers(editor).edits
    actions = await editor.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=lsp.Range(
                start=lsp.Position(line=4, character=0), end=lsp.Position(line=4, character=0)
            ),
            context=lsp.CodeActionContext(diagnostics=[]),
        )
    )
    assert actions is not None and "Apply unverified fix" in [a.title for a in actions]
    applied = await command(editor, "codeexec.applyFix", uri)
    assert applied["applied"] and not applied["verified"]
    assert "len(values) - 0" in buffers(editor).text[uri]


async def test_typing_during_the_fix_makes_the_edit_stale_and_nothing_changes(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await begin(editor, workspace, fake_llm)
    uri = buffers(editor).open(workspace / "stale.py", BUGGY)
    fake_llm.script(Delay(1.5, then=Answer(fenced(FIXED_FUNCTION + CALLS))))
    fixing = asyncio.ensure_future(command(editor, "codeexec.fix", uri, rng(3, 0, 9, 0)))
    await asyncio.sleep(0.5)
    buffers(editor).type_text(uri, 0, "# typed while the model was thinking\n")
    typed = buffers(editor).text[uri]
    result = await asyncio.wait_for(fixing, timeout=30)
    assert result["applied"] is False and "changed" in result["message"]
    assert buffers(editor).text[uri] == typed


async def test_canary_key_never_reaches_logs_or_executed_code(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await begin(editor, workspace, fake_llm)
    code = "import os\nprint(sorted(os.environ.items()))\n"
    uri = buffers(editor).open(workspace / "env.py", code)
    result = await run(editor, uri)
    assert CANARY not in result["stdout"]
    fake_llm.script(Answer("It prints the environment."))
    await command(editor, "codeexec.explain", uri, rng(0, 0, 2, 0))
    # the key was only ever sent to the model, in its header
    assert fake_llm.model_requests[0].headers.get("authorization") in (None, f"Bearer {CANARY}")
    everything = " ".join(
        [m.message for m in editor.log_messages] + [m.message for m in editor.messages]
    )
    assert CANARY not in everything
    assert os.environ.get("OPENAI_API_KEY") != CANARY


async def test_fix_on_another_servers_diagnostic_targets_the_enclosing_function(
    editor: LanguageClient, workspace: Path, fake_llm: FakeLlmServer
) -> None:
    await begin(editor, workspace, fake_llm)
    text = 'def greet(name):\n    message = "Hello, " + nam\n    return message\n\n\nx = 1\n'
    uri = buffers(editor).open(workspace / "typo.py", text)
    pyright = lsp.Diagnostic(
        range=lsp.Range(
            start=lsp.Position(line=1, character=26), end=lsp.Position(line=1, character=29)
        ),
        message='"nam" is not defined',
        source="Pyright",
        code="reportUndefinedVariable",
        severity=lsp.DiagnosticSeverity.Error,
    )
    actions = await editor.text_document_code_action_async(
        lsp.CodeActionParams(
            text_document=lsp.TextDocumentIdentifier(uri=uri),
            range=pyright.range,
            context=lsp.CodeActionContext(diagnostics=[pyright]),
        )
    )
    assert actions is not None
    fix_action = next(a for a in actions if a.title == "Fix with LLM")
    assert isinstance(fix_action, lsp.CodeAction) and fix_action.command is not None
    fixed = 'def greet(name):\n    message = "Hello, " + name\n    return message\n'
    fake_llm.script(Answer(fenced(fixed)))
    result = await command(editor, "codeexec.fix", *fix_action.command.arguments or [])
    assert result["applied"] and result["verified"], result
    assert buffers(editor).text[uri] == text.replace("+ nam\n", "+ name\n")
    prompt = str(fake_llm.model_requests[0].body)
    assert '\\"nam\\" is not defined' in prompt or '"nam" is not defined' in prompt
    assert "Pyright" in prompt
    [edit] = buffers(editor).edits
    [document_edit] = edit.document_changes or []
    assert isinstance(document_edit, lsp.TextDocumentEdit)
    [text_edit] = document_edit.edits
    assert isinstance(text_edit, lsp.TextEdit)
    assert (text_edit.range.start.line, text_edit.range.end.line) == (1, 2)
