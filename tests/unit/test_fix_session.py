"""Fix with LLM's decisions around the pure core, in process: the target a command fixes,
the request made from the last failed run, how candidate lines run, whether a fix still
applies, and what the user is told per outcome."""

from __future__ import annotations

import asyncio

import pytest

from codeexec_lsp.actions import fix_session
from codeexec_lsp.actions.fix import FixOutcome
from codeexec_lsp.code_context import CodeUnit, DiagnosticInfo
from codeexec_lsp.config import FixSettings, Settings
from codeexec_lsp.edits import LineEdit
from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.results import ErrorInfo, RunResult
from codeexec_lsp.run_history import RunHistory, RunRecord

URI = "file:///p/calc.py"


def never_selected() -> tuple[int, int]:
    raise AssertionError("a cursor or a diagnostic must not ask for the selection's lines")


def test_a_cursor_fixes_the_enclosing_unit_at_its_line() -> None:
    target = fix_session.choose_target(10, (4, 4), True, None, never_selected)
    assert target == fix_session.FixTarget(4, 4, True)
    assert fix_session.choose_target(10, None, False, None, never_selected).first_line == 0


def test_a_diagnostic_on_a_one_line_selection_wins_over_the_selection() -> None:
    diagnostic = DiagnosticInfo("NameError: x", 7)
    target = fix_session.choose_target(10, (3, 3), False, diagnostic, never_selected)
    assert target == fix_session.FixTarget(7, 7, True)


def test_a_real_selection_fixes_the_lines_the_server_trims_it_to() -> None:
    target = fix_session.choose_target(10, (2, 6), False, None, lambda: (2, 5))
    assert target == fix_session.FixTarget(2, 5, False)
    diagnostic = DiagnosticInfo("bad", 3)
    assert not fix_session.choose_target(10, (2, 6), False, diagnostic, lambda: (2, 6)).empty


def test_a_line_outside_the_document_is_refused() -> None:
    with pytest.raises(fix_session.TargetOutside, match=r"line 13 is outside .*3 lines"):
        fix_session.choose_target(3, None, False, DiagnosticInfo("x", 12), never_selected)


def test_the_request_carries_the_last_failed_run_and_its_lines() -> None:
    history = RunHistory()
    failed = RunResult(status="error", error=ErrorInfo("ValueError", "bad", line=3))
    history.add(URI, RunRecord(1, 4, failed, "lines 2–5", "/p/calc.py"))
    settings = Settings(fix=FixSettings(verify=False, attempts=5))
    target = fix_session.FixTarget(3, 3, True)
    request = fix_session.fix_request(URI, "text", "/p/calc.py", target, None, history, settings)
    assert request.last_run is failed and request.run_span == (1, 4)
    assert (request.attempts, request.verify, request.selection_empty) == (5, False, True)
    history.add(URI, RunRecord(1, 4, RunResult(status="ok"), "lines 2–5", "/p/calc.py"))
    request = fix_session.fix_request(URI, "text", "/p/calc.py", target, None, history, settings)
    assert request.last_run is None and request.run_span is None


def test_candidate_lines_run_untrusted_with_those_lines_only() -> None:
    seen: list[RunRequest] = []

    async def run_untrusted(request: RunRequest) -> RunResult:
        seen.append(request)
        return RunResult(status="ok", stdout="ran")

    run_lines = fix_session.untrusted_lines_runner("/p/calc.py", Settings(), None, run_untrusted)

    async def candidate() -> RunResult:
        return await run_lines("a = 1\nb = 2\nprint(a + b)\n", 1, 2)

    result = asyncio.run(candidate())
    assert result.stdout == "ran"
    (request,) = seen
    assert request.sandbox == "strict" and request.network is False
    assert "b = 2" in request.snippet.code and "a = 1" not in request.snippet.code


def outcome(verified: bool, edits: bool) -> FixOutcome:
    return FixOutcome(
        verified=verified,
        attempts=1,
        message="Fixed the function.",
        target=CodeUnit("function", "f", "def f(): pass\n", 0, 0),
        edits=[LineEdit(0, 1, "def f(): return 1\n")] if edits else [],
    )


def test_a_fix_applies_only_to_the_version_it_was_made_from() -> None:
    assert fix_session.still_applicable(3, 3, outcome(True, True))
    assert not fix_session.still_applicable(4, 3, outcome(True, True))
    targetless = FixOutcome(verified=False, attempts=1, message="no")
    assert not fix_session.still_applicable(3, 3, targetless)


def test_what_is_told_per_outcome() -> None:
    applied = fix_session.report(outcome(True, True), True, "", True)
    assert (applied.level, applied.message, applied.keep_pending) == (
        "info",
        "Fixed the function.",
        False,
    )
    assert applied.answer["applied"] is True and applied.answer["message"] == applied.message
    refused = fix_session.report(outcome(True, True), False, fix_session.STALE, True)
    assert (refused.level, refused.message) == ("warning", fix_session.STALE)
    assert refused.answer["applied"] is False
    offered = fix_session.report(outcome(False, True), None, "", True)
    assert offered.keep_pending and offered.message.endswith(fix_session.OFFER_UNVERIFIED)
    closed = fix_session.report(outcome(False, True), None, "", False)
    assert not closed.keep_pending and closed.message == "Fixed the function."
    nothing = fix_session.report(outcome(False, False), None, "", True)
    assert not nothing.keep_pending and nothing.level == "warning"


def test_an_editor_refusal_names_its_reason() -> None:
    told = fix_session.editor_refused("read-only")
    assert told.startswith("The editor refused the edit (read-only): the document changed")
