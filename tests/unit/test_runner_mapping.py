"""The child-side compiler and exception mapping, called in-process."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.execution import runner


@pytest.fixture(autouse=True)
def keep_sigint_handler() -> Iterator[None]:
    # run_request ignores SIGINT once the code is over, as the child process should.
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def run(code: snippet.Snippet) -> dict[str, Any]:
    return runner.run_request(
        {
            "code": code.code,
            "path": code.path,
            "document": code.document,
            "first_line": code.first_line + 1,
            "column": code.column,
        }
    )


def test_error_far_down_an_indented_selection_points_at_the_real_line() -> None:
    document = "\n" * 150 + "def f():\n    a = 1\n    if a:\n        b = [0][2]\n"
    code = snippet.for_lines(document, "/virtual/far.py", 151, 153)
    outcome = run(code)
    error = outcome["error"]
    assert error["type"] == "IndexError"
    assert error["line"] == 154
    assert error["column"] == document.splitlines()[153].index("[0][2]")
    assert '"/virtual/far.py", line 154' in error["traceback"]
    assert "b = [0][2]" in error["traceback"]  # the source line came from linecache


def test_columns_are_code_points_after_non_ascii_text() -> None:
    document = "s = 'ĉu vi 😀'; n = 1 / 0\n"
    outcome = run(snippet.for_lines(document, "/virtual/u.py", 0, 0))
    assert outcome["error"]["column"] == document.index("1 / 0")
    assert outcome["error"]["end_column"] == document.index("1 / 0") + len("1 / 0")


def test_partial_line_expression_keeps_its_column() -> None:
    document = "value = 'é' + undefined_name\n"
    start = document.index("'é'")
    code = snippet.for_selection(document, "/virtual/p.py", (0, start), (0, len(document) - 1))
    outcome = run(code)
    assert outcome["error"]["type"] == "NameError"
    assert outcome["error"]["column"] == document.index("undefined_name")


def test_syntax_error_is_reported_at_its_place_in_the_file() -> None:
    document = "x = 1\n\nif x:\n    y = (1,\n    z = 2 +\n"
    outcome = run(snippet.for_lines(document, "/virtual/s.py", 3, 4))
    assert outcome["error"]["type"] == "SyntaxError"
    assert outcome["error"]["line"] in (4, 5)
    assert outcome["error"]["column"] is not None and outcome["error"]["column"] >= 4


def test_return_outside_function_says_what_to_do() -> None:
    document = "def f(x):\n    y = x + 1\n    return y\n"
    outcome = run(snippet.for_lines(document, "/virtual/r.py", 1, 2))
    assert outcome["error"]["type"] == "SyntaxError"
    assert outcome["error"]["line"] == 3
    assert "Select the whole function" in outcome["error"]["message"]


def test_trailing_expression_is_echoed_like_a_repl() -> None:
    assert run(snippet.for_lines("x = 20\nx * 2 + 2\n", "/virtual/e.py", 0, 1))["value"] == "42"
    assert run(snippet.for_lines("print('hi')\n", "/virtual/e.py", 0, 0))["value"] is None
    assert run(snippet.for_lines("x = 1\n", "/virtual/e.py", 0, 0))["value"] is None


def test_top_level_await_runs() -> None:
    document = "import asyncio\nawait asyncio.sleep(0)\n'done'\n"
    assert run(snippet.for_lines(document, "/virtual/a.py", 0, 2))["value"] == "'done'"


def test_system_exit_zero_is_fine_and_nonzero_is_an_error() -> None:
    assert run(snippet.for_lines("raise SystemExit\n", "/v/x.py", 0, 0))["status"] == "ok"
    outcome = run(snippet.for_lines("import sys\nsys.exit(3)\n", "/v/x.py", 0, 1))
    assert outcome["error"]["type"] == "SystemExit" and outcome["error"]["line"] == 2
