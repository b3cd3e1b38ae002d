"""RunResults as the things editors show: diagnostics, hover Markdown, inlay hints.

Results count columns in code points; the client may count UTF-16 or UTF-8 units, so every
column goes through `client_column` with the negotiated position encoding.

Everything the code produced (output, values, exception type and message, traceback, file and
function names) is text chosen by the code: it is clipped here again (a diagnostic of at most
a few KB; the hover shows more, with a count of what was cut), and in hover Markdown it is
fenced or escaped, so a link, a remote image or HTML in an exception never renders live.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lsprotocol import types as lsp

from codeexec_lsp.positions import to_client as client_column
from codeexec_lsp.present_outputs import hint_text
from codeexec_lsp.results import ErrorInfo, RunResult
from codeexec_lsp.run_history import RunRecord

SOURCE = "codeexec"
HINT_MAX_CHARS = 40
HOVER_MAX_CHARS = 4000
DIAGNOSTIC_MAX_CHARS = 2000
FRAME_NAME_MAX_CHARS = 200
# Every ASCII punctuation character may be backslash-escaped in CommonMark (and in marked, VS
# Code's parser); escaping them all (but `/`, which means nothing alone) also breaks bare-URL
# autolinks (`https\://`, `www\.`).
_MARKDOWN_PUNCTUATION = re.compile(r"([!-.:-@\[-`{-~])")


def _line_text(lines: Sequence[str], line: int) -> str:
    return lines[line].rstrip("\r\n") if 0 <= line < len(lines) else ""


def _position(lines: Sequence[str], line: int, column: int, encoding: str) -> lsp.Position:
    return lsp.Position(
        line=line, character=client_column(_line_text(lines, line), column, encoding)
    )


def _line_range(lines: Sequence[str], line: int, encoding: str) -> lsp.Range:
    text = _line_text(lines, line)
    start = len(text) - len(text.lstrip())
    return lsp.Range(
        start=_position(lines, line, start, encoding),
        end=_position(lines, line, len(text.rstrip()), encoding),
    )


def _error_range(
    error: ErrorInfo | None, record: RunRecord, lines: Sequence[str], encoding: str
) -> lsp.Range:
    if error is None or error.line is None:
        return _line_range(lines, record.first_line, encoding)
    line = error.line - 1
    text = _line_text(lines, line)
    if error.column is None:
        return _line_range(lines, line, encoding)
    start = min(error.column, len(text))
    if error.end_line is not None and error.end_column is not None and error.end_line - 1 >= line:
        end_line, end_col = error.end_line - 1, error.end_column
        if end_line == line and end_col <= start:
            end_col = len(text.rstrip())
    else:
        end_line, end_col = line, len(text.rstrip())
    if end_line == line and end_col <= start:
        end_col = start + 1  # never an empty range: some editors would not show it
    return lsp.Range(
        start=_position(lines, line, start, encoding),
        end=_position(lines, end_line, end_col, encoding),
    )


def diagnostics(
    uri: str,
    records: Sequence[RunRecord],
    lines: Sequence[str],
    encoding: str,
    related_information: bool = True,
) -> list[lsp.Diagnostic]:
    found: list[lsp.Diagnostic] = []
    for record in records:
        result = record.result
        if result.status in ("ok", "cancelled", "internal"):
            continue
        error = result.error
        severity = (
            lsp.DiagnosticSeverity.Error
            if result.status == "error"
            else lsp.DiagnosticSeverity.Warning
        )
        code = (
            _clip_middle(error.type, FRAME_NAME_MAX_CHARS)
            if error
            else {"timeout": "TimeoutError"}.get(result.status, "Limit")
        )
        message = diagnostic_message(error.headline if error else (result.message or result.status))
        related = _related(uri, record, lines, encoding) if related_information else None
        found.append(
            lsp.Diagnostic(
                range=_error_range(error, record, lines, encoding),
                message=message,
                severity=severity,
                code=code,
                source=SOURCE,
                related_information=related or None,
            )
        )
    return found


def _related(
    uri: str, record: RunRecord, lines: Sequence[str], encoding: str
) -> list[lsp.DiagnosticRelatedInformation]:
    error = record.result.error
    if error is None:
        return []
    in_file = [frame for frame in error.frames if frame.file == record.path]
    # The innermost frame is the diagnostic itself; the others show how it got there.
    callers = in_file[:-1]
    return [
        lsp.DiagnosticRelatedInformation(
            location=lsp.Location(uri=uri, range=_line_range(lines, frame.line - 1, encoding)),
            message=f"called from {_clip_middle(frame.name, FRAME_NAME_MAX_CHARS)} "
            f"(line {frame.line})",
        )
        for frame in callers
    ]


# --- hover --------------------------------------------------------------------------------


def _fence(text: str, language: str = "text") -> str:
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def _clip(text: str, limit: int = HOVER_MAX_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit:,} more characters)"


def _clip_middle(text: str, limit: int) -> str:
    """Head and tail within `limit` characters, with the count cut between them."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = limit - head
    return f"{text[:head]} … ({len(text) - limit:,} more characters) … {text[-tail:]}"


def diagnostic_message(text: str) -> str:
    """A diagnostic's message: plain text of at most about DIAGNOSTIC_MAX_CHARS; editors
    show it inline and in lists, where megabytes would freeze them. Hover shows more."""
    if len(text) <= DIAGNOSTIC_MAX_CHARS:
        return text
    cut = len(text) - DIAGNOSTIC_MAX_CHARS
    return f"{text[:DIAGNOSTIC_MAX_CHARS]}… ({cut:,} more characters; hover for more)"


def _code_span(text: str) -> str:
    """`text` as inline code: literal in every Markdown parser, no autolink either."""
    text = " ".join(text.splitlines())
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def escape_markdown(text: str) -> str:
    """`text` shown literally in Markdown: no emphasis, link, image, HTML or autolink."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)


def hover_markdown(record: RunRecord) -> str:
    result = record.result
    status = {
        "ok": "ran fine",
        "error": "raised",
        "timeout": "timed out",
        "limit": "hit a limit",
        "cancelled": "was cancelled",
        "internal": "could not run",
    }[result.status]
    label = escape_markdown(record.label)
    parts = [f"**codeexec** · {label} {status} · {result.duration_ms:.0f} ms"]
    if result.message:
        # Ours, but it may quote what the interpreter printed while failing to start.
        parts.append(escape_markdown(_clip(result.message)))
    if result.stdout:
        parts.append(_fence(_clip(result.stdout)))
    if result.stderr:
        parts.append("stderr:\n" + _fence(_clip(result.stderr)))
    if result.value is not None:
        # A fence opens only at the start of a line: after "→ " it would be an inline code
        # span that swallows every later fence (VS Code then shows the plot's image as text).
        parts.append("→\n" + _fence(_clip(result.value), "python"))
    if result.error is not None and result.status == "error":
        where = f" at line {result.error.line}" if result.error.line else ""
        # The type and message are the code's text: fenced, never live Markdown.
        parts.append(f"**Exception**{where}:\n" + _fence(_clip(result.error.headline)))
        if result.error.traceback:
            parts.append(_fence(_clip_traceback(result.error.traceback), "pytb"))
    if result.truncated:
        parts.append("_Output truncated to the head and tail (codeexec.maxOutputBytes)._")
    if _clipped_in_hover(result):
        # What hover cut is still in the run's record: the page shows all of it.
        parts.append(
            "_Clipped for hover: **Show output** (a code action on these lines) shows all of it._"
        )
    if not (
        result.stdout or result.stderr or result.value is not None or result.error or result.outputs
    ):
        parts.append("_No output._")
    sandbox = result.extra.get("sandbox")
    if isinstance(sandbox, dict) and sandbox.get("summary"):
        # What confined this run, e.g. "network off · writes limited to the workspace ...";
        # a missing layer is marked ⚠ rather than left out.
        parts.append(f"_{escape_markdown(str(sandbox['summary']))}_")
    where = f"{result.executor} · {result.interpreter}" if result.interpreter else result.executor
    if result.cwd:
        where += f" · cwd {result.cwd}"
    # Paths are the user's (a folder may be named `[x](y)`): a code span shows them as they are.
    parts.append(_code_span(where))
    return "\n\n".join(parts)


def _clipped_in_hover(result: RunResult) -> bool:
    """Whether hover_markdown cut any of the run's texts at HOVER_MAX_CHARS."""
    texts = [result.message, result.stdout, result.stderr, result.value or ""]
    if result.error is not None and result.status == "error":
        texts += [result.error.headline, result.error.traceback or ""]
    return any(len(text) > HOVER_MAX_CHARS for text in texts)


def _clip_traceback(text: str, limit: int = HOVER_MAX_CHARS) -> str:
    """A traceback's first lines say where the call began, its last ones what was raised."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    cut = len(text) - limit
    return f"{text[:head]}\n… ({cut:,} more characters) …\n{text[-tail:]}"


def explanation_markdown(markdown: str) -> str:
    return "**codeexec** · explanation\n\n" + _clip(markdown, 2 * HOVER_MAX_CHARS)


# --- inlay hints --------------------------------------------------------------------------


def _shorten(text: str, limit: int = HINT_MAX_CHARS) -> str:
    # Cut first: a hint of 40 characters need not split a message of megabytes.
    text = " ".join(text[: limit * 8].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hint_label(result: RunResult) -> str:
    if result.status == "ok":
        rich = hint_text(result)  # `→ 🖼 figure`, `→ DataFrame 100×3` (present_outputs.py)
        if rich is not None:
            return _shorten(rich)
        if result.value is not None:
            return _shorten("→ " + result.value)
        first_output = (result.stdout.strip() or result.stderr.strip()).split("\n", 1)[0]
        if first_output:
            return _shorten("→ " + first_output)
        return _shorten(f"✓ {result.duration_ms:.0f} ms")
    if result.status == "error" and result.error is not None:
        return _shorten("✗ " + result.error.headline)
    if result.status == "timeout":
        return _shorten("⏱ timed out")
    return _shorten(f"✗ {result.status}: {result.message}")


def inlay_hints(
    records: Sequence[RunRecord], lines: Sequence[str], encoding: str, first: int, last: int
) -> list[lsp.InlayHint]:
    hints = []
    for record in records:
        if not first <= record.last_line <= last or record.result.status == "cancelled":
            continue
        text = _line_text(lines, record.last_line)
        hints.append(
            lsp.InlayHint(
                position=_position(lines, record.last_line, len(text), encoding),
                label=hint_label(record.result),
                padding_left=True,
            )
        )
    return hints
