"""Explain a selection with a chat model, grounded in what the code did when it last ran."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePath

from codeexec_lsp.cache import TextCache, cache_key
from codeexec_lsp.code_context import CodeContext, build_context
from codeexec_lsp.llm.base import (
    ChatMessage,
    ChatModel,
    LlmBadAnswer,
    LlmContextTooLong,
    LlmError,
)
from codeexec_lsp.llm.prompts import PROMPT_VERSION, estimate_tokens, explain_messages
from codeexec_lsp.run_history import RunHistory
from codeexec_lsp.snippet import Snippet

EXPLAIN_MAX_TOKENS = 1500
# `on_text` gets the whole text so far: calling it for every delta would cost quadratic time
# in the answer's length, so it is called at most this often (and once at the end).
TEXT_REPORT_INTERVAL_S = 0.05


class ExcludedFile(LlmError):
    """The file matches codeexec.llm.exclude: nothing about it may be sent to a model."""


def check_not_excluded(path: str, patterns: Sequence[str]) -> None:
    posix = PurePath(path).as_posix()
    for pattern in patterns:
        candidates = {pattern, pattern.removeprefix("**/")}
        if any(
            fnmatch.fnmatch(posix, p) or fnmatch.fnmatch(PurePath(posix).name, p)
            for p in candidates
        ):
            raise ExcludedFile(
                f"{PurePath(path).name} matches codeexec.llm.exclude ({pattern!r}): "
                "nothing from it is sent to a model. Change llm.exclude to allow it."
            )


def trimmed(ctx: CodeContext) -> CodeContext:
    """The smaller context to retry with when a model's context window is too small."""
    return replace(ctx, enclosing=None, imports="")


@dataclass(frozen=True)
class Explanation:
    markdown: str
    cached: bool
    prompt_tokens: int


async def explain(
    model: ChatModel,
    ctx: CodeContext,
    cache: TextCache | None = None,
    on_text: Callable[[str], None] | None = None,
) -> Explanation:
    """Stream an explanation (calling `on_text` with the text so far); repeats come from cache."""
    messages = explain_messages(ctx)
    key = cache_key(model.name, PROMPT_VERSION, [(m.role, m.content) for m in messages])
    if cache is not None and (hit := cache.get(key)) is not None:
        return Explanation(hit, cached=True, prompt_tokens=estimate_tokens(messages))
    try:
        markdown = await _stream(model, messages, on_text)
    except LlmContextTooLong:
        messages = explain_messages(trimmed(ctx))
        markdown = await _stream(model, messages, on_text)
    markdown = markdown.strip()
    if cache is not None:
        cache.put(key, markdown)
    return Explanation(markdown, cached=False, prompt_tokens=estimate_tokens(messages))


async def _stream(
    model: ChatModel, messages: list[ChatMessage], on_text: Callable[[str], None] | None
) -> str:
    parts: list[str] = []
    reported_at = float("-inf")
    reported = 0
    async for delta in model.stream(messages, max_tokens=EXPLAIN_MAX_TOKENS):
        parts.append(delta)
        now = time.monotonic()
        if on_text is not None and now - reported_at >= TEXT_REPORT_INTERVAL_S:
            on_text("".join(parts))
            reported_at, reported = now, len(parts)
    text = "".join(parts)
    if on_text is not None and reported < len(parts):
        on_text(text)
    if not text.strip():
        raise LlmBadAnswer("The model returned an empty explanation. Try again or another model.")
    return text


async def explain_snippet(
    model: ChatModel,
    document: str,
    code: Snippet,
    history: RunHistory,
    uri: str,
    cache: TextCache | None,
    report: Callable[[str], None],
) -> Explanation:
    """Explain the snippet's lines, grounded in the last run overlapping them (what it
    printed or raised); `report` hears the answer's length in words as it streams."""
    record = history.overlapping(uri, code.first_line, code.last_line)
    ctx = build_context(
        document,
        code.path,
        code.first_line,
        code.last_line,
        last_run=record.result if record else None,
    )

    def streamed(text: str) -> None:
        report(f"{len(text.split())} words")

    return await explain(model, ctx, cache, on_text=streamed)


def explanation_document(folder: Path, code: Snippet, markdown: str) -> Path:
    """Write the explanation as a Markdown document the editor can open beside the code:
    one file per lines, so explaining them again replaces it. Raises OSError."""
    stem = code.path.rsplit("/", 1)[-1].removesuffix(".py")
    target = folder / f"{stem}-lines-{code.first_line + 1}-{code.last_line + 1}.md"
    folder.mkdir(parents=True, exist_ok=True)
    heading = f"# {stem}.py, {code.describe()}\n\n"
    target.write_text(heading + markdown + "\n", encoding="utf-8")
    return target
