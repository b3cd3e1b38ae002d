"""The prompts for "Explain" and "Fix with LLM": small, budgeted, and versioned.

Every piece of context has a character budget and is cut with a visible marker, so a
chatty program or a huge class cannot blow up a request. Line numbers shown to the model
are 1-based, like the tracebacks it reads; the code itself is sent verbatim (never with
line-number prefixes, which models tend to copy into their answer).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from codeexec_lsp.code_context import CodeContext
from codeexec_lsp.lines import split_lines
from codeexec_lsp.llm.base import ChatMessage
from codeexec_lsp.results import RunResult

PROMPT_VERSION = "1"
"""Part of every cache key: bump it whenever a prompt's wording or context changes."""

# Budgets, in characters (about 4 per token).
SELECTION_BUDGET = 6_000
ENCLOSING_BUDGET = 3_000
IMPORTS_BUDGET = 800
STDOUT_BUDGET = 800
STDERR_BUDGET = 600
VALUE_BUDGET = 300
MESSAGE_BUDGET = 400
TRACEBACK_BUDGET = 1_200
ATTEMPT_CODE_BUDGET = 3_000
ATTEMPT_TRACEBACK_BUDGET = 500
MAX_ATTEMPTS_SHOWN = 2
MAX_TARGET_CHARS = 12_000
"""The fix target is sent whole (a cut target cannot be replaced), so it has a hard cap."""

_MESSAGE_OVERHEAD_TOKENS = 4
_BACKTICKS = re.compile(r"`+")

EXPLAIN_SYSTEM = (
    "You explain Python code to a developer, in their editor. Answer in concise Markdown: "
    "at most about 200 words, short paragraphs or bullets. Say what the code does; when a "
    "run is shown, say what it actually printed, returned or raised and why. If it failed, "
    "name the cause and the smallest fix. Refer to lines by their numbers in the file. "
    "Do not repeat the code back; quote at most a short line."
)

FIX_SYSTEM = (
    "You fix bugs in Python code. Reply with exactly one ```python fenced code block that "
    "replaces the target lines, and nothing else. The block replaces exactly the target: "
    "include every target line you keep, nothing from outside it, and keep its indentation. "
    "Change as little as needed to remove the error; keep names, signatures, comments and "
    "style. If you need a new import, put it inside the replacement."
)


class TargetTooLarge(ValueError):
    """The code to fix is too long to send whole."""


@dataclass(frozen=True)
class FailedAttempt:
    """A candidate fix that did not verify: the code, what running it gave, and why it was
    rejected in words (e.g. "the original ZeroDivisionError still occurs")."""

    candidate: str
    result: RunResult | None = None
    reason: str = ""


def estimate_tokens(messages: Sequence[ChatMessage]) -> int:
    """Rough request size: characters / 4, plus a few tokens of framing per message."""
    characters = sum(len(message.content) for message in messages)
    return math.ceil(characters / 4) + _MESSAGE_OVERHEAD_TOKENS * len(messages)


# --- budgets ------------------------------------------------------------------------------


def clip_head(text: str, limit: int) -> str:
    """The start of ``text``, cut at a line break when one is near, with a marker."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    if cut < limit // 2:
        cut = limit
    return f"{text[:cut].rstrip()}\n… [{len(text) - cut} more characters cut]"


def clip_tail(text: str, limit: int) -> str:
    """The end of ``text`` (where a traceback's error and innermost frames are)."""
    if len(text) <= limit:
        return text
    start = len(text) - limit
    newline = text.find("\n", start)
    if newline != -1 and newline < start + limit // 2:
        start = newline + 1
    return f"[… {start} earlier characters cut]\n{text[start:]}"


def _fence(text: str, language: str = "python") -> str:
    # A fence longer than any backtick run inside keeps ``` in a string from ending it.
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text.rstrip()}\n{ticks}"


def _lines_label(start: int, end: int) -> str:
    return f"line {start + 1}" if start == end else f"lines {start + 1}-{end + 1}"


# --- context pieces -----------------------------------------------------------------------


Holders = Sequence[tuple[str, int]]
"""Code known to sit at a 0-based first line of the document: where to look a line up."""


def _holders(ctx: CodeContext) -> list[tuple[str, int]]:
    holders = [(ctx.selection, ctx.selection_start_line)]
    if ctx.enclosing is not None:
        holders.append((ctx.enclosing.text, ctx.enclosing.start_line))
    return holders


def _source_line(holders: Holders, line: int) -> str | None:
    """The text of 1-based document ``line`` if one of the holders has it."""
    for text, first in holders:
        lines = split_lines(text)
        if 0 <= line - 1 - first < len(lines):
            return lines[line - 1 - first].strip() or None
    return None


def _enclosing_section(ctx: CodeContext) -> str | None:
    unit = ctx.enclosing
    if unit is None:
        return None
    label = f"{unit.kind} `{unit.name}`" if unit.name else unit.kind
    where = _lines_label(unit.start_line, unit.end_line)
    return f"It is inside {label} ({where}):\n{_fence(clip_head(unit.text, ENCLOSING_BUDGET))}"


def _imports_section(ctx: CodeContext) -> str | None:
    if not ctx.imports.strip():
        return None
    return f"Module imports:\n{_fence(clip_head(ctx.imports, IMPORTS_BUDGET))}"


def _diagnostic_section(ctx: CodeContext) -> str | None:
    diagnostic = ctx.diagnostic
    if diagnostic is None:
        return None
    run_error = ctx.last_run.error if ctx.last_run is not None else None
    if run_error is not None and diagnostic.source == "codeexec":
        return None  # our own diagnostic repeats the run's error, shown with its traceback
    origin = ", ".join(part for part in (diagnostic.source, diagnostic.code) if part)
    origin = f" ({origin})" if origin else ""
    line = _source_line(_holders(ctx), diagnostic.line + 1)
    at = f" at line {diagnostic.line + 1}" + (f": `{line}`" if line else "")
    return f"Diagnostic{origin}{at}:\n{clip_head(diagnostic.message, MESSAGE_BUDGET)}"


def _run_section(
    holders: Holders, result: RunResult, *, traceback_budget: int, with_output: bool = True
) -> str:
    parts: list[str] = []
    if with_output and result.stdout:
        parts.append(f"stdout:\n{_fence(clip_head(result.stdout, STDOUT_BUDGET), 'text')}")
    if with_output and result.stderr and (result.error is None or not result.error.traceback):
        parts.append(f"stderr:\n{_fence(clip_head(result.stderr, STDERR_BUDGET), 'text')}")
    if result.value is not None:
        parts.append(f"Value of the last expression: `{clip_head(result.value, VALUE_BUDGET)}`")
    error = result.error
    if error is not None:
        headline = clip_head(error.headline, MESSAGE_BUDGET)
        where = ""
        if error.line is not None:
            line = _source_line(holders, error.line)
            where = f" at line {error.line}" + (f": `{line}`" if line else "")
        parts.append(f"It raised {headline}{where}")
        if error.traceback.strip():
            trimmed = clip_tail(error.traceback.rstrip(), traceback_budget)
            parts.append(f"Traceback:\n{_fence(trimmed, 'text')}")
    elif result.status in ("timeout", "limit", "cancelled", "internal"):
        why = f": {clip_head(result.message, MESSAGE_BUDGET)}" if result.message else ""
        parts.append(f"It did not finish ({result.status}){why}")
    elif result.status == "ok" and not parts:
        parts.append("It ran without output or exception.")
    if result.truncated:
        parts.append("(The output was truncated by the runner.)")
    return "\n\n".join(parts)


def _join(sections: Sequence[str | None]) -> str:
    return "\n\n".join(section for section in sections if section)


# --- explain ------------------------------------------------------------------------------


def explain_messages(ctx: CodeContext) -> list[ChatMessage]:
    """Ask for a concise Markdown explanation, grounded in the last run when there is one."""
    where = _lines_label(ctx.selection_start_line, ctx.selection_end_line)
    run = None
    if ctx.last_run is not None:
        body = _run_section(_holders(ctx), ctx.last_run, traceback_budget=TRACEBACK_BUDGET)
        run = f"When these lines ran (status: {ctx.last_run.status}):\n\n{body}"
    selection = _fence(clip_head(ctx.selection, SELECTION_BUDGET))
    user = _join(
        [
            f"Explain {where} of `{ctx.path}`:\n{selection}",
            _enclosing_section(ctx),
            _imports_section(ctx),
            _diagnostic_section(ctx),
            run,
        ]
    )
    return [ChatMessage("system", EXPLAIN_SYSTEM), ChatMessage("user", user)]


# --- fix ----------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _indentation_note(target: str) -> str:
    for line in split_lines(target):
        if line.strip():
            indent = line[: len(line) - len(line.lstrip())]
            if not indent:
                return "Its first line is not indented."
            kinds = [
                _plural(indent.count(char), name)
                for char, name in (("\t", "tab"), (" ", "space"))
                if char in indent
            ]
            return f"Its first line is indented by {' and '.join(kinds)}."
    return ""


def _attempts_section(ctx: CodeContext, attempts: Sequence[FailedAttempt]) -> str | None:
    if not attempts:
        return None
    shown = attempts[-MAX_ATTEMPTS_SHOWN:]
    parts = ["These replacements were tried and did not work; do not repeat them."]
    skipped = len(attempts) - len(shown)
    if skipped:
        parts.append(f"({_plural(skipped, 'earlier attempt')} not shown.)")
    for number, attempt in enumerate(shown, start=skipped + 1):
        lines = [f"Attempt {number}:", _fence(clip_head(attempt.candidate, ATTEMPT_CODE_BUDGET))]
        if attempt.reason:
            lines.append(f"Rejected: {clip_head(attempt.reason, MESSAGE_BUDGET)}")
        if attempt.result is not None:
            # Line numbers of this run refer to the document with the candidate in place.
            lines.append(
                _run_section(
                    [(attempt.candidate, ctx.selection_start_line)],
                    attempt.result,
                    traceback_budget=ATTEMPT_TRACEBACK_BUDGET,
                    with_output=False,
                )
            )
        parts.append("\n".join(line for line in lines if line))
    return "\n\n".join(parts)


def fix_messages(
    ctx: CodeContext, failed_attempts: Sequence[FailedAttempt] = ()
) -> list[ChatMessage]:
    """Ask for a replacement of exactly ``ctx.selection`` (the fix target) as one fenced
    block. Raises TargetTooLarge when the target cannot be sent whole."""
    if len(ctx.selection) > MAX_TARGET_CHARS:
        raise TargetTooLarge(
            f"The code to fix is {len(ctx.selection)} characters long; select a smaller "
            f"range (at most {MAX_TARGET_CHARS} characters) and try again."
        )
    where = _lines_label(ctx.selection_start_line, ctx.selection_end_line)
    run = None
    if ctx.last_run is not None and not ctx.last_run.ok:
        body = _run_section(_holders(ctx), ctx.last_run, traceback_budget=TRACEBACK_BUDGET)
        run = f"When it ran (status: {ctx.last_run.status}):\n\n{body}"
    elif ctx.diagnostic is None:
        run = "No error message is available: find and fix the bug."
    user = _join(
        [
            f"Target: {where} of `{ctx.path}`. {_indentation_note(ctx.selection)}\n"
            f"{_fence(ctx.selection)}",
            _diagnostic_section(ctx),
            run,
            _enclosing_section(ctx),
            _imports_section(ctx),
            _attempts_section(ctx, failed_attempts),
            f"Reply with only the replacement for {where}, in one ```python block.",
        ]
    )
    return [ChatMessage("system", FIX_SYSTEM), ChatMessage("user", user)]
