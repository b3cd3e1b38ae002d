"""What a user runs at the edges mutation testing of snippet.py found unguarded: an empty
selection at column 0, a selection running past the end of the document, the cursor on
the first or one-past-the-last line, the path and document every kind of snippet carries,
the indentation fallback for code that does not parse (a comment at column 0, a block
that ends the document, one trailing blank line), and the reasons and memory bound of
reading a file from disk.

Each test gets an empty parse cache (snippet keeps the last few documents it split or
parsed, keyed by their text): under mutmut the tests run once unmutated in the same
process before every mutant is forked from it, and a cached answer would hide the mutant.
Documents are built at run time from their lines for the same reason.
"""

from __future__ import annotations

import errno
import os
import tracemalloc
from pathlib import Path

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.snippet import SnippetError


@pytest.fixture(autouse=True)
def empty_parse_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snippet, "_PARSED", {})


def document(*lines: str) -> str:
    """The document with these lines, each ending in a newline, built at run time."""
    return "".join(f"{line}\n" for line in lines)


def test_an_empty_selection_at_column_zero_runs_its_whole_line() -> None:
    # An empty selection inside a line runs the rest of that line; at column 0 that is the
    # whole line, not a refusal of a backwards range.
    text = document("a = 1", "    b = 2", "c = 3")
    code = snippet.for_selection(text, "/p.py", (1, 0), (1, 0))
    assert (code.code, code.first_line, code.last_line, code.column) == ("b = 2\n", 1, 1, 4)
    first = snippet.for_selection(text, "/p.py", (0, 0), (0, 0))
    assert (first.code, first.first_line, first.last_line, first.column) == ("a = 1\n", 0, 0, 0)


def test_a_selection_from_inside_the_last_line_past_the_end_runs_the_selected_text() -> None:
    # A client may send an end line beyond the document (a line it has no text for becomes
    # column 0): what is selected is the rest of the last line, at its column.
    text = document("a = 1", "total = price * count")
    for end_line in (2, 3, 4, 9):
        code = snippet.for_selection(text, "/p.py", (1, 8), (end_line, 0))
        assert (code.code, code.first_line, code.last_line, code.column) == (
            "price * count\n",
            1,
            1,
            8,
        ), end_line


def test_the_cursor_on_the_first_line_runs_its_statement() -> None:
    text = document("first = 1", "", "second = 2")
    code = snippet.for_position(text, "/p.py", 0)
    assert (code.code, code.first_line, code.last_line, code.kind) == (
        "first = 1\n",
        0,
        0,
        "statement",
    )


def test_the_cursor_one_line_past_the_end_is_outside_the_document() -> None:
    for text in (document("a = 1", "b = 2"), document("# %%", "a = 1", "# %%", "b = 2")):
        count = len(text.splitlines())
        with pytest.raises(SnippetError) as outside:
            snippet.for_position(text, "/p.py", count)
        assert str(outside.value) == f"line {count + 1} is outside the document ({count} lines)"


def test_every_kind_of_snippet_carries_its_path_and_document() -> None:
    path = "/work/project/analysis.py"
    cells = document("# %%", "a = 1", "# %%", "b = 2")
    statements = document("import os", "", "def f():", "    return 1")
    for code in (
        snippet.for_position(cells, path, 3),
        snippet.for_position(statements, path, 3),
        snippet.whole_file(statements, path),
        snippet.for_selection(statements, path, (0, 0), (2, 0)),
        snippet.for_selection(statements, path, (3, 11), (3, 12)),
    ):
        assert code.path == path, code
        assert code.document in (cells, statements), code
    assert snippet.for_position(cells, path, 3).document == cells
    assert snippet.whole_file(statements, path).document == statements


def test_a_comment_at_column_zero_inside_a_broken_block_does_not_end_it() -> None:
    text = document("if x:", "    y = (", "# a note", "    z = 1", "w = 2 +")
    assert snippet.statement_span(text, 3) == (0, 3)
    code = snippet.for_position(text, "/p.py", 3)
    assert (code.first_line, code.last_line) == (0, 3)
    assert code.code == "if x:\n    y = (\n# a note\n    z = 1\n"


def test_a_broken_block_that_ends_the_document_runs_to_its_last_line() -> None:
    text = document("import os", "if x:", "    y = (", "    z = 1")
    assert snippet.statement_span(text, 1) == (1, 3)
    assert snippet.statement_span(text, 3) == (1, 3)


def test_a_two_line_broken_block_stops_before_the_next_statement() -> None:
    text = document("if x:", "    y = (", "w = 2", "v = 3 +")
    assert snippet.statement_span(text, 0) == (0, 1)
    assert snippet.statement_span(text, 2) == (2, 2)
    code = snippet.for_position(text, "/p.py", 0)
    assert code.code == "if x:\n    y = (\n"


def test_one_blank_line_after_a_broken_block_is_not_part_of_it() -> None:
    for blanks in (1, 2, 3):
        text = document("if x:", "    y = (", "    z = 1", *([""] * blanks), "w = 2 +")
        assert snippet.statement_span(text, 0) == (0, 2), blanks
        assert snippet.statement_span(text, 2) == (0, 2), blanks


def test_a_path_the_system_refuses_is_refused_with_its_reason() -> None:
    # os.open raises ValueError (no strerror) for a NUL in the path: its own text is the reason.
    with pytest.raises(SnippetError) as nul:
        snippet.read_source_file("/tmp/" + "bad\0name.py")
    assert str(nul.value) == "embedded null byte"


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_a_regular_file_that_fails_to_read_is_refused_with_the_system_reason() -> None:
    # /proc/self/mem is a regular file whose first page cannot be read (EIO): the user is
    # told the system's reason, not an errno dump or "None".
    with pytest.raises(SnippetError) as failed:
        snippet.read_source_file("/proc/self/mem")
    assert str(failed.value) == os.strerror(errno.EIO)


def test_a_file_far_over_the_limit_is_refused_after_reading_just_past_the_limit(
    tmp_path: Path,
) -> None:
    # The limit keeps a huge file (a log, a data dump opened by mistake) from filling the
    # server's memory: it reads one byte past the limit, then refuses. The pieces read and
    # their join are held at once, so about twice the limit is the most it may hold.
    huge = tmp_path / "huge.py"
    with huge.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # sparse: costs no disk
    limit = 1024 * 1024 + 1  # one full piece, then two bytes more
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        with pytest.raises(SnippetError) as refused:
            snippet.read_source_file(str(huge), limit=limit)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not tracing:
            tracemalloc.stop()
    assert str(refused.value) == "it is larger than 1 MB"
    assert peak < 3 * 1024 * 1024, f"held {peak} bytes to refuse a file over {limit}"
