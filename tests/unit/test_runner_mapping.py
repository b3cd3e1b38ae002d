"""The child-side compiler and exception mapping, called in-process."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.execution import runner
from codeexec_lsp.execution.outcome import error_from_json


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


# --- what the code raised is clipped at the source ----------------------------------------------


def test_a_huge_exception_message_makes_a_small_result_that_still_says_where() -> None:
    document = "x = 1\nraise ValueError('x' * 8_000_000 + 'END')\n"
    outcome = run(snippet.for_lines(document, "/virtual/huge.py", 0, 1))
    error = outcome["error"]
    assert (error["type"], error["line"], error["column"]) == ("ValueError", 2, 0)
    assert len(json.dumps(outcome)) < 100_000  # the message alone was 8 MB, twice over
    assert len(error["message"]) <= runner.MAX_MESSAGE_CHARS + 100
    # Head and tail kept, and how much went between them is said.
    assert error["message"].startswith("xxxx") and error["message"].endswith("xxxxEND")
    assert f"{8_000_003 - runner.MAX_MESSAGE_CHARS:,} characters omitted" in error["message"]
    assert len(error["traceback"]) <= runner.MAX_TRACEBACK_CHARS + 100
    assert error["traceback"].startswith("Traceback (most recent call last):")
    assert '"/virtual/huge.py", line 2' in error["traceback"]
    assert error["traceback"].rstrip().endswith("END")


def test_endless_recursion_keeps_the_outer_and_the_innermost_frames() -> None:
    document = "def down(n):\n    return down(n + 1)\n\n\ndown(0)\n"
    outcome = run(snippet.for_lines(document, "/virtual/deep.py", 0, 4))
    error = outcome["error"]
    assert error["type"] == "RecursionError"
    frames = error["frames"]
    assert len(frames) == runner.MAX_FRAMES
    assert (frames[0]["name"], frames[0]["line"]) == ("<module>", 5)
    assert (frames[-1]["name"], frames[-1]["line"]) == ("down", 2)
    assert error["line"] == 2  # the diagnostic goes where it ended


def test_huge_names_and_a_broken_str_do_not_lose_the_run() -> None:
    document = (
        "class Loud(Exception):\n"
        "    def __str__(self):\n"
        "        raise RuntimeError('no')\n"
        "\n"
        "\n"
        "Named = type('N' * 1_000_000, (Exception,), {})\n"
        "try:\n"
        "    raise Named('named')\n"
        "except Exception as named:\n"
        "    raise Loud() from named\n"
    )
    outcome = run(snippet.for_lines(document, "/virtual/odd.py", 0, 9))
    error = outcome["error"]
    assert error["type"] == "Loud" and "str() failed" in error["message"]
    assert error["line"] == 10
    assert len(json.dumps(outcome)) < 100_000  # the other type's million-character name


def test_notes_follow_the_message_one_per_line() -> None:
    document = "e = KeyError('k')\ne.add_note('first note')\ne.add_note('second')\nraise e\n"
    outcome = run(snippet.for_lines(document, "/virtual/notes.py", 0, 3))
    assert outcome["error"]["message"] == "'k'\nfirst note\nsecond"


def test_a_forged_error_in_the_result_channel_is_clipped_by_the_server() -> None:
    """The code can write to its own result pipe: the server clips what it reads too."""
    forged = {
        "type": "T" * 1_000_000,
        "message": "m" * 5_000_000,
        "traceback": "t" * 5_000_000,
        "frames": [{"file": "f" * 10_000, "line": n, "name": "g"} for n in range(50_000)],
    }
    error = error_from_json(forged)
    assert error is not None
    assert len(error.type) <= runner.MAX_NAME_CHARS + 100
    assert len(error.message) <= runner.MAX_MESSAGE_CHARS + 100
    assert len(error.traceback) <= runner.MAX_TRACEBACK_CHARS + 100
    assert len(error.frames) == runner.MAX_FRAMES and error.frames[-1].line == 49_999
    assert all(len(frame.file) <= runner.MAX_NAME_CHARS + 100 for frame in error.frames)


# --- every field of the error object (found unguarded by mutation testing) ----------------------


def test_a_multi_line_expression_error_has_its_whole_range_and_every_frame() -> None:
    document = "def f(a):\n    return (a +\n            None)\n\n\nf(1)\n"
    error = run(snippet.for_lines(document, "/virtual/m.py", 0, 5))["error"]
    assert error.pop("traceback").endswith(
        "TypeError: unsupported operand type(s) for +: 'int' and 'NoneType'\n"
    )
    assert error == {
        "type": "TypeError",
        "message": "unsupported operand type(s) for +: 'int' and 'NoneType'",
        "line": 2,
        "column": 12,
        "end_line": 3,
        "end_column": 16,
        "frames": [
            {
                "file": "/virtual/m.py",
                "line": 6,
                "name": "<module>",
                "column": 0,
                "end_line": 6,
                "end_column": 4,
            },
            {
                "file": "/virtual/m.py",
                "line": 2,
                "name": "f",
                "column": 12,
                "end_line": 3,
                "end_column": 16,
            },
        ],
    }


def test_a_syntax_error_in_an_indented_selection_is_placed_in_the_file() -> None:
    document = "if True:\n    x = [1,\n         2 +]\n"
    error = run(snippet.for_lines(document, "/virtual/s.py", 1, 2))["error"]
    assert error == {
        "type": "SyntaxError",
        "message": "invalid syntax",
        "line": 3,
        "column": 12,
        "end_line": 3,
        "end_column": 13,
        "traceback": '  File "/virtual/s.py", line 3\n    2 +]\n       ^\n'
        "SyntaxError: invalid syntax\n",
        "frames": [{"file": "/virtual/s.py", "line": 3, "name": "<module>", "column": 12}],
    }


def test_a_syntax_error_in_a_partial_line_selection_keeps_the_line_text() -> None:
    document = "value = (1, 2 +)\n"
    error = run(snippet.for_selection(document, "/virtual/p.py", (0, 8), (0, 16)))["error"]
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (
        1,
        15,
        1,
        16,
    )
    assert "value = (1, 2 +)" in error["traceback"]  # the document's line, not the snippet's


def test_a_request_with_only_code_and_path_counts_from_line_one() -> None:
    outcome = runner.run_request({"code": "x = 1\n1 / 0", "path": "/virtual/min.py"})
    error = outcome["error"]
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (2, 0, 2, 5)
    assert "    1 / 0\n" in error["traceback"]  # the code itself stood in for the document


def test_frames_outside_the_document_have_no_columns_and_the_error_stays_in_it() -> None:
    document = "import json\njson.loads('{')"  # no final newline
    outcome = runner.run_request({"code": document, "path": "/virtual/j.py", "document": document})
    error = outcome["error"]
    assert error["type"] == "json.decoder.JSONDecodeError"
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (
        2,
        0,
        2,
        15,
    )
    assert [sorted(frame) for frame in error["frames"][1:]] == [["file", "line", "name"]] * 3
    assert "    json.loads('{')\n" in error["traceback"]


def test_an_awaited_trailing_expression_gives_its_value() -> None:
    document = "import asyncio\nawait asyncio.sleep(0, result=5)\n"
    outcome = run(snippet.for_lines(document, "/virtual/a.py", 0, 1))
    assert (outcome["status"], outcome["value"], outcome["error"]) == ("ok", "5", None)
