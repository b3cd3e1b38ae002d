"""REPL fidelity through real session workers (and fresh local processes where it applies):
`_`, exception notes, SyntaxError messages in file lines, the "select the whole function"
hint only where it helps, a user's own compile() errors, and __future__ features that stay
in effect for the session's later runs."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.results import RunResult

Executor = SessionExecutor | LocalExecutor


@pytest.fixture(autouse=True)
def interruptible_children() -> Iterator[None]:
    """Children inherit this process's SIGINT disposition; in-process runner tests may have
    left it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
async def session() -> AsyncIterator[SessionExecutor]:
    executor = SessionExecutor()
    try:
        yield executor
    finally:
        await executor.close()


@pytest.fixture(params=["session", "local"])
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    chosen: Executor = SessionExecutor() if request.param == "session" else LocalExecutor()
    try:
        yield chosen
    finally:
        await chosen.close()


async def run(executor: Executor, code: str, folder: Path, name: str = "snippet.py") -> RunResult:
    path = folder / name
    path.write_text(code)
    return await executor.run(
        build_request(snippet.whole_file(code, str(path)), Settings(), folder)
    )


async def run_lines(
    executor: Executor, document: str, folder: Path, first: int, last: int
) -> RunResult:
    """Run 1-based lines first..last of `document`, saved as a file in `folder`."""
    path = folder / "document.py"
    path.write_text(document)
    code = snippet.for_lines(document, str(path), first - 1, last - 1)
    return await executor.run(build_request(code, Settings(), folder))


# --- `_` ---------------------------------------------------------------------------------------


async def test_underscore_is_the_last_trailing_value(
    session: SessionExecutor, tmp_path: Path
) -> None:
    await run(session, "40 + 2\n", tmp_path)
    after = await run(session, "_ + 1\n", tmp_path)
    assert (after.status, after.value) == ("ok", "43")
    # None is not a value the REPL keeps: `_` still holds 43.
    await run(session, "print('no value')\n", tmp_path)
    await run(session, "None\n", tmp_path)
    kept = await run(session, "_\n", tmp_path)
    assert kept.value == "43"


async def test_a_variable_named_underscore_stays_the_users(
    session: SessionExecutor, tmp_path: Path
) -> None:
    await run(session, "_ = 'mine'\n", tmp_path)
    await run(session, "7\n", tmp_path)
    mine = await run(session, "print(_)\n", tmp_path)  # no trailing value: `_` unchanged
    assert mine.stdout == "mine\n"
    # Deleting it shows the REPL's `_` underneath, as in `python -i`.
    revealed = await run(session, "del _\n_\n", tmp_path)
    assert revealed.value == "7"


# --- exception notes ---------------------------------------------------------------------------


async def test_exception_notes_join_the_message(executor: Executor, tmp_path: Path) -> None:
    code = "e = ValueError('bad')\ne.add_note('first note')\ne.add_note('second')\nraise e\n"
    result = await run(executor, code, tmp_path)
    assert result.error is not None
    assert (result.error.type, result.error.line) == ("ValueError", 4)
    assert result.error.message == "bad\nfirst note\nsecond"


# --- SyntaxError messages ----------------------------------------------------------------------


async def test_a_syntax_error_message_names_file_lines(executor: Executor, tmp_path: Path) -> None:
    document = "".join(f"a{n} = {n}\n" for n in range(1, 14)) + "for x in range(3):\nprint(x)\n"
    result = await run_lines(executor, document, tmp_path, 14, 15)
    assert result.error is not None
    assert result.error.type == "IndentationError"
    assert result.error.message == "expected an indented block after 'for' statement on line 14"
    assert result.error.line == 15


async def test_a_mismatched_bracket_names_the_opening_line_in_the_file(
    executor: Executor, tmp_path: Path
) -> None:
    document = "\n" * 20 + "values = (1,\n    2]\n"
    result = await run_lines(executor, document, tmp_path, 21, 22)
    assert result.error is not None
    assert result.error.message == (
        "closing parenthesis ']' does not match opening parenthesis '(' on line 21"
    )
    assert result.error.line == 22


HINT = "Select the whole function"


CUT_FROM_DEFS = "def f(x):\n    y = x + 1\n    return y\n\n\ndef g():\n    yield 1\n"
METHOD = "class A:\n    async def m(self):\n        # the answer\n\n        return await 1\n"


@pytest.mark.parametrize(
    ("document", "first", "last", "keyword"),
    [
        (CUT_FROM_DEFS, 2, 3, "return"),
        (CUT_FROM_DEFS, 7, 7, "yield"),
        (METHOD, 3, 5, "return"),
    ],
)
async def test_the_select_the_function_hint_for_a_body_cut_from_its_def(
    executor: Executor, tmp_path: Path, document: str, first: int, last: int, keyword: str
) -> None:
    result = await run_lines(executor, document, tmp_path, first, last)
    assert result.error is not None
    assert (result.error.type, result.error.line) == ("SyntaxError", last)
    assert result.error.message.startswith(f"'{keyword}' outside function: the selection")
    assert HINT in result.error.message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "async def agen():\n    yield 1\n    return 2\n",
            "'return' with value in async generator",
        ),
        ("def f(x):\n    await x\n", "'await' outside async function"),
        ("class A:\n    return 1\n", "'return' outside function"),
        ("def f():\n    class A:\n        return 1\n", "'return' outside function"),
        # Top-level code of the file: the error is the file's own, not the selection's.
        ("x = 1\nif x:\n    return x\n", "'return' outside function"),
        ("f = lambda: (yield 1), (yield 2)\n", "'yield' outside function"),
    ],
)
async def test_no_hint_when_the_selection_holds_the_def(
    executor: Executor, tmp_path: Path, document: str, message: str
) -> None:
    last = len(document.splitlines())
    result = await run_lines(executor, document, tmp_path, 1, last)
    assert result.error is not None
    assert result.error.type == "SyntaxError"
    assert result.error.message == message


async def test_a_syntax_error_from_the_users_own_compile_keeps_pythons_message(
    executor: Executor, tmp_path: Path
) -> None:
    code = "import ast\nsource = 'x = ('\nast.parse(source)\n"
    parsed = await run(executor, code, tmp_path)
    assert parsed.error is not None
    assert parsed.error.type == "SyntaxError"
    assert parsed.error.message == "'(' was never closed"
    assert parsed.error.line == 3  # the call in the user's file
    compiled = await run(executor, "compile('1 +', '<mine>', 'exec')\n", tmp_path)
    assert compiled.error is not None
    assert compiled.error.message == "invalid syntax"
    assert compiled.error.line == 1


async def test_a_raised_syntax_error_with_notes_keeps_them(
    executor: Executor, tmp_path: Path
) -> None:
    code = "e = SyntaxError('custom', ('f.py', 3, 1, 'x', 3, 2))\ne.add_note('noted')\nraise e\n"
    result = await run(executor, code, tmp_path)
    assert result.error is not None
    assert result.error.message == "custom\nnoted"


# --- __future__ --------------------------------------------------------------------------------

ANNOTATED = "def f(x: NotDefinedAnywhere) -> None:\n    pass\nf.__annotations__['x']\n"


async def test_a_future_import_stays_in_effect_for_later_session_runs(
    session: SessionExecutor, tmp_path: Path
) -> None:
    without = await run(session, ANNOTATED, tmp_path)
    assert without.error is not None and without.error.type == "NameError"
    first = await run(session, "from __future__ import annotations\n", tmp_path)
    assert first.status == "ok"
    later = await run(session, ANNOTATED, tmp_path)
    assert (later.status, later.value) == ("ok", "'NotDefinedAnywhere'")
    # The trailing expression is compiled with it too.
    lam = await run(session, "def g(y: Missing): pass\ng.__annotations__\n", tmp_path)
    assert lam.value == "{'y': 'Missing'}"


async def test_a_restarted_session_starts_without_future_features(
    session: SessionExecutor, tmp_path: Path
) -> None:
    await run(session, "from __future__ import annotations\n", tmp_path)
    await session.restart()
    after = await run(session, ANNOTATED, tmp_path)
    assert after.error is not None and after.error.type == "NameError"


async def test_fresh_processes_do_not_carry_future_features(tmp_path: Path) -> None:
    local = LocalExecutor()
    try:
        await run(local, "from __future__ import annotations\n", tmp_path)
        after = await run(local, ANNOTATED, tmp_path)
    finally:
        await local.close()
    assert after.error is not None and after.error.type == "NameError"


async def test_a_bare_syntax_error_reads_as_pythons_traceback_shows_it(
    executor: Executor, tmp_path: Path
) -> None:
    result = await run(executor, "raise SyntaxError\n", tmp_path)
    assert result.error is not None
    assert (result.error.type, result.error.message) == ("SyntaxError", "<no detail available>")
