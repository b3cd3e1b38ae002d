"""Compiling a snippet at its place in the file (runner.py `compile_snippet` and the
SyntaxErrors it moves there), called in-process.

What is pinned down is what the user sees: a SyntaxError's message, line, column and
range in the file (lines the parser names in its message counted in the file too), the
"select the whole function" hint exactly when a `return`/`yield` stands at the top level
of a selection cut out of a def (and Python's own message everywhere else), the columns of
code selected after non-ASCII text, and `from __future__` imports staying in effect for a
session's later runs, as in the REPL and IPython.

Every run uses a path of its own: `register_document` keeps what it registered for the
very same text object, and mutation testing runs each test twice in one process.
"""

from __future__ import annotations

import builtins
import itertools
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.execution import runner
from tests.pythons import run_requests_under

_numbers = itertools.count()


def fresh_path() -> str:
    return f"/virtual/compile-{next(_numbers)}-{id(_numbers)}.py"


@pytest.fixture(autouse=True)
def process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """run_request replaces `__main__`, ignores SIGINT/SIGXCPU once the code is over (as
    the child should), sets `builtins._` after a session run and keeps each session's
    __future__ features by the id of its namespace: put all of it back (a namespace's id
    can be reused by a later test's)."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    monkeypatch.setattr(runner, "_SESSION_FUTURES", {})
    monkeypatch.delattr(builtins, "_", raising=False)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGXCPU)}
    yield
    for number, handler in handlers.items():
        signal.signal(number, handler)


def run(code: snippet.Snippet, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    return runner.run_request(
        {
            "code": code.code,
            "path": code.path,
            "document": code.document,
            "first_line": code.first_line + 1,
            "column": code.column,
        },
        namespace,
    )


def error_of_lines(document: str, first: int, last: int) -> dict[str, Any]:
    """The error of running 0-based lines `first`..`last` of `document`."""
    outcome = run(snippet.for_lines(document, fresh_path(), first, last))
    assert outcome["status"] == "error", outcome
    error: dict[str, Any] = outcome["error"]
    return error


def hint(keyword: str) -> str:
    return (
        f"'{keyword}' outside function: the selection runs as top-level code. "
        f"Select the whole function (with its def line), or leave out the '{keyword}'"
    )


# --- lines the parser names in its message are counted in the file ----------------------


def test_the_line_a_message_names_is_the_files_line_not_the_selections() -> None:
    document = (
        "import os\n"
        "\n"
        "\n"
        "def total_of(items):\n"
        "    total = 0\n"
        "    for item in items:\n"
        "    total += item\n"
        "    return total\n"
    )
    path = fresh_path()
    outcome = run(snippet.for_lines(document, path, 4, 6))
    message = "expected an indented block after 'for' statement on line 6"
    assert outcome["error"] == {
        "type": "IndentationError",
        "message": message,
        "line": 7,
        "column": 4,
        "end_line": 7,
        "end_column": 9,
        "traceback": f'  File "{path}", line 7\n    total += item\n    ^^^^^\n'
        f"IndentationError: {message}\n",
        "frames": [{"file": path, "line": 7, "name": "<module>", "column": 4}],
    }


def test_a_selection_starting_on_the_second_line_counts_from_there() -> None:
    error = error_of_lines("x = 1\nif x:\nprint(x)\n", 1, 2)
    assert (error["message"], error["line"]) == (
        "expected an indented block after 'if' statement on line 2",
        3,
    )


def test_the_moved_error_keeps_pythons_shape_with_the_files_message() -> None:
    """Code reading a SyntaxError's args (the `code` module, pickling) finds the message
    in the file's terms, followed by Python's details tuple."""
    document = "x = 1\n\ndef f(items):\n    for item in items:\n    pass\n"
    path = fresh_path()
    code = snippet.for_lines(document, path, 3, 4)
    with pytest.raises(IndentationError) as caught:
        runner.compile_snippet(code.code, path, code.first_line + 1, code.column, document)
    error = caught.value
    message = "expected an indented block after 'for' statement on line 4"
    assert (error.msg, error.lineno, error.text) == (message, 5, "    pass\n")
    assert error.args[0] == message
    assert len(error.args) == 2 and error.args[1][0] == path


def test_a_message_naming_no_line_is_left_alone() -> None:
    error = error_of_lines("a = 1\nb = (1 +)\n", 1, 1)
    assert (error["message"], error["line"], error["column"]) == ("invalid syntax", 2, 8)


# --- where a SyntaxError stands and what text it shows --------------------------------------


def test_a_selection_starting_at_column_zero_shows_the_documents_whole_line() -> None:
    document = "y = (1 +)  # unfinished\n"
    path = fresh_path()
    outcome = run(snippet.for_selection(document, path, (0, 0), (0, 9)))
    assert outcome["error"]["traceback"] == (
        f'  File "{path}", line 1\n    y = (1 +)  # unfinished\n            ^\n'
        "SyntaxError: invalid syntax\n"
    )


def test_an_unclosed_bracket_has_a_place_but_no_range() -> None:
    path = fresh_path()
    outcome = run(snippet.for_lines("a = 1\ntotal = (1 +\n", path, 1, 1))
    error = outcome["error"]
    assert (error["message"], error["line"], error["column"]) == ("'(' was never closed", 2, 8)
    assert (error["end_line"], error["end_column"]) == (None, None)


def test_a_null_character_in_the_code_is_reported_not_crashed_on() -> None:
    # A SyntaxError without a line or a column on newer Pythons (3.11.7 here); a ValueError
    # on older ones (3.10, and Debian's 3.11.2 in CI).
    document = "value = 'a\0b'\n"
    for code in (
        snippet.for_selection(document, fresh_path(), (0, 8), (0, 13)),  # at a column
        snippet.for_lines(document, fresh_path(), 0, 0),
    ):
        outcome = run(code)
        error = outcome["error"]
        assert error["type"] in ("SyntaxError", "ValueError")
        assert error["message"] == "source code string cannot contain null bytes"
        assert error["line"] is None


def test_a_syntax_error_naming_a_line_without_a_column_points_at_its_code() -> None:
    """A SyntaxError the code raises itself (a parser library's, or Python 3.8's for some
    errors) naming the document's line but no column: the line's first code character."""
    document = (
        "if True:\n    limit = 3\nraise SyntaxError('limit too low', (__file__, 2, None, None))\n"
    )
    path = fresh_path()
    outcome = run(snippet.for_lines(document, path, 0, 2))
    error = outcome["error"]
    assert error.pop("traceback").endswith("SyntaxError: limit too low\n")
    assert error == {
        "type": "SyntaxError",
        "message": "limit too low",
        "line": 2,
        "column": 4,
        "end_line": None,
        "end_column": None,
        "frames": [{"file": path, "line": 2, "name": "<module>", "column": 4}],
    }


@pytest.mark.parametrize(
    ("details", "end"),
    [
        ("(__file__, 2, 5, None, 2, None)", (None, None)),  # an end line, no end column
        ("(__file__, 2, 5, None, None, 9)", (None, None)),  # an end column, no end line
        ("(__file__, 2, 5, None, 2, 9)", (2, 8)),
    ],
)
def test_a_syntax_error_has_a_range_only_with_both_its_end_line_and_column(
    details: str, end: tuple[int | None, int | None]
) -> None:
    document = f"if True:\n    limit = 3\nraise SyntaxError('limit too low', {details})\n"
    error = run(snippet.for_lines(document, fresh_path(), 0, 2))["error"]
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (2, 4, *end)


# --- "select the whole function": only for a top-level return/yield of a cut-out body -------


@pytest.mark.parametrize(
    ("document", "first", "last", "line"),
    [
        # the return inside a block of the selection, and the block's line alone
        ("def f(x):\n    if x:\n        return 1\n    return 0\n", 1, 2, 3),
        ("def f(x):\n    if x:\n        return 1\n    return 0\n", 2, 2, 3),
        # a def after the return in the selection
        ("def f():\n    return 1\n    def g(): pass\n", 1, 2, 2),
        # blank lines, and a comment at column 0, between the def and the selection
        ("def f(x):\n    y = x\n\n    return y\n", 3, 3, 4),
        ("def f(x):\n    y = x\n# old: y = 2\n    return y\n", 3, 3, 4),
        # a selection starting on blank lines
        ("def f(x):\n\n    return x\n", 1, 2, 3),
        ("import os\nimport sys\n\ndef f(x):\n    y = x\n\n\n    return y\n", 5, 7, 8),
        # one-space indentation, a method, an async def
        ("def f(x):\n y = x\n return y\n", 2, 2, 3),
        ("class A:\n    def m(self):\n        return 1\n", 2, 2, 3),
        ("async def fetch():\n    data = 1\n    return data\n", 1, 2, 3),
    ],
)
def test_a_return_cut_from_a_function_says_to_select_the_whole_function(
    document: str, first: int, last: int, line: int
) -> None:
    error = error_of_lines(document, first, last)
    assert (error["type"], error["message"], error["line"]) == ("SyntaxError", hint("return"), line)


def test_a_trailing_yield_cut_from_a_generator_says_to_select_the_whole_function() -> None:
    error = error_of_lines("def numbers():\n    x = 1\n    yield x\n", 1, 2)
    assert (error["message"], error["line"]) == (hint("yield"), 3)


def test_the_hint_is_on_the_raised_error_and_its_args() -> None:
    document = "def f(x):\n    y = x\n    return y\n"
    path = fresh_path()
    code = snippet.for_lines(document, path, 1, 2)
    with pytest.raises(SyntaxError) as caught:
        runner.compile_snippet(code.code, path, code.first_line + 1, code.column, document)
    assert caught.value.args[0] == caught.value.msg == hint("return")
    assert len(caught.value.args) == 2 and caught.value.args[1][0] == path


@pytest.mark.parametrize(
    ("document", "first", "last", "line"),
    [
        # the file's top level, also below a def
        ("x = 1\nreturn x\n", 1, 1, 2),
        ("def g():\n    pass\nreturn 1\n", 2, 2, 3),
        # a block at the top level, a class body below a method: not in a def
        ("if True:\n    return 1\n", 1, 1, 2),
        ("class A:\n    def m(self):\n        pass\n    return 1\n", 3, 3, 4),
        # the return is in a class the selection holds (an error in the file too), even
        # with a return at the selection's top level below it
        ("def f():\n    class A:\n        return 1\n    return 2\n", 1, 3, 3),
    ],
)
def test_a_return_outside_any_function_keeps_pythons_message(
    document: str, first: int, last: int, line: int
) -> None:
    error = error_of_lines(document, first, last)
    assert (error["type"], error["message"], error["line"]) == (
        "SyntaxError",
        "'return' outside function",
        line,
    )


def test_code_run_without_a_document_keeps_pythons_message() -> None:
    outcome = runner.run_request({"code": "x = 1\nreturn x\n", "path": fresh_path()})
    error = outcome["error"]
    assert (error["type"], error["message"], error["line"]) == (
        "SyntaxError",
        "'return' outside function",
        2,
    )


# --- columns after non-ASCII text --------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "name = 'é😀'; total = 1 / 0\n",  # the first line, which is also the last
        "a = 1\nname = 'é😀'; total = 1 / 0\nb = 2\n",  # after a shorter ASCII line
    ],
)
def test_a_selection_after_non_ascii_text_on_its_line_keeps_its_columns(document: str) -> None:
    lines = document.splitlines()
    line = next(index for index, text in enumerate(lines) if "total" in text)
    start = lines[line].index("total")
    code = snippet.for_selection(document, fresh_path(), (line, start), (line, len(lines[line])))
    error = run(code)["error"]
    column = lines[line].index("1 / 0")
    assert (error["type"], error["line"], error["column"], error["end_column"]) == (
        "ZeroDivisionError",
        line + 1,
        column,
        column + len("1 / 0"),
    )


# --- compile_snippet called with only what it needs ----------------------------------------


def test_compile_snippet_by_default_compiles_code_as_a_whole_file() -> None:
    with pytest.raises(SyntaxError) as caught:
        runner.compile_snippet("x = (1 +)\n", "/virtual/plain.py")
    error = caught.value
    assert (error.msg, error.lineno, error.offset, error.text) == (
        "invalid syntax",
        1,
        9,
        "x = (1 +)\n",
    )
    compiled = runner.compile_snippet("y = 1\ny + 1\n", "/virtual/plain.py")
    namespace: dict[str, Any] = {}
    exec(compiled.body, namespace)
    assert compiled.last_expr is not None and eval(compiled.last_expr, namespace) == 2
    assert compiled.future_flags == 0


def test_without_the_document_the_column_still_shifts_the_code() -> None:
    """(Taken as it is: without the document's line there is no text to count bytes in.)"""
    with pytest.raises(SyntaxError) as caught:
        runner.compile_snippet("x = 1\nreturn x\n", "/virtual/shifted.py", 3, 4)
    error = caught.value
    assert (error.msg, error.lineno, error.offset) == ("'return' outside function", 4, 5)


def test_a_selection_holding_only_a_comment_runs_and_gives_nothing() -> None:
    outcome = run(snippet.for_lines("x = 1\n# just a note\n", fresh_path(), 1, 1))
    assert (outcome["status"], outcome["value"], outcome["error"]) == ("ok", None, None)


# --- __future__ features ---------------------------------------------------------------------

ANNOTATED = "def f(x: int) -> str:\n    return ''\nf.__annotations__\n"


def run_code(code: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    return run(snippet.whole_file(code, fresh_path()), namespace)


def test_the_runners_own_future_imports_do_not_reach_the_code() -> None:
    """runner.py has `from __future__ import annotations`: the code must not inherit it."""
    assert run_code(ANNOTATED)["value"] == "{'x': <class 'int'>, 'return': <class 'str'>}"
    session: dict[str, Any] = {}
    assert run_code(ANNOTATED, session)["value"] == "{'x': <class 'int'>, 'return': <class 'str'>}"


def test_a_future_import_stays_in_effect_for_the_sessions_later_runs() -> None:
    session: dict[str, Any] = {}
    assert run_code("from __future__ import annotations\n", session)["status"] == "ok"
    assert run_code(ANNOTATED, session)["value"] == "{'x': 'int', 'return': 'str'}"
    # ...and after a run that did not import it again.
    assert run_code(ANNOTATED, session)["value"] == "{'x': 'int', 'return': 'str'}"
    # Another session, and a run outside any session, do not have it.
    assert run_code(ANNOTATED, {})["value"] == "{'x': <class 'int'>, 'return': <class 'str'>}"
    assert run_code(ANNOTATED)["value"] == "{'x': <class 'int'>, 'return': <class 'str'>}"


def test_every_future_feature_is_carried_not_only_annotations() -> None:
    session: dict[str, Any] = {}
    assert run_code("from __future__ import barry_as_FLUFL\n", session)["status"] == "ok"
    assert run_code("1 <> 2\n", session)["value"] == "True"
    assert run_code("1 <> 2\n", {})["error"]["type"] == "SyntaxError"


def test_future_features_of_a_session_combine() -> None:
    session: dict[str, Any] = {}
    run_code("from __future__ import barry_as_FLUFL\n", session)
    run_code("from __future__ import annotations\n", session)
    assert run_code(ANNOTATED + "1 <> 2\n", session)["value"] == "True"
    assert run_code(ANNOTATED, session)["value"] == "{'x': 'int', 'return': 'str'}"


# --- under the oldest interpreters the runner supports ----------------------------------------


@pytest.mark.parametrize("minor", [8, 9, 10])
def test_before_311_syntax_errors_are_placed_in_the_file_too(minor: int) -> None:
    """Python 3.8 and 3.9 give a SyntaxError no end line or end column (and 3.8-3.9 name
    no other line in "expected an indented block"): the error is still moved into the file,
    with its hint, and has no range. (Mutation testing cannot see this child: it guards the
    `getattr(..., None)` defaults and the two-argument `format_exception_only` that are
    equivalent only on 3.10+.)"""
    path = "/virtual/old.py"
    requests = []
    for document, first, last in [
        ("if True:\n    x = [1,\n         2 +]\n", 1, 2),
        ("def f(x):\n    y = x + 1\n    return y\n", 1, 2),
        (
            "import os\n\n\ndef total_of(items):\n"
            "    total = 0\n    for item in items:\n    total += item\n",
            4,
            6,
        ),
    ]:
        code = snippet.for_lines(document, path, first, last)
        requests.append(
            {
                "code": code.code,
                "path": path,
                "document": document,
                "first_line": code.first_line + 1,
                "column": code.column,
            }
        )
    syntax, outside, indentation = (
        outcome["error"] for outcome in run_requests_under(minor, requests)
    )
    ranged = minor >= 10
    assert syntax == {
        "type": "SyntaxError",
        "message": "invalid syntax",
        "line": 3,
        "column": 12,
        "end_line": 3 if ranged else None,
        "end_column": 13 if ranged else None,
        "traceback": f'  File "{path}", line 3\n    2 +]\n       ^\nSyntaxError: invalid syntax\n',
        "frames": [{"file": path, "line": 3, "name": "<module>", "column": 12}],
    }
    assert (outside["message"], outside["line"], outside["column"]) == (hint("return"), 3, 4)
    assert (outside["end_line"], outside["end_column"]) == ((3, 12) if ranged else (None, None))
    named = " after 'for' statement on line 6" if ranged else ""
    assert (indentation["type"], indentation["message"], indentation["line"]) == (
        "IndentationError",
        f"expected an indented block{named}",
        7,
    )
    assert "    total += item\n" in indentation["traceback"]


@pytest.mark.parametrize(
    ("document", "first", "last", "line"),
    [("x = 1\n    y = 2\n", 0, 1, 2), ("if 1:\n    x = 1\n        y = 2\n", 1, 2, 3)],
)
def test_an_unexpected_indent_has_a_place_but_no_range(
    document: str, first: int, last: int, line: int
) -> None:
    """The parser gives "unexpected indent" an end offset of -1 (unknown): the result has
    no range, not one ending before it starts."""
    error = run(snippet.for_lines(document, fresh_path(), first, last))["error"]
    assert (error["message"], error["line"]) == ("unexpected indent", line)
    assert error["column"] is not None and error["column"] >= 0
    assert (error["end_line"], error["end_column"]) == (None, None)


def test_the_whole_function_hint_shows_the_documents_line_in_its_traceback() -> None:
    document = "def f(x):\n    y = x + 1\n    return y\n"
    error = run(snippet.for_lines(document, fresh_path(), 1, 2))["error"]
    assert "Select the whole function" in error["message"]
    assert error["traceback"].splitlines()[1:3] == ["    return y", "    ^^^^^^^^"]


def test_an_error_the_tree_compile_finds_on_the_first_line_shows_that_line() -> None:
    """`return` at the file's top level: Python's own message, and the line under it."""
    document = "return 5\n"
    error = run(snippet.for_lines(document, fresh_path(), 0, 0))["error"]
    assert error["message"] == "'return' outside function"
    assert error["traceback"].splitlines()[1] == "    return 5"


def test_a_bracket_never_closed_in_an_indented_selection_has_no_range() -> None:
    """Its end offset is 0 (unknown): the selection's indent is not added to it."""
    document = "def f():\n    x = (1,\n"
    error = run(snippet.for_lines(document, fresh_path(), 1, 1))["error"]
    assert error["message"] == "'(' was never closed"
    assert (error["line"], error["column"]) == (2, 8)
    assert (error["end_line"], error["end_column"]) == (None, None)


def test_a_raised_syntax_error_ending_at_a_lines_start_keeps_its_empty_range() -> None:
    path = fresh_path()
    document = f"raise SyntaxError('boom', ({path!r}, 1, 1, 'x', 1, 1))\n"
    error = run(snippet.for_lines(document, path, 0, 0))["error"]
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (1, 0, 1, 0)
