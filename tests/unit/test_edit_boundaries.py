"""Edits at the edges: empty documents, the last line, lone CR endings, long files with many
blank lines, and positions measured in the negotiated encoding (found by mutation testing)."""

from __future__ import annotations

import pytest
from lsprotocol import types as lsp

from codeexec_lsp.edits import (
    LineEdit,
    apply_line_edits,
    edits_for_replacement,
    minimal_line_edits,
    replace_range,
    to_workspace_edit,
)


def test_appending_after_a_terminated_last_line_terminates_the_new_one() -> None:
    assert replace_range("a\n", 1, 1, "b") == "a\nb\n"
    assert replace_range("a\r\n", 1, 1, "b\nc") == "a\r\nb\r\nc\r\n"
    assert replace_range("a", 1, 1, "b") == "a\nb"  # the document's own convention


def test_an_empty_document_takes_the_new_text_as_it_is() -> None:
    assert replace_range("", 0, 0, "x") == "x"
    assert replace_range("", 0, 0, "x\n") == "x\n"


def test_lone_carriage_returns_are_line_endings_too() -> None:
    assert replace_range("a\rb\r", 1, 2, "c") == "a\rc\r"


def test_edits_out_of_order_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match=r"^edits overlap or are not in document order$"):
        apply_line_edits("a\nb\nc\n", [LineEdit(2, 3, "z\n"), LineEdit(0, 1, "y\n")])


def test_changing_one_line_of_a_long_target_edits_only_that_line() -> None:
    document = "def f():\n    a = 1\n    b = 2\n    c = 3\n    return a\n\nf()\n"
    new_document, edits = edits_for_replacement(
        document, 0, 5, "def f():\n    a = 1\n    b = 20\n    c = 3\n    return a\n"
    )
    assert edits == [LineEdit(2, 3, "    b = 20\n")]
    assert new_document == document.replace("b = 2\n", "b = 20\n")


def test_frequent_lines_in_a_long_file_do_not_grow_the_hunk() -> None:
    # Past 200 lines difflib's autojunk treats lines this frequent (blank ones) as noise: the
    # hunk would then rewrite all 251 lines instead of the one that changed.
    old = "a = 1\n" + "\n" * 250
    assert minimal_line_edits(old, "a = 2\n" + "\n" * 250) == [LineEdit(0, 1, "a = 2\n")]
    assert minimal_line_edits(old, "\n" * 250) == [LineEdit(0, 1, "")]


def test_an_empty_document_is_edited_at_its_start() -> None:
    edit = to_workspace_edit("file:///a.py", 3, [], [LineEdit(0, 0, "x = 1\n")])
    [change] = edit.document_changes or []
    assert isinstance(change, lsp.TextDocumentEdit)
    [text_edit] = change.edits
    zero = lsp.Position(line=0, character=0)
    assert text_edit.range == lsp.Range(start=zero, end=zero)


@pytest.mark.parametrize(
    ("encoding", "units"),
    [
        (lsp.PositionEncodingKind.Utf8, 6),
        (lsp.PositionEncodingKind.Utf16, 3),
        (lsp.PositionEncodingKind.Utf32, 2),
    ],
)
def test_the_end_of_an_unterminated_last_line_is_measured_in_the_negotiated_units(
    encoding: lsp.PositionEncodingKind, units: int
) -> None:
    # pygls hands lines with their endings; the last one has none.
    lines = ["a = 1\n", "é😀"]
    edit = to_workspace_edit(
        "file:///a.py",
        1,
        lines,
        [LineEdit(1, 2, "b\n"), LineEdit(2, 2, "c\n")],
        position_encoding=encoding,
    )
    [change] = edit.document_changes or []
    assert isinstance(change, lsp.TextDocumentEdit)
    replace, append = change.edits
    end = lsp.Position(line=1, character=units)
    assert replace.range == lsp.Range(start=lsp.Position(line=1, character=0), end=end)
    assert append.range == lsp.Range(start=end, end=end)
