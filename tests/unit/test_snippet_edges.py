"""Snippets at the edges: exact user messages, clamping, one-line selections, cells, the
indentation fallback for code that does not parse, and reading files from disk safely
(found unguarded by mutation testing of snippet.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.snippet import SnippetError

DOC = "a = 1\n    b = 2\nc = 3\n"


def test_for_lines_says_exactly_what_is_wrong() -> None:
    with pytest.raises(SnippetError) as empty:
        snippet.for_lines("", "/p.py", 0, 0)
    assert str(empty.value) == "the document is empty: there is nothing to run"
    with pytest.raises(SnippetError) as backwards:
        snippet.for_lines(DOC, "/p.py", 2, 1)
    assert str(backwards.value) == "bad line range 3-2: the start must come first"
    with pytest.raises(SnippetError):
        snippet.for_lines(DOC, "/p.py", -1, 1)
    with pytest.raises(SnippetError) as past:
        snippet.for_lines(DOC, "/p.py", 3, 5)
    assert str(past.value) == "line 4 is past the end of the document (3 lines)"


def test_for_lines_clamps_the_end_and_keeps_path_and_kind() -> None:
    code = snippet.for_lines(DOC, "/p.py", 1, 99)
    assert (code.first_line, code.last_line, code.path, code.kind) == (1, 2, "/p.py", "lines")
    assert code.code == "    b = 2\nc = 3\n"
    assert snippet.for_lines(DOC, "/p.py", 2, 2).code == "c = 3\n"


def test_a_selection_past_the_end_is_refused() -> None:
    for document, start in (("", (0, 0)), (DOC, (3, 0))):
        with pytest.raises(SnippetError) as past:
            snippet.for_selection(document, "/p.py", start, (start[0], 1))
        assert str(past.value) == "the selection is past the end of the document"


def test_a_partial_one_line_selection_runs_the_selected_text_at_its_column() -> None:
    document = "total = price  *  count\n"
    code = snippet.for_selection(document, "/p.py", (0, 7), (0, 23))  # " price  *  count"
    assert (code.code, code.column, code.kind, code.path) == (
        "price  *  count\n",
        8,
        "selection",
        "/p.py",
    )
    rest = snippet.for_selection(document, "/p.py", (0, 8), (0, 8))  # nothing: to line end
    assert (rest.code, rest.column) == ("price  *  count\n", 8)


def test_a_whole_line_selected_runs_as_lines() -> None:
    code = snippet.for_selection(DOC, "/p.py", (1, 0), (1, 13))
    assert (code.code, code.column, code.kind, code.first_line) == ("b = 2\n", 4, "selection", 1)


def test_a_line_wise_selection_ends_before_the_line_it_stops_at() -> None:
    code = snippet.for_selection(DOC, "/p.py", (0, 0), (2, 0))
    assert (code.first_line, code.last_line, code.kind) == (0, 1, "selection")
    one = snippet.for_selection(DOC, "/p.py", (0, 0), (1, 0))
    assert (one.first_line, one.last_line) == (0, 0)
    clamped = snippet.for_selection(DOC, "/p.py", (0, 0), (9, 4))
    assert clamped.last_line == 2


def test_the_cursor_on_a_cell_marker_is_in_that_cell() -> None:
    document = "x = 0\n# %%\na = 1\n# %% second\nb = 2\n"
    assert snippet.cell_span(document, 1) == (1, 2)
    assert snippet.cell_span(document, 3) == (3, 4)
    assert snippet.cell_span(document, 0) == (0, 0)
    assert snippet.cell_span("a = 1\n", 0) is None


def test_describe_names_the_kind_and_lines() -> None:
    assert snippet.for_lines(DOC, "/p.py", 2, 2).describe() == "line 3"
    assert snippet.for_lines(DOC, "/p.py", 0, 2).describe() == "lines 1–3"
    assert snippet.for_lines(DOC, "/p.py", 0, 2, kind="cell").describe() == "cell (lines 1–3)"
    assert snippet.for_lines(DOC, "/p.py", 0, 0, kind="statement").describe() == (
        "statement (line 1)"
    )
    assert snippet.whole_file(DOC, "/p.py").describe() == "lines 1–3"


def test_whole_file_and_an_empty_one() -> None:
    code = snippet.whole_file(DOC, "/p.py")
    assert (code.code, code.first_line, code.last_line, code.column, code.kind) == (
        DOC,
        0,
        2,
        0,
        "file",
    )
    with pytest.raises(SnippetError, match=r"^the document is empty: there is nothing to run$"):
        snippet.whole_file("", "/p.py")


BROKEN = (
    "import os\n"  # 0
    "if x:\n"  # 1
    "    y = (\n"  # 2
    "else:\n"  # 3
    "    z = 1\n"  # 4
    "\n"  # 5
    "\n"  # 6
    "w = 2 +\n"  # 7
)


def test_code_that_does_not_parse_is_split_by_indentation() -> None:
    assert snippet.statement_span(BROKEN, 0) == (0, 0)
    assert snippet.statement_span(BROKEN, 2) == (1, 4)  # else belongs to the if
    assert snippet.statement_span(BROKEN, 4) == (1, 4)  # blank lines after it are not
    assert snippet.statement_span(BROKEN, 7) == (7, 7)
    assert snippet.statement_span(BROKEN, 5) is None  # a blank line is no statement
    assert snippet.statement_span(BROKEN, 8) is None
    assert snippet.statement_span(BROKEN, -1) is None
    indented_first = "    x = (\n    1\ny = 2 +\n"
    assert snippet.statement_span(indented_first, 1) == (0, 1)


def test_for_position_uses_the_cell_then_the_statement() -> None:
    cells = "a = 1\n# %%\nb = 2\n"
    assert snippet.for_position(cells, "/p.py", 2).kind == "cell"
    statement = snippet.for_position("def f():\n    return 1\n\n\nf()\n", "/p.py", 1)
    assert (statement.kind, statement.first_line, statement.last_line) == ("statement", 0, 1)
    with pytest.raises(SnippetError, match=r"^line 9 is outside the document"):
        snippet.for_position(DOC, "/p.py", 8)
    with pytest.raises(SnippetError, match="no statement at line 2"):
        snippet.for_position("a = 1\n\nb = 2\n", "/p.py", 1)


def test_read_source_file_reads_regular_utf8_files_within_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.py"
    path.write_text("é = 1\n" * 3)
    assert snippet.read_source_file(str(path)) == "é = 1\n" * 3
    assert snippet.read_source_file(str(path), limit=21) == "é = 1\n" * 3  # exactly the limit
    big = tmp_path / "big.py"
    big.write_bytes(b"x" * (3 * 1024 * 1024 + 1))
    with pytest.raises(SnippetError, match=r"^it is larger than 3 MB$"):
        snippet.read_source_file(str(big), limit=3 * 1024 * 1024)
    assert len(snippet.read_source_file(str(big))) == 3 * 1024 * 1024 + 1  # read in pieces


def test_read_source_file_refuses_what_is_not_a_regular_utf8_file(tmp_path: Path) -> None:
    with pytest.raises(SnippetError, match=r"^No such file or directory$"):
        snippet.read_source_file(str(tmp_path / "missing.py"))
    with pytest.raises(SnippetError, match=r"^it is not a regular file$"):
        snippet.read_source_file(str(tmp_path))
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SnippetError, match=r"^it is not a regular file$"):
        snippet.read_source_file(str(fifo))
    latin = tmp_path / "latin.py"
    latin.write_bytes("é = 1\n".encode("latin-1"))
    with pytest.raises(SnippetError, match=r"^it is not UTF-8 text$"):
        snippet.read_source_file(str(latin))
    with pytest.raises(SnippetError):
        snippet.read_source_file("bad\0path")


def test_selections_keep_their_place_and_path() -> None:
    lines = snippet.for_selection(DOC, "/p.py", (0, 0), (2, 0))
    assert lines.path == "/p.py"
    part = snippet.for_selection("total = price * count\n", "/p.py", (0, 8), (0, 13))
    assert (part.code, part.first_line, part.last_line) == ("price\n", 0, 0)
    # Only blanks selected inside a line: the whole line runs.
    blank = snippet.for_selection("x  =  1\n", "/p.py", (0, 1), (0, 3))
    assert (blank.code, blank.column) == ("x  =  1\n", 0)


def test_a_selection_of_comments_only_runs_nothing_at_column_zero() -> None:
    code = snippet.for_lines("    # a\n\n    # b\n", "/p.py", 0, 2)
    assert (code.code, code.column) == ("# a\n\n# b", 0)


def test_the_cursor_on_a_decorator_runs_the_decorated_statement() -> None:
    document = "import functools\n\n\n@functools.cache\ndef f():\n    return 1\n"
    assert snippet.statement_span(document, 3) == (3, 5)
    assert snippet.statement_span(document, 0) == (0, 0)
