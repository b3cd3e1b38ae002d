"""Minimal whole-line edits between two versions of a document, as text, diff or LSP edit.

Everything works on lines split the way LSP splits them (only ``\\r\\n``, ``\\r`` and ``\\n``
end a line) with their endings kept, so an edit's text semantics ("replace lines i..j")
and its LSP range ("(i, 0) to (j, 0)") describe exactly the same characters.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from lsprotocol import types as lsp

from codeexec_lsp.lines import LINE_BREAK as _LINE_BREAK
from codeexec_lsp.lines import split_lines


class EditOutsideTarget(ValueError):
    """An edit would change a line outside the range the user asked to change."""


@dataclass(frozen=True)
class LineEdit:
    """Replace lines ``start_line`` .. ``end_line - 1`` (0-based) of the old text.

    ``start_line == end_line`` is a pure insertion before ``start_line``. ``new_text`` is
    whole lines with their endings (only the document's very last line may lack one).
    """

    start_line: int
    end_line: int
    new_text: str


def _ending(line: str) -> str:
    if line.endswith("\r\n"):
        return "\r\n"
    if line.endswith(("\n", "\r")):
        return line[-1]
    return ""


def detect_newline(text: str) -> str:
    """The document's line ending: the first one it uses, ``\\n`` for a one-line text."""
    match = _LINE_BREAK.search(text)
    return match.group(0) if match else "\n"


def minimal_line_edits(old: str, new: str) -> list[LineEdit]:
    """The changed hunks turning ``old`` into ``new``, in document order; equal lines are
    never part of an edit. A line whose only change is its ending counts as changed."""
    old_lines = split_lines(old, keepends=True)
    new_lines = split_lines(new, keepends=True)
    # autojunk would treat frequent lines (blank lines, `return`) as noise in long files
    # and produce larger hunks than necessary.
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    return [
        LineEdit(i1, i2, "".join(new_lines[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def _check_sorted(edits: Sequence[LineEdit], line_count: int) -> None:
    previous_end = 0
    for edit in edits:
        if not 0 <= edit.start_line <= edit.end_line <= line_count:
            raise ValueError(f"edit {edit} is outside a document of {line_count} lines")
        if edit.start_line < previous_end:
            raise ValueError("edits overlap or are not in document order")
        previous_end = edit.end_line


def apply_line_edits(old: str, edits: Sequence[LineEdit]) -> str:
    """Apply non-overlapping edits given in document order (as from minimal_line_edits)."""
    lines = split_lines(old, keepends=True)
    _check_sorted(edits, len(lines))
    for edit in reversed(edits):
        lines[edit.start_line : edit.end_line] = [edit.new_text]
    return "".join(lines)


def replace_range(
    document_text: str, start_line: int, end_line_exclusive: int, new_text: str
) -> str:
    """The document with lines ``start_line`` .. ``end_line_exclusive - 1`` replaced.

    ``new_text`` may use any line ending and may or may not end with one: it is written
    with the document's line ending, ends with a line break whenever text follows it, and
    at the end of the document keeps the document's convention for a final line break.
    An empty ``new_text`` deletes the lines.
    """
    lines = split_lines(document_text, keepends=True)
    count = len(lines)
    if not 0 <= start_line <= end_line_exclusive <= count:
        raise ValueError(
            f"line range {start_line}..{end_line_exclusive} is outside a document of {count} lines"
        )
    if not new_text:
        return "".join(lines[:start_line] + lines[end_line_exclusive:])
    newline = detect_newline(document_text)
    if end_line_exclusive < count:
        final = newline
    elif end_line_exclusive > start_line:
        final = newline if _ending(lines[end_line_exclusive - 1]) else ""
    elif count:  # appending after the last line
        final = newline if _ending(lines[-1]) else ""
    else:
        final = newline if _ending(new_text) else ""
    body = newline.join(split_lines(new_text)) + final
    before = lines[:start_line]
    if start_line == count and count and not _ending(lines[-1]):
        # Appending after an unterminated last line has to terminate it first.
        before[-1] += newline
    return "".join(before) + body + "".join(lines[end_line_exclusive:])


def ensure_within(edits: Sequence[LineEdit], start_line: int, end_line_exclusive: int) -> None:
    """Raise EditOutsideTarget unless every edit lies in ``start_line .. end_line_exclusive``
    (an insertion exactly at either boundary touches no outside line and is allowed)."""
    for edit in edits:
        if edit.start_line < start_line or edit.end_line > end_line_exclusive:
            raise EditOutsideTarget(
                f"refusing an edit of lines {edit.start_line + 1}-{edit.end_line} outside the "
                f"target lines {start_line + 1}-{end_line_exclusive}"
            )


def edits_for_replacement(
    document_text: str, start_line: int, end_line_exclusive: int, new_text: str
) -> tuple[str, list[LineEdit]]:
    """Replace a line range and return (new document, minimal edits confined to that range).

    Only the range itself is diffed: diffing whole documents can legally slide an inserted
    blank line or a repeated line across the range boundary, which would touch a line the
    user did not ask to change.
    """
    new_document = replace_range(document_text, start_line, end_line_exclusive, new_text)
    old_lines = split_lines(document_text, keepends=True)
    new_lines = split_lines(new_document, keepends=True)
    first = start_line
    if start_line == len(old_lines) and old_lines and not _ending(old_lines[-1]):
        first -= 1  # the unterminated last line had to gain a line break
    tail = len(old_lines) - end_line_exclusive
    region_old = "".join(old_lines[first:end_line_exclusive])
    region_new = "".join(new_lines[first : len(new_lines) - tail])
    edits = [
        LineEdit(edit.start_line + first, edit.end_line + first, edit.new_text)
        for edit in minimal_line_edits(region_old, region_new)
    ]
    ensure_within(edits, first, end_line_exclusive)
    return new_document, edits


def _lines_of(document_lines: Sequence[str]) -> list[str]:
    # Accept lines with their endings (pygls' TextDocument.lines) or without (str.split):
    # rebuild the text and split it again the LSP way. pygls uses str.splitlines, which also
    # breaks at form feeds; re-splitting keeps our line numbers the editor's line numbers.
    if all(_ending(line) for line in document_lines[:-1]):
        text = "".join(document_lines)
    else:
        text = "\n".join(document_lines)
    return split_lines(text, keepends=True)


def _length(text: str, encoding: str) -> int:
    if encoding == lsp.PositionEncodingKind.Utf8:
        return len(text.encode("utf-8"))
    if encoding == lsp.PositionEncodingKind.Utf32:
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _position(lines: Sequence[str], line: int, encoding: str) -> lsp.Position:
    if line < len(lines):
        return lsp.Position(line=line, character=0)
    if not lines:
        return lsp.Position(line=0, character=0)
    last = lines[-1]
    if _ending(last):
        # After a final line break the editor has one more, empty line: its start is EOF.
        return lsp.Position(line=len(lines), character=0)
    return lsp.Position(line=len(lines) - 1, character=_length(last, encoding))


def to_workspace_edit(
    uri: str,
    version: int,
    document_lines: Sequence[str],
    edits: Sequence[LineEdit],
    *,
    allowed_span: tuple[int, int] | None = None,
    position_encoding: str = lsp.PositionEncodingKind.Utf16,
) -> lsp.WorkspaceEdit:
    """One versioned ``TextDocumentEdit`` with a whole-line ``TextEdit`` per hunk.

    Ranges go from the start of a line (character 0) to the start of the line after the
    hunk, so they mean the same in every position encoding. The one exception is a hunk
    that ends at the end of a document without a final line break: its range ends at the
    end of the last line, measured in ``position_encoding`` (the negotiated one).

    ``version`` makes the client refuse the edit if the document changed meanwhile.
    ``allowed_span`` (start, end exclusive) makes any edit outside it raise EditOutsideTarget.
    """
    lines = _lines_of(document_lines)
    _check_sorted(edits, len(lines))
    if allowed_span is not None:
        ensure_within(edits, *allowed_span)
    text_edits: list[lsp.TextEdit | lsp.AnnotatedTextEdit | lsp.SnippetTextEdit] = [
        lsp.TextEdit(
            range=lsp.Range(
                start=_position(lines, edit.start_line, position_encoding),
                end=_position(lines, edit.end_line, position_encoding),
            ),
            new_text=edit.new_text,
        )
        for edit in edits
    ]
    document_edit = lsp.TextDocumentEdit(
        text_document=lsp.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
        edits=text_edits,
    )
    return lsp.WorkspaceEdit(document_changes=[document_edit])


def unified_diff(path: str, old: str, new: str) -> str:
    """A git-style unified diff (``a/path`` → ``b/path``); empty when nothing changed."""
    out: list[str] = []
    for line in difflib.unified_diff(
        split_lines(old, keepends=True),
        split_lines(new, keepends=True),
        fromfile=f"a/{path}",
        tofile=f"b/{path}",
    ):
        if _ending(line):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)
