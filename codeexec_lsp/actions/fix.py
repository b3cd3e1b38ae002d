"""Fix with an LLM: ask for a replacement of the target, run it, retry with the new error.

A candidate is *verified* when the code that failed, run again with the candidate in place of
the target in a throwaway process, raises nothing. Only verified fixes are applied (unless
the user turned verification off, or the code cannot run on its own, e.g. it reads input()).

The model's answer is untrusted: a candidate that breaks the rules of actions/untrusted.py
(new commands, network, file deletion, or code outside the target) is refused before it is
run or applied, and never offered as an unverified fix; edits are confined to the target's
lines by construction (edits.edits_for_replacement) and checked again when applied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from codeexec_lsp.actions.explain import trimmed
from codeexec_lsp.actions.untrusted import refusal
from codeexec_lsp.code_context import CodeContext, CodeUnit, DiagnosticInfo, build_context
from codeexec_lsp.edits import EditOutsideTarget, LineEdit, edits_for_replacement
from codeexec_lsp.execution.runner import NO_INPUT_MESSAGE
from codeexec_lsp.lines import split_lines
from codeexec_lsp.llm.answers import extract
from codeexec_lsp.llm.base import ChatModel, LlmBadAnswer, LlmContextTooLong
from codeexec_lsp.llm.prompts import FailedAttempt, fix_messages
from codeexec_lsp.results import RunResult

FIX_MAX_TOKENS = 4096
REFUSED = "it was refused: "  # what the model is told; the user reads "was refused: ..."

# (document text, first line, last line) -> the result of running those lines of that text.
RunLines = Callable[[str, int, int], Awaitable[RunResult]]


@dataclass(frozen=True)
class FixRequest:
    document: str
    path: str
    first_line: int  # 0-based, inclusive: what the user selected (or the diagnostic's line)
    last_line: int
    selection_empty: bool = False
    diagnostic: DiagnosticInfo | None = None
    last_run: RunResult | None = None
    # The lines whose run raised (0-based, inclusive); verification reruns them.
    run_span: tuple[int, int] | None = None
    attempts: int = 3
    verify: bool = True


@dataclass(frozen=True)
class FixOutcome:
    verified: bool
    attempts: int
    message: str
    target: CodeUnit | None = None
    candidate: str | None = None
    new_document: str | None = None
    edits: list[LineEdit] = field(default_factory=list)
    should_apply: bool = False
    verification: RunResult | None = None

    def to_json(self, applied: bool) -> dict[str, object]:
        return {
            "applied": applied,
            "verified": self.verified,
            "attempts": self.attempts,
            "message": self.message,
        }


def _needs_input(result: RunResult) -> bool:
    return result.error is not None and NO_INPUT_MESSAGE in result.error.message


def _describe(result: RunResult) -> str:
    if result.error is not None:
        where = f" at line {result.error.line}" if result.error.line else ""
        return f"{result.error.headline}{where}"
    return result.message or result.status


def _dropped_failing_line(request: FixRequest, target: CodeUnit, candidate: str) -> str | None:
    """A top-level line that raised, deleted by the candidate: removing the failing call
    would make the error vanish without fixing anything."""
    error = request.last_run.error if request.last_run else None
    if error is None:
        return None
    lines = split_lines(request.document)
    kept = {line.strip() for line in candidate.splitlines()}
    for frame in error.frames:
        index = frame.line - 1
        if frame.file != request.path or frame.name != "<module>":
            continue  # another file's top level (a module imported, a string exec'd)
        if not target.start_line <= index <= target.end_line:
            continue
        if 0 <= index < len(lines) and lines[index].strip() not in kept:
            return lines[index].strip()
    return None


def _verify_span(request: FixRequest, target: CodeUnit, candidate: str) -> tuple[int, int]:
    """The run span in the fixed document: the failing run's lines, grown by the new target."""
    first, last = request.run_span or (target.start_line, target.end_line)
    first, last = min(first, target.start_line), max(last, target.end_line)
    old_count = target.end_line - target.start_line + 1
    new_count = len(candidate.splitlines()) or 1
    return first, last + new_count - old_count


async def fix(model: ChatModel, request: FixRequest, run_lines: RunLines) -> FixOutcome:
    ctx = build_context(
        request.document,
        request.path,
        request.first_line,
        request.last_line,
        diagnostic=request.diagnostic,
        last_run=request.last_run,
        for_fix=True,
        selection_empty=request.selection_empty,
    )
    target = CodeUnit(
        "selection", None, ctx.selection, ctx.selection_start_line, ctx.selection_end_line
    )
    if request.diagnostic is None and request.last_run is None:
        # Nothing says what is wrong: run the target to find out.
        first, last = request.run_span or (target.start_line, target.end_line)
        probe = await run_lines(request.document, first, last)
        if probe.status == "ok":
            return FixOutcome(False, 0, "Nothing to fix: the code ran without an error.")
        ctx = replace(ctx, last_run=probe)
        request = replace(request, last_run=probe, run_span=(first, last))

    failed: list[FailedAttempt] = []
    last_reason = ""
    candidate: str | None = None  # the last one that may be offered as an unverified fix
    for attempt in range(1, request.attempts + 1):
        answer = await _ask(model, ctx, failed)
        try:
            found = extract(
                answer,
                target.text,
                request.document,
                target_start_line=target.start_line,
                path=request.path,
            )
        except LlmBadAnswer as exc:
            last_reason = str(exc)
            failed.append(FailedAttempt(answer[:2000], None, last_reason))
            continue
        extracted = found.code
        refused = refusal(
            extracted,
            target.text,
            request.document,
            target.start_line,
            target.end_line,
            found.outside,
        )
        if refused is None:
            try:
                new_document, edits = edits_for_replacement(
                    request.document, target.start_line, target.end_line + 1, extracted + "\n"
                )
            except EditOutsideTarget as exc:
                refused = str(exc)
        if refused is not None:
            last_reason = f"{REFUSED}{refused}"
            failed.append(FailedAttempt(extracted, None, last_reason))
            continue
        candidate = extracted
        if not edits:
            last_reason = "the model returned the code unchanged"
            failed.append(FailedAttempt(candidate, None, last_reason))
            continue
        base = FixOutcome(
            verified=False,
            attempts=attempt,
            message="",
            target=target,
            candidate=candidate,
            new_document=new_document,
            edits=edits,
        )
        if not request.verify:
            return replace(
                base,
                should_apply=True,
                message="Applied the model's fix WITHOUT running it (codeexec.fix.verify is off).",
            )
        dropped = _dropped_failing_line(request, target, candidate)
        if dropped is not None:
            last_reason = f"it deletes the failing line `{dropped}` instead of fixing the cause"
            failed.append(FailedAttempt(candidate, None, last_reason))
            continue
        first, last = _verify_span(request, target, candidate)
        result = await run_lines(new_document, first, last)
        if result.status == "ok":
            return replace(
                base,
                verified=True,
                should_apply=True,
                verification=result,
                message=(
                    f"Fixed and verified: lines {first + 1}–{last + 1} ran without an error "
                    f"(attempt {attempt} of {request.attempts})."
                ),
            )
        if _needs_input(result):
            return replace(
                base,
                should_apply=True,
                verification=result,
                message="Applied the model's fix WITHOUT verifying it: the code reads input(), "
                "so it cannot run on its own.",
            )
        last_reason = f"running it still fails: {_describe(result)}"
        failed.append(FailedAttempt(candidate, result, last_reason))
    outcome = (
        f"was refused: {last_reason.removeprefix(REFUSED)}"
        if last_reason.startswith(REFUSED)
        else f"failed because {last_reason}"
    )
    message = (
        f"No verified fix after {request.attempts} attempt(s); nothing was changed. "
        f"The last candidate {outcome.removesuffix('.')}."  # a run's own message ends with one
    )
    if candidate is None:
        return FixOutcome(False, request.attempts, message)
    new_document, edits = edits_for_replacement(
        request.document, target.start_line, target.end_line + 1, candidate + "\n"
    )
    return FixOutcome(
        verified=False,
        attempts=request.attempts,
        message=message,
        target=target,
        candidate=candidate,
        new_document=new_document,
        edits=edits,
    )


async def _ask(model: ChatModel, ctx: CodeContext, failed: list[FailedAttempt]) -> str:
    try:
        return await model.complete(fix_messages(ctx, failed), max_tokens=FIX_MAX_TOKENS)
    except LlmContextTooLong:
        return await model.complete(fix_messages(trimmed(ctx), failed), max_tokens=FIX_MAX_TOKENS)
