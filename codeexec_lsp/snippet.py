"""Turn a selection, a cursor position or a line range into the code that will run.

All positions here are 0-based lines and code-point columns; converting from the client's
position encoding (UTF-16 by default) is the server's job.
"""

from __future__ import annotations

import ast
import bisect
import os
import re
import stat
from dataclasses import dataclass
from typing import Literal

from codeexec_lsp.lines import split_lines

SnippetKind = Literal["selection", "cell", "statement", "file", "lines"]

CELL_MARKER = re.compile(r"^\s*#\s*(%%|In\[\s*\d*\s*\]:)")
# A file the editor has not opened is read from disk; a bigger one is not source code.
MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Snippet:
    """Code to run plus where it stands in the document.

    `first_line`/`last_line` are 0-based and inclusive; `column` is the number of code points
    removed from the start of every line (the common indentation, or where a partial
    one-line selection starts).
    """

    code: str
    path: str
    document: str
    first_line: int
    last_line: int
    column: int = 0
    kind: SnippetKind = "selection"

    @property
    def line_span(self) -> tuple[int, int]:
        return (self.first_line, self.last_line)

    def describe(self) -> str:
        first, last = self.first_line + 1, self.last_line + 1
        lines = f"line {first}" if first == last else f"lines {first}–{last}"
        return f"{self.kind} ({lines})" if self.kind in ("cell", "statement") else lines


class SnippetError(ValueError):
    """The requested range does not describe runnable code (e.g. it is past the end)."""


class _Parsed:
    """What the lookups below derive from one document text, each computed on first use."""

    __slots__ = ("lines", "markers", "statements", "unparsable")

    def __init__(self) -> None:
        self.lines: list[str] | None = None
        self.markers: list[int] | None = None
        self.statements: list[tuple[int, int]] | None = None
        self.unparsable = False


# The last few texts looked at: the server asks about one version of a document many times
# (a code action at every cursor move, then a run), and a 10,000-line document costs
# milliseconds per split, marker scan or parse. Keyed by the text itself: pygls hands out
# the same str object until the document changes, so a lookup is a hash already computed
# and an identity check.
_PARSED: dict[str, _Parsed] = {}
_PARSED_KEPT = 8


def _parsed(document: str) -> _Parsed:
    found = _PARSED.get(document)
    if found is None:
        if len(_PARSED) >= _PARSED_KEPT:
            del _PARSED[next(iter(_PARSED))]
        found = _PARSED[document] = _Parsed()
    return found


def document_lines(document: str) -> list[str]:
    """The document's lines without their endings; shared between callers: do not change."""
    parsed = _parsed(document)
    if parsed.lines is None:
        parsed.lines = split_lines(document)
    return parsed.lines


def cell_markers(document: str) -> list[int]:
    """The 0-based lines of the document's `# %%` (or `# In[ ]:`) cell markers."""
    parsed = _parsed(document)
    if parsed.markers is None:
        parsed.markers = [
            index
            for index, text in enumerate(document_lines(document))
            if "#" in text and CELL_MARKER.match(text)
        ]
    return parsed.markers


def _common_prefix(texts: list[str]) -> str:
    shortest, longest = min(texts), max(texts)
    for index, char in enumerate(shortest):
        if char != longest[index]:
            return shortest[:index]
    return shortest


def dedent(lines: list[str]) -> tuple[str, int]:
    """Remove the indentation common to the code lines; return (text, columns removed).

    Blank and comment lines do not count (a comment less indented than the code must not
    stop the dedent); when they are less indented than the rest they lose their indentation.
    """
    code_lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not code_lines:
        return "\n".join(line.strip() for line in lines), 0
    indents = [line[: len(line) - len(line.lstrip())] for line in code_lines]
    prefix = _common_prefix(indents)
    out = [line[len(prefix) :] if line.startswith(prefix) else line.lstrip() for line in lines]
    return "\n".join(out) + "\n", len(prefix)


def for_lines(
    document: str, path: str, first: int, last: int, kind: SnippetKind = "lines"
) -> Snippet:
    """Whole lines `first`..`last` (0-based, inclusive)."""
    lines = document_lines(document)
    if not lines:
        raise SnippetError("the document is empty: there is nothing to run")
    if first < 0 or last < first:
        raise SnippetError(f"bad line range {first + 1}-{last + 1}: the start must come first")
    if first >= len(lines):
        raise SnippetError(f"line {first + 1} is past the end of the document ({len(lines)} lines)")
    last = min(last, len(lines) - 1)
    code, column = dedent(lines[first : last + 1])
    return Snippet(code, path, document, first, last, column, kind)


def for_selection(
    document: str, path: str, start: tuple[int, int], end: tuple[int, int]
) -> Snippet:
    """A non-empty selection given as (line, column) pairs, end exclusive.

    A selection inside one line runs exactly the selected text (an expression, say);
    a selection over several lines runs those whole lines, as editors' line-wise
    visual mode and "run selection" tools do.
    """
    lines = document_lines(document)
    (start_line, start_col), (end_line, end_col) = sorted([start, end])
    if not lines or start_line >= len(lines):
        raise SnippetError("the selection is past the end of the document")
    if end_line > start_line and end_col == 0:
        end_line -= 1  # a line-wise selection ends at column 0 of the next line
    end_line = min(end_line, len(lines) - 1)
    if start_line == end_line:
        line = lines[start_line]
        text = line[start_col:end_col] if end_col > start_col else line[start_col:]
        if text.strip() and text.strip() != line.strip():
            leading = len(text) - len(text.lstrip())
            return Snippet(
                text.strip() + "\n",
                path,
                document,
                start_line,
                start_line,
                start_col + leading,
                "selection",
            )
    return for_lines(document, path, start_line, end_line, "selection")


def cell_span(document: str, line: int) -> tuple[int, int] | None:
    """The `# %%` cell around `line` (0-based, inclusive span), or None without markers."""
    markers = cell_markers(document)
    if not markers:
        return None
    later = bisect.bisect_right(markers, line)  # the index of the first marker after `line`
    first = markers[later - 1] if later else 0
    last = markers[later] - 1 if later < len(markers) else len(document_lines(document)) - 1
    return (first, max(first, last))


def _top_level_spans(document: str) -> list[tuple[int, int]] | None:
    """(first, last) of each top-level statement, decorators included; None if the
    document does not parse."""
    parsed = _parsed(document)
    if parsed.statements is None and not parsed.unparsable:
        try:
            tree = ast.parse(document)
        except (SyntaxError, ValueError):  # ValueError: lone surrogates, NUL on older Pythons
            parsed.unparsable = True
        else:
            spans = []
            for node in tree.body:
                first = node.lineno - 1
                decorators = getattr(node, "decorator_list", [])
                if decorators:
                    first = min(first, *(d.lineno - 1 for d in decorators))
                spans.append((first, (node.end_lineno or node.lineno) - 1))
            parsed.statements = spans
    return parsed.statements


def statement_span(document: str, line: int) -> tuple[int, int] | None:
    """The top-level statement (whole block, decorators included) that contains `line`."""
    spans = _top_level_spans(document)
    if spans is None:
        return _statement_span_by_indentation(document, line)
    for first, last in spans:
        if first <= line <= last:
            return (first, last)
    return None


_CONTINUATION = re.compile(r"^(else|elif|except|finally|case)\b|^[)\]}]")


def _statement_span_by_indentation(document: str, line: int) -> tuple[int, int] | None:
    """Fallback when the document does not parse: follow indentation."""
    lines = document_lines(document)
    if not 0 <= line < len(lines) or not lines[line].strip():
        return None

    def top_level(index: int) -> bool:
        text = lines[index]
        return bool(text.strip()) and not text[0].isspace() and not text.startswith("#")

    first = line
    while first > 0 and not (top_level(first) and not _CONTINUATION.match(lines[first])):
        first -= 1
    last = line
    while last + 1 < len(lines) and not (
        top_level(last + 1) and not _CONTINUATION.match(lines[last + 1])
    ):
        last += 1
    while last > first and not lines[last].strip():
        last -= 1
    return (first, last)


def for_position(document: str, path: str, line: int) -> Snippet:
    """What an empty selection means: its `# %%` cell, else its top-level statement."""
    lines = document_lines(document)
    if not 0 <= line < len(lines):
        raise SnippetError(f"line {line + 1} is outside the document ({len(lines)} lines)")
    cell = cell_span(document, line)
    if cell is not None:
        return for_lines(document, path, *cell, kind="cell")
    statement = statement_span(document, line)
    if statement is None:
        raise SnippetError(f"no statement at line {line + 1}: put the cursor on some code")
    return for_lines(document, path, *statement, kind="statement")


def whole_file(document: str, path: str) -> Snippet:
    lines = document_lines(document)
    if not lines:
        raise SnippetError("the document is empty: there is nothing to run")
    return Snippet(document, path, document, 0, len(lines) - 1, 0, "file")


def read_source_file(path: str, limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes; SnippetError says why not.

    Only regular files: /dev/zero never ends, a FIFO blocks, and /dev/stdin is the server's
    own protocol stream. O_NONBLOCK keeps opening a FIFO from blocking before we can look.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        raise SnippetError(getattr(exc, "strerror", None) or str(exc)) from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SnippetError("it is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SnippetError(exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise SnippetError(f"it is larger than {limit // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SnippetError("it is not UTF-8 text") from exc
