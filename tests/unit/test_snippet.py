"""Selections, cells and statements -> the code that runs and where it stands."""

from __future__ import annotations

import pytest

from codeexec_lsp import snippet

DOC = """import os

# %% first cell
def f(x):
    if x:
        y = 1
        # a comment
    # less indented comment
        return y
    return 0

# %% second cell
for i in range(3):
    print(i)
"""


def test_multiline_selection_is_dedented_and_keeps_its_place() -> None:
    code = snippet.for_selection(DOC, "/p/a.py", (4, 4), (6, 0))
    assert code.code == "if x:\n    y = 1\n"
    assert (code.first_line, code.last_line, code.column) == (4, 5, 4)


def test_less_indented_comment_does_not_stop_dedent() -> None:
    code = snippet.for_lines(DOC, "/p/a.py", 5, 8)
    assert code.column == 8
    assert code.code == "y = 1\n# a comment\n# less indented comment\nreturn y\n"


def test_partial_line_selection_runs_exactly_the_expression() -> None:
    text = "total = price * 3 + tax\n"
    code = snippet.for_selection(text, "/p/a.py", (0, 8), (0, 17))
    assert code.code == "price * 3\n"
    assert code.column == 8 and code.first_line == 0


def test_selection_ending_at_column_zero_excludes_that_line() -> None:
    code = snippet.for_selection(DOC, "/p/a.py", (12, 0), (14, 0))
    assert code.line_span == (12, 13)


def test_reversed_selection_is_normalised() -> None:
    code = snippet.for_selection(DOC, "/p/a.py", (14, 0), (12, 0))
    assert code.line_span == (12, 13)


def test_cell_around_cursor() -> None:
    assert snippet.cell_span(DOC, 5) == (2, 10)
    assert snippet.cell_span(DOC, 13) == (11, 13)
    assert snippet.for_position(DOC, "/p/a.py", 13).kind == "cell"


def test_statement_around_cursor_is_the_whole_top_level_block() -> None:
    text = "import os\n\n@decorator\ndef g():\n    return 1\n\nwith open('x') as f:\n    f.read()\n"
    assert snippet.statement_span(text, 4) == (2, 4)
    assert snippet.statement_span(text, 7) == (6, 7)
    assert snippet.statement_span(text, 1) is None
    code = snippet.for_position(text, "/p/a.py", 7)
    assert code.kind == "statement" and code.code.startswith("with open")


def test_statement_fallback_when_document_does_not_parse() -> None:
    text = "x = (\n\nfor i in range(3):\n    print(i)\nelse:\n    pass\nz = 1\n"
    assert snippet.statement_span(text, 3) == (2, 5)


def test_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(snippet.SnippetError, match="past the end"):
        snippet.for_lines("x = 1\n", "/p/a.py", 5, 6)
    with pytest.raises(snippet.SnippetError, match="empty"):
        snippet.whole_file("", "/p/a.py")
    with pytest.raises(snippet.SnippetError, match="no statement"):
        snippet.for_position("x = 1\n\n", "/p/a.py", 1)
