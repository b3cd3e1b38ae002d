"""Minimal line edits, range replacement, versioned LSP edits and unified diffs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types as lsp

from codeexec_lsp.edits import (
    EditOutsideTarget,
    LineEdit,
    apply_line_edits,
    edits_for_replacement,
    ensure_within,
    minimal_line_edits,
    replace_range,
    split_lines,
    to_workspace_edit,
    unified_diff,
)

# --- an LSP client's side, to check the edits do what they say ----------------------------


def _offset(text: str, position: lsp.Position, encoding: str) -> int:
    lines = split_lines(text, keepends=True)
    if position.line >= len(lines):
        assert position.character == 0
        return len(text)
    offset = sum(len(line) for line in lines[: position.line])
    line = lines[position.line]
    units = 0
    for index, char in enumerate(line):
        if units >= position.character:
            return offset + index
        units += _units(char, encoding)
    return offset + len(line)


def _units(char: str, encoding: str) -> int:
    if encoding == "utf-16":
        return len(char.encode("utf-16-le")) // 2
    if encoding == "utf-8":
        return len(char.encode("utf-8"))
    return 1


def _apply_workspace_edit(text: str, edit: lsp.WorkspaceEdit, encoding: str = "utf-16") -> str:
    assert edit.document_changes is not None
    (document_edit,) = edit.document_changes
    assert isinstance(document_edit, lsp.TextDocumentEdit)
    for text_edit in reversed(list(document_edit.edits)):
        assert isinstance(text_edit, lsp.TextEdit)
        start = _offset(text, text_edit.range.start, encoding)
        end = _offset(text, text_edit.range.end, encoding)
        text = text[:start] + text_edit.new_text + text[end:]
    return text


# --- split_lines --------------------------------------------------------------------------


def test_split_lines_follows_lsp_not_str_splitlines() -> None:
    text = "a\x0cb\r\nc\rd\ne\u2028f"
    assert split_lines(text) == ["a\x0cb", "c", "d", "e\u2028f"]
    assert split_lines(text, keepends=True) == ["a\x0cb\r\n", "c\r", "d\n", "e\u2028f"]
    assert split_lines("a\nb\n") == split_lines("a\nb") == ["a", "b"]
    assert split_lines("") == []
    assert split_lines("\n\n") == ["", ""]


# --- minimal_line_edits -------------------------------------------------------------------

OLD = "def f(xs):\n    total = sum(xs)\n    return total / len(xs)\n\n\nprint(f([1]))\n"


def test_one_changed_line_is_one_edit() -> None:
    new = OLD.replace("return total / len(xs)", "return total / len(xs) if xs else 0.0")
    assert minimal_line_edits(OLD, new) == [
        LineEdit(2, 3, "    return total / len(xs) if xs else 0.0\n")
    ]


def test_insertion_and_deletion_touch_no_unchanged_line() -> None:
    new = OLD.replace("    total", "    if not xs:\n        return 0.0\n    total")
    assert minimal_line_edits(OLD, new) == [LineEdit(1, 1, "    if not xs:\n        return 0.0\n")]
    assert minimal_line_edits(new, OLD) == [LineEdit(1, 3, "")]
    assert minimal_line_edits(OLD, OLD) == []


def test_a_changed_line_ending_is_a_change() -> None:
    assert minimal_line_edits("a\nb", "a\nb\n") == [LineEdit(1, 2, "b\n")]
    assert minimal_line_edits("a\r\nb\r\n", "a\nb\r\n") == [LineEdit(0, 1, "a\n")]


_LINE = st.sampled_from(["a", "b", "c", "", "    x = 1", "\tpass", "é🙂"])
_ENDING = st.sampled_from(["\n", "\r\n"])


@st.composite
def _texts(draw: st.DrawFn) -> str:
    lines = draw(st.lists(_LINE, max_size=12))
    ending = draw(_ENDING)
    final = draw(st.booleans())
    return ending.join(lines) + (ending if final and lines else "")


@settings(max_examples=300, deadline=None)
@given(old=_texts(), new=_texts())
def test_minimal_line_edits_property(old: str, new: str) -> None:
    edits = minimal_line_edits(old, new)
    assert apply_line_edits(old, edits) == new
    old_lines = split_lines(old, keepends=True)
    previous_end = -1
    for edit in edits:
        # Hunks are separated by at least one unchanged line, so LSP sees no overlap.
        assert edit.start_line > previous_end
        previous_end = edit.end_line
        replaced = split_lines(edit.new_text, keepends=True)
        if edit.start_line < edit.end_line and replaced:
            # A hunk never starts or ends with a line that did not change.
            assert old_lines[edit.start_line] != replaced[0]
            assert old_lines[edit.end_line - 1] != replaced[-1]
        assert edit.start_line < edit.end_line or replaced  # no empty no-op edit
    # The same edits as an LSP edit produce the same text, in every position encoding.
    for encoding in ("utf-16", "utf-8", "utf-32"):
        workspace_edit = to_workspace_edit(
            "file:///t.py", 3, old.splitlines(True), edits, position_encoding=encoding
        )
        assert _apply_workspace_edit(old, workspace_edit, encoding) == new


@settings(max_examples=200, deadline=None)
@given(
    doc=_texts(),
    data=st.data(),
    replacement=st.lists(_LINE, max_size=5).map("\n".join),
)
def test_edits_for_replacement_stay_inside_the_range(
    doc: str, data: st.DataObject, replacement: str
) -> None:
    count = len(split_lines(doc))
    start = data.draw(st.integers(0, count))
    end = data.draw(st.integers(start, count))
    new_document, edits = edits_for_replacement(doc, start, end, replacement)
    assert new_document == replace_range(doc, start, end, replacement)
    assert apply_line_edits(doc, edits) == new_document
    if not (start == end == count and count and not doc.endswith(("\n", "\r"))):
        ensure_within(edits, start, end)


# --- replace_range ------------------------------------------------------------------------


def test_replace_range_keeps_the_document_line_endings() -> None:
    doc = "a\r\nb\r\nc\r\n"
    assert replace_range(doc, 1, 2, "x\ny") == "a\r\nx\r\ny\r\nc\r\n"
    assert replace_range(doc, 1, 2, "x\n") == "a\r\nx\r\nc\r\n"


def test_replace_range_at_the_end_keeps_the_final_newline_convention() -> None:
    assert replace_range("a\nb", 1, 2, "x\n") == "a\nx"
    assert replace_range("a\nb\n", 1, 2, "x") == "a\nx\n"
    assert replace_range("a\nb", 2, 2, "c") == "a\nb\nc"
    assert replace_range("", 0, 0, "x\n") == "x\n"


def test_replace_range_deletes_and_inserts() -> None:
    assert replace_range("a\nb\nc\n", 1, 2, "") == "a\nc\n"
    assert replace_range("a\nc\n", 1, 1, "b") == "a\nb\nc\n"
    assert replace_range("a\nb\n", 0, 1, "\n") == "\nb\n"  # one blank line


def test_replace_range_rejects_a_range_outside_the_document() -> None:
    with pytest.raises(ValueError, match="outside a document of 2 lines"):
        replace_range("a\nb\n", 1, 3, "x")


def test_edits_for_replacement_never_slide_across_the_boundary() -> None:
    # Diffing whole documents may place the inserted blank line after line 1, outside
    # the target (line 0); diffing only the target cannot.
    doc = "a\n\nb\n"
    new_document, edits = edits_for_replacement(doc, 0, 1, "a\n\n")
    assert new_document == "a\n\n\nb\n"
    assert edits == [LineEdit(1, 1, "\n")]


# --- to_workspace_edit --------------------------------------------------------------------


def test_workspace_edit_is_versioned_and_whole_line() -> None:
    new = OLD.replace("return total / len(xs)", "return total / len(xs) if xs else 0.0")
    edit = to_workspace_edit(
        "file:///w/stats.py", 7, OLD.splitlines(True), minimal_line_edits(OLD, new)
    )
    assert edit.changes is None
    assert edit.document_changes is not None
    (document_edit,) = edit.document_changes
    assert isinstance(document_edit, lsp.TextDocumentEdit)
    assert document_edit.text_document == lsp.OptionalVersionedTextDocumentIdentifier(
        uri="file:///w/stats.py", version=7
    )
    (text_edit,) = document_edit.edits
    assert isinstance(text_edit, lsp.TextEdit)
    assert text_edit.range == lsp.Range(lsp.Position(2, 0), lsp.Position(3, 0))
    assert text_edit.new_text == "    return total / len(xs) if xs else 0.0\n"


def test_last_line_without_newline_ends_at_its_length_in_the_encoding() -> None:
    doc = "x = 1\ns = '🙂é'"
    edits = minimal_line_edits(doc, "x = 1\ns = 'ok'")
    ends = {}
    for encoding in ("utf-16", "utf-8", "utf-32"):
        workspace_edit = to_workspace_edit(
            "file:///t.py", 1, split_lines(doc), edits, position_encoding=encoding
        )
        assert workspace_edit.document_changes is not None
        document_edit = workspace_edit.document_changes[0]
        assert isinstance(document_edit, lsp.TextDocumentEdit)
        ends[encoding] = document_edit.edits[0].range.end
    assert ends["utf-16"] == lsp.Position(1, 9)
    assert ends["utf-8"] == lsp.Position(1, 12)
    assert ends["utf-32"] == lsp.Position(1, 8)


def test_document_lines_with_or_without_endings_and_form_feeds() -> None:
    # pygls splits with str.splitlines, which breaks at \x0c; the editor does not.
    doc = "a = 1\x0c\nb = 2\nc = 3\n"
    edits = minimal_line_edits(doc, "a = 1\x0c\nb = 20\nc = 3\n")
    assert edits == [LineEdit(1, 2, "b = 20\n")]
    for lines in (doc.splitlines(True), doc.split("\n"), split_lines(doc, keepends=True)):
        workspace_edit = to_workspace_edit("file:///t.py", 1, lines, edits)
        assert _apply_workspace_edit(doc, workspace_edit) == "a = 1\x0c\nb = 20\nc = 3\n"


def test_edits_outside_the_allowed_span_are_refused() -> None:
    edits = [LineEdit(4, 5, "x\n")]
    lines = ["l\n"] * 8
    with pytest.raises(EditOutsideTarget, match="lines 5-5 outside the target lines 2-4"):
        to_workspace_edit("file:///t.py", 1, lines, edits, allowed_span=(1, 4))
    to_workspace_edit("file:///t.py", 1, lines, edits, allowed_span=(4, 6))
    ensure_within([LineEdit(4, 4, "x\n")], 1, 4)  # an insertion at the boundary is fine


def test_overlapping_or_out_of_range_edits_are_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        to_workspace_edit(
            "file:///t.py", 1, ["a\n", "b\n"], [LineEdit(1, 2, ""), LineEdit(0, 1, "")]
        )
    with pytest.raises(ValueError, match="outside a document"):
        to_workspace_edit("file:///t.py", 1, ["a\n"], [LineEdit(0, 3, "")])


# --- unified_diff -------------------------------------------------------------------------


def test_unified_diff_for_the_cli() -> None:
    new = OLD.replace("return total / len(xs)", "return total / len(xs) if xs else 0.0")
    diff = unified_diff("stats.py", OLD, new)
    assert diff.startswith("--- a/stats.py\n+++ b/stats.py\n@@ -1,6 +1,6 @@\n")
    assert "-    return total / len(xs)\n+    return total / len(xs) if xs else 0.0\n" in diff
    assert unified_diff("stats.py", OLD, OLD) == ""


def test_unified_diff_marks_a_missing_final_newline() -> None:
    diff = unified_diff("t.py", "a\nb", "a\nc")
    assert diff.endswith("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n")
