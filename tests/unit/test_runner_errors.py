"""The `error` object of a run (runner.py `describe_exception` and what it uses), in-process.

Each test pins down what the user or the server sees of an exception: its type and message
(with notes, chained causes, and what is left when `__str__` breaks), its place in code
points, its frames (the runner's own never among them), the traceback text exactly as Python
prints it, the buffer's lines that traceback and any code reading linecache see, and how
huge messages and frame lists are clipped.

Every document here is built at run time under a path of its own: `register_document`
keeps what it registered for the very same text object, so a literal reused by a second run
in the same process (mutation testing runs each test twice) would not be registered again.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import itertools
import linecache
import signal
import subprocess
import sys
import traceback
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp.execution import runner
from tests.pythons import run_requests_under

_numbers = itertools.count()


@pytest.fixture(autouse=True)
def process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """run_request replaces `__main__` and ignores SIGINT/SIGXCPU once the code is over, as
    the child process should, and the code here clears linecache: put them back."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGXCPU)}
    lines = dict(linecache.cache)
    yield
    linecache.cache.clear()
    linecache.cache.update(lines)
    for number, handler in handlers.items():
        signal.signal(number, handler)


def fresh_path(stem: str) -> str:
    """A document path no other run in this process has used."""
    return f"/virtual/{uuid.uuid4().hex}/{stem}{next(_numbers)}.py"


def fresh(*lines: str) -> str:
    """A document made now, so a new text object each time (never a shared literal)."""
    return "".join(lines)


def run(document: str, path: str) -> dict[str, Any]:
    return runner.run_request({"code": document, "path": path, "document": document})


def error_of(*lines: str) -> tuple[dict[str, Any], str]:
    path = fresh_path("doc")
    outcome = run(fresh(*lines), path)
    assert outcome["status"] == "error", outcome
    error: dict[str, Any] = outcome["error"]
    return error, path


def starts_in_the_runner(error: dict[str, Any]) -> bool:
    """Whether the error's first frame, or its traceback's, is one of the runner's own."""
    first_frame = [frame["file"] for frame in error["frames"][:1]]
    first_in_text = traceback_files(error["traceback"])[:1]
    return runner.RUNNER_FILE in first_frame + first_in_text


def traceback_files(text: str) -> list[str]:
    return [line.split('"')[1] for line in text.splitlines() if line.startswith('  File "')]


def under_mutation_testing(error: dict[str, Any]) -> bool:
    """mutmut wraps each function of runner.py in a trampoline of its own, whose frames sit
    between the runner's: not the runner's, so they (and the runner's below them) are kept.
    Then only the first frame can be checked."""
    return any("/mutmut/" in frame["file"] for frame in error["frames"])


# --- the message ------------------------------------------------------------------------------


def test_a_syntax_error_from_another_file_reads_as_python_shows_it() -> None:
    """A SyntaxError the code raises about another file (its own compile() or ast.parse())
    reads like Python's traceback line: its msg, without str()'s "(file, line N)"."""
    raising = "raise SyntaxError('bad template', ('other.txt', 3, 2, 'a b'))"
    error, path = error_of("x = 1\n", raising, "\n")
    assert error["type"] == "SyntaxError"
    assert error["message"] == "bad template"
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (
        2,
        0,
        2,
        len(raising),
    )
    assert f'File "{path}", line 2, in <module>\n' in error["traceback"]
    assert error["traceback"].endswith("SyntaxError: bad template\n")


def test_a_syntax_error_without_any_detail_says_so() -> None:
    error, _ = error_of("raise SyntaxError()\n")
    assert (error["type"], error["message"], error["line"]) == (
        "SyntaxError",
        "<no detail available>",
        1,
    )


def test_a_broken_str_is_named_by_what_it_raised_and_keeps_the_notes() -> None:
    error, _ = error_of(
        "class Loud(Exception):\n",
        "    def __str__(self):\n",
        "        raise RuntimeError('no')\n",
        "\n",
        "\n",
        "e = Loud()\n",
        "e.add_note('a note')\n",
        "raise e\n",
    )
    assert error["type"] == "Loud"
    assert error["message"] == "<str() failed: RuntimeError>\na note"
    assert error["line"] == 8


# --- clipping ---------------------------------------------------------------------------------


def test_a_message_of_exactly_the_limit_is_kept_whole() -> None:
    error, _ = error_of(f"raise ValueError('m' * {runner.MAX_MESSAGE_CHARS})\n")
    assert error["message"] == "m" * runner.MAX_MESSAGE_CHARS


def test_a_long_message_keeps_an_even_head_and_tail_and_says_how_much_went() -> None:
    error, _ = error_of("raise ValueError('H' * 6000 + 'T' * 6000)\n")
    half = runner.MAX_MESSAGE_CHARS // 2
    assert error["message"] == ("H" * half + "\n… [2,000 characters omitted] …\n" + "T" * half)


def test_a_long_call_chain_keeps_its_outer_quarter_and_innermost_rest() -> None:
    depth = 130
    lines = [f"def f{n}():\n    f{n + 1}()\n\n\n" for n in range(depth)]
    lines.append(f"def f{depth}():\n    raise ValueError('deep')\n\n\nf0()\n")
    error, path = error_of(*lines)
    names = [frame["name"] for frame in error["frames"]]
    outer = runner.MAX_FRAMES // 4
    inner = runner.MAX_FRAMES - outer
    every = ["<module>", *(f"f{n}" for n in range(depth + 1))]
    assert names == every[:outer] + every[-inner:]
    assert error["frames"][-1]["line"] == 4 * depth + 2
    assert all(frame["file"] == path for frame in error["frames"])


# --- where it happened ------------------------------------------------------------------------


def test_a_frame_without_column_positions_starts_at_its_lines_first_code() -> None:
    """Python 3.8-3.10 (and 3.11+ under PYTHONNODEBUGRANGES) give a frame no columns: the
    error then starts at its line's first code character. Here the code runs an AST it
    compiled without columns, under the document's own name, so that its failing line 7
    is the document's indented line 7."""
    error, path = error_of(
        "import ast\n",
        "tree = ast.parse('\\n' * 6 + 'y = 1 / 0\\n')\n",
        "for node in ast.walk(tree):\n",
        "    if 'col_offset' in node._attributes:\n",
        "        node.col_offset = node.end_col_offset = -1\n",
        "if True:\n",
        "    exec(compile(tree, __file__, 'exec'))\n",
    )
    assert error["type"] == "ZeroDivisionError"
    assert error["frames"][-1] == {
        "file": path,
        "line": 7,
        "name": "<module>",
        "column": 4,
        "end_line": 7,
        "end_column": None,
    }
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (
        7,
        4,
        7,
        None,
    )
    assert error["frames"][-2]["column"] == 4  # the exec(...) call itself has columns


def test_a_frame_without_columns_on_an_unindented_line_starts_at_column_zero() -> None:
    error, _ = error_of(
        "import ast\n",
        "tree = ast.parse('y = 1\\nz = 1 / 0\\n')\n",
        "for node in ast.walk(tree):\n",
        "    if 'col_offset' in node._attributes:\n",
        "        node.col_offset = node.end_col_offset = -1\n",
        "exec(compile(tree, __file__, 'exec'))\n",
    )
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (
        2,
        0,
        2,
        None,
    )


@pytest.mark.parametrize(
    ("line", "column"),
    [(2, 4), (3, None), (40, None)],  # indented code, a blank line, past the document's end
)
def test_a_raised_syntax_error_without_offset_starts_at_its_lines_code(
    line: int, column: int | None
) -> None:
    error, path = error_of(
        "if True:\n",
        f"    raise SyntaxError('bad config', (__file__, {line}, None, None))\n",
        "   \n",
    )
    assert error == {
        "type": "SyntaxError",
        "message": "bad config",
        "line": line,
        "column": column,
        "end_line": None,
        "end_column": None,
        "traceback": f'  File "{path}", line {line}\nSyntaxError: bad config\n',
        "frames": [{"file": path, "line": line, "name": "<module>", "column": column}],
    }


# --- no frame of the document -----------------------------------------------------------------


def test_a_document_holding_a_nul_character_is_refused_without_any_frame() -> None:
    """The compiler refuses the text before any of it runs: no line to point at, and none
    of the runner's own frames in what the user sees."""
    error, _ = error_of("x = 1\n", "y = 'a\0b'\n")
    assert error["type"] in ("SyntaxError", "ValueError")  # ValueError on older Pythons (3.11.2)
    assert error["message"] == "source code string cannot contain null bytes"
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (
        None,
        None,
        None,
        None,
    )
    assert not starts_in_the_runner(error)
    if not under_mutation_testing(error):
        assert error["frames"] == []
        assert error["traceback"] == f"{error['type']}: {error['message']}\n"


def test_top_level_await_inside_a_running_loop_names_asyncios_frame_not_the_runners() -> None:
    """The only frames are the runner's and asyncio's (the code never started): the error
    shows asyncio's, where the refusal was raised, and none of the runner's."""
    path = fresh_path("loop")
    document = fresh("import asyncio\n", "await asyncio.sleep(0)\n")

    async def inside_a_loop() -> dict[str, Any]:
        return run(document, path)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the coroutine never awaited
        outcome = asyncio.run(inside_a_loop())
        gc.collect()
    error = outcome["error"]
    assert error["type"] == "RuntimeError"
    assert "running event loop" in error["message"]
    assert (error["line"], error["column"], error["end_line"], error["end_column"]) == (
        None,
        None,
        None,
        None,
    )
    runners_file = sys.modules["asyncio.runners"].__file__
    assert (error["frames"][-1]["file"], error["frames"][-1]["name"]) == (runners_file, "run")
    assert traceback_files(error["traceback"])[-1] == runners_file
    assert not starts_in_the_runner(error)
    if not under_mutation_testing(error):
        assert len(error["frames"]) == 1
        assert runner.RUNNER_FILE not in error["traceback"]


# --- the traceback text -----------------------------------------------------------------------


CHAINED = (
    "def inner():\n"
    "    raise KeyError('k')\n"
    "\n"
    "\n"
    "def outer():\n"
    "    try:\n"
    "        inner()\n"
    "    except KeyError as exc:\n"
    "        raise ValueError('wrapped') from exc\n"
    "\n"
    "\n"
    "try:\n"
    "    outer()\n"
    "except ValueError:\n"
    "    e = ZeroDivisionError('last')\n"
    "    e.add_note('noted')\n"
    "    raise e\n"
)


def test_the_traceback_is_exactly_what_python_prints_for_the_file(tmp_path: Path) -> None:
    """Chained causes, notes, source lines and markers: the run's traceback is Python's
    own for the same file, without a line of the runner."""
    script = tmp_path / f"chained{next(_numbers)}.py"
    script.write_text(CHAINED, encoding="utf-8")
    python = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=False
    )
    assert python.returncode == 1
    document = script.read_text(encoding="utf-8")  # a new text object
    outcome = run(document, str(script))
    error = outcome["error"]
    assert error["traceback"] == python.stderr
    assert error["message"] == "last\nnoted"
    assert [(frame["name"], frame["line"]) for frame in error["frames"]] == [("<module>", 17)]


def test_the_exception_keeps_only_the_users_frames_for_whoever_shows_it_next() -> None:
    """The Jupyter helper re-raises the exception after describing it, and IPython prints
    the traceback it carries: that traceback starts at the user's first frame."""
    path = fresh_path("kept")
    document = fresh("def f():\n", "    return 1 / 0\n", "\n", "\n", "f()\n")
    runner.register_document(path, document)
    code = compile(document, path, "exec")
    caught: BaseException | None = None
    try:
        exec(code, {})
    except ZeroDivisionError as exc:
        caught = exc
    assert caught is not None
    error = runner.describe_exception(caught, path)
    kept = [
        (frame.f_code.co_filename, line) for frame, line in traceback.walk_tb(caught.__traceback__)
    ]
    assert kept == [(path, 5), (path, 2)]
    assert "".join(traceback.format_exception(caught)) == error["traceback"]
    assert __file__ not in error["traceback"]


# --- the buffer's lines in linecache ----------------------------------------------------------


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
@pytest.mark.parametrize("final", [True, False])
def test_code_reading_linecache_sees_the_buffers_lines_each_ending_in_a_newline(
    ending: str, final: bool
) -> None:
    path = fresh_path("lines")
    document = fresh("import linecache\n", "x = 1", ending, "linecache.getlines(__file__)")
    if final:
        document += ending
    outcome = run(document, path)
    assert outcome["status"] == "ok", outcome
    assert ast.literal_eval(outcome["value"]) == [
        "import linecache\n",
        "x = 1" + ending,
        "linecache.getlines(__file__)" + (ending if final else "\n"),
    ]


def test_an_empty_run_is_fine() -> None:
    outcome = runner.run_request({"code": fresh(""), "path": fresh_path("empty")})
    assert (outcome["status"], outcome["value"], outcome["error"]) == ("ok", None, None)


def test_an_unchanged_document_is_not_split_again() -> None:
    """A session passes the very same text object while the document is unchanged; the
    lines registered for it stay as they are (splitting a big document again per run is
    most of what a small run costs)."""
    path = fresh_path("same")
    document = fresh("x = 1\n", "y = x + 1\n")
    assert run(document, path)["status"] == "ok"
    registered = linecache.cache[path]
    assert run(document, path)["status"] == "ok"
    assert linecache.cache[path] is registered
    # A changed document (another text object) is registered again.
    changed = fresh("x = 2\n", "y = x + 1\n")
    assert run(changed, path)["status"] == "ok"
    assert linecache.getlines(path) == ["x = 2\n", "y = x + 1\n"]


def test_the_same_document_is_registered_again_after_the_code_cleared_linecache() -> None:
    path = fresh_path("cleared")
    document = fresh(
        "import linecache\n",
        "if linecache.getlines(__file__):\n",
        "    linecache.clearcache()\n",
        "else:\n",
        "    1 / 0\n",
    )
    assert run(document, path)["status"] == "ok"
    assert path not in linecache.cache
    # Run again: the buffer's lines are back, so the (same) code finds them and passes.
    outcome = run(document, path)
    assert outcome["status"] == "ok", outcome


# --- under the oldest interpreters the runner supports ----------------------------------------


@pytest.mark.parametrize("minor", [8, 9, 10])
def test_before_311_an_error_without_columns_starts_at_its_lines_code(minor: int) -> None:
    """Python 3.8-3.10 give no column, end line or end column to any frame (FrameSummary
    has no such attributes before 3.11): the error and its frames start at the line's
    first code character and have no end, and nothing else about the error changes."""
    documents = [
        "def f(a):\n    return a[\n        5]\n\n\nf([])\n",
        "import json\njson.loads('{')",
        "e = KeyError('k')\nraise ValueError('H' * 6000 + 'T' * 6000) from e\n",
    ]
    requests = [
        {"code": document, "path": "/virtual/old.py", "document": document}
        for document in documents
    ]
    indexing, decoding, chained = (
        outcome["error"] for outcome in run_requests_under(minor, requests)
    )
    assert indexing["frames"] == [
        {
            "file": "/virtual/old.py",
            "line": 6,
            "name": "<module>",
            "column": 0,
            "end_line": None,
            "end_column": None,
        },
        {
            "file": "/virtual/old.py",
            "line": 2,
            "name": "f",
            "column": 4,
            "end_line": None,
            "end_column": None,
        },
    ]
    assert (indexing["type"], indexing["line"], indexing["column"], indexing["end_line"]) == (
        "IndexError",
        2,
        4,
        None,
    )
    assert "    return a[\n" in indexing["traceback"]
    assert (decoding["type"], decoding["line"], decoding["column"]) == (
        "json.decoder.JSONDecodeError",
        2,
        0,
    )
    assert [sorted(frame) for frame in decoding["frames"][1:]] == [["file", "line", "name"]] * 3
    half = runner.MAX_MESSAGE_CHARS // 2
    assert chained["message"] == "H" * half + "\n… [2,000 characters omitted] …\n" + "T" * half
    assert (
        "The above exception was the direct cause of the following exception"
        in (chained["traceback"])
    )
