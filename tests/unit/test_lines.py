"""Lines as LSP and Python count them (lines.py, and runner.py's copy for the child):
a form feed (PEP 8's page break), U+2028 and the other characters str.splitlines also
breaks at do not end a line, so the lines after one keep their numbers."""

from __future__ import annotations

import linecache
import re
import traceback

from hypothesis import given
from hypothesis import strategies as st

from codeexec_lsp import snippet
from codeexec_lsp.documents import CachedLinesDocument
from codeexec_lsp.execution import runner
from codeexec_lsp.lines import split_lines

ODD = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
PAGED = "a = 1\n\x0c\nb = 2\nc = 'x\u2028y'\nd = 4\n"


def test_only_line_feeds_and_carriage_returns_end_a_line() -> None:
    assert split_lines(PAGED) == ["a = 1", "\x0c", "b = 2", "c = 'x\u2028y'", "d = 4"]
    assert len(PAGED.splitlines()) == 7  # what str.splitlines would number
    assert split_lines("a\r\nb\rc\n") == ["a", "b", "c"]
    assert split_lines("a\r\nb\rc", keepends=True) == ["a\r\n", "b\r", "c"]
    assert split_lines("") == [] and split_lines("\n") == [""]


@given(st.lists(st.sampled_from(["a", " ", "\n", "\r", "\r\n", *ODD])).map("".join))
def test_the_child_splits_as_the_server_does(text: str) -> None:
    for keepends in (False, True):
        assert runner._split_lines(text, keepends) == split_lines(text, keepends=keepends)
    assert "".join(split_lines(text, keepends=True)) == text
    # And both as LSP's rule says, written the plain way: break at \r\n, \r or \n only.
    parts = re.split(r"(\r\n|\r|\n)", text)
    expected = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    expected += [parts[-1]] if parts[-1] else []
    assert split_lines(text, keepends=True) == expected


def test_the_servers_document_lines_are_the_editors() -> None:
    document = CachedLinesDocument("file:///p/paged.py", PAGED)
    assert document.lines[2] == "b = 2\n" and document.lines[4] == "d = 4\n"
    assert len(document.lines) == 5


def test_a_line_after_a_page_break_runs_that_line() -> None:
    code = snippet.for_lines(PAGED, "/p/paged.py", 4, 4)
    assert code.code.strip() == "d = 4" and code.first_line == 4


def test_a_traceback_after_a_page_break_quotes_the_raising_line() -> None:
    document = "x = 1\n\x0c\ny = 2\nz = 1 / 0  # here\n"
    filename = "/p/raising_after_page_break.py"
    runner.register_document(filename, document)
    try:
        compiled = runner.compile_snippet("z = 1 / 0  # here\n", filename, 4, 0, document)
        try:
            exec(compiled.body, {})
        except ZeroDivisionError as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
        else:
            raise AssertionError("the line did not raise")
        assert frame.lineno == 4
        assert frame.line == "z = 1 / 0  # here"
    finally:
        linecache.cache.pop(filename, None)
