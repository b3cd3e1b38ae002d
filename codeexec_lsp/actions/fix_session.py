"""Fix with LLM around the pure core: what is fixed, how candidates are run, what is told.

`actions/fix.fix(model, request, run_lines)` makes and verifies a fix; this module holds the
decisions the server made inline before: which lines a command targets (a cursor or a
diagnostic fixes the enclosing unit, a selection fixes those lines), the request built from
the last failed run there, how candidate lines run (a throwaway process in the strict box,
never a live session), whether a fix is still applicable to the document's version, and
what the user is told and what is kept for "Apply unverified fix" per outcome. All on plain
values: the server translates LSP params in and messages/edits out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from codeexec_lsp import snippet
from codeexec_lsp.actions.fix import FixOutcome, FixRequest, RunLines
from codeexec_lsp.actions.run import build_request, untrusted
from codeexec_lsp.code_context import DiagnosticInfo
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.results import RunResult
from codeexec_lsp.run_history import RunHistory

CANCELLED: dict[str, Any] = {
    "applied": False,
    "verified": False,
    "attempts": 0,
    "message": "Cancelled.",
}
STALE = (
    "The document changed while the fix was being made, so nothing was changed. "
    "Run Fix with LLM again."
)
OFFER_UNVERIFIED = " Use the code action 'Apply unverified fix' to apply it anyway."


class TargetOutside(ValueError):
    """The cursor or diagnostic line is not in the document."""


@dataclass(frozen=True)
class FixTarget:
    """The lines to fix (0-based, inclusive); `empty` when a cursor or a diagnostic chose
    them, so the fix takes the enclosing function or statement."""

    first_line: int
    last_line: int
    empty: bool


def choose_target(
    line_count: int,
    selection: tuple[int, int] | None,
    cursor: bool,
    diagnostic: DiagnosticInfo | None,
    selected_lines: Callable[[], tuple[int, int]],
) -> FixTarget:
    """`selection` is the (start, end) lines of the command's range, None without one;
    `cursor` when the range is empty. No range, a cursor, or a diagnostic with a one-line
    selection fixes the enclosing unit at that line; a real selection fixes the lines
    `selected_lines()` makes of it (the server trims it as a run would)."""
    on_one_line = selection is not None and selection[0] == selection[1]
    if selection is None or cursor or (diagnostic and on_one_line):
        line = diagnostic.line if diagnostic else (selection[0] if selection else 0)
        if not 0 <= line < line_count:
            raise TargetOutside(f"line {line + 1} is outside the document ({line_count} lines)")
        return FixTarget(line, line, True)
    first, last = selected_lines()
    return FixTarget(first, last, False)


def fix_request(
    uri: str,
    document: str,
    path: str,
    target: FixTarget,
    diagnostic: DiagnosticInfo | None,
    history: RunHistory,
    settings: Settings,
) -> FixRequest:
    """The request for the pure core, with the last failed run overlapping the target (its
    error guides the model, and verification reruns its lines)."""
    record = history.overlapping(uri, target.first_line, target.last_line)
    last_run = record.result if record and record.result.status != "ok" else None
    return FixRequest(
        document=document,
        path=path,
        first_line=target.first_line,
        last_line=target.last_line,
        selection_empty=target.empty,
        diagnostic=diagnostic,
        last_run=last_run,
        run_span=(record.first_line, record.last_line) if last_run and record else None,
        attempts=settings.fix.attempts,
        verify=settings.fix.verify,
    )


def untrusted_lines_runner(
    path: str,
    settings: Settings,
    workspace: Path | None,
    run_untrusted: Callable[[RunRequest], Awaitable[RunResult]],
) -> RunLines:
    """How the core runs lines of a candidate document: as a run of those lines would, but
    in the strict box, through `run_untrusted` (a throwaway process: the candidate is the
    model's code, not the user's, and verification must never touch a live session)."""

    async def run_lines(document_text: str, first_line: int, last_line: int) -> RunResult:
        lines_snippet = snippet.for_lines(document_text, path, first_line, last_line)
        return await run_untrusted(untrusted(build_request(lines_snippet, settings, workspace)))

    return run_lines


def still_applicable(
    current_version: int | None, fixed_version: int | None, outcome: FixOutcome
) -> bool:
    """A fix applies only to the version it was made from, and only with a target."""
    return current_version == fixed_version and outcome.target is not None


def editor_refused(failure_reason: str | None) -> str:
    """What the user is told when the editor answers applyEdit with applied: false."""
    reason = f" ({failure_reason})" if failure_reason else ""
    return STALE.replace("The document", f"The editor refused the edit{reason}: the document")


@dataclass(frozen=True)
class FixReport:
    """What the user is told about a finished fix and what the command answers."""

    level: Literal["info", "warning"]
    message: str
    answer: dict[str, Any]
    keep_pending: bool  # offer the unverified fix through 'Apply unverified fix'


def report(outcome: FixOutcome, applied: bool | None, refusal: str, still_open: bool) -> FixReport:
    """`applied` is None when no edit was attempted (the outcome is not to be applied), else
    whether it went in (`refusal` says why not). An unapplied fix with edits is kept for
    'Apply unverified fix' while the document is open. Info only for a verified fix applied."""
    message = outcome.message
    keep = False
    if applied is not None:
        message = message if applied else refusal
    elif outcome.edits and still_open:
        keep = True
        message += OFFER_UNVERIFIED
    level: Literal["info", "warning"] = "info" if applied and outcome.verified else "warning"
    return FixReport(level, message, {**outcome.to_json(bool(applied)), "message": message}, keep)
