"""Live variables without an editor: the wording (variables.py), what a line asks about, the
inspector in this process, the use cases with a real session worker, and the backstop for
an inspection the worker's alarm cannot stop."""

from __future__ import annotations

import ast
import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codeexec_lsp import snippet
from codeexec_lsp.actions import variables as actions
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution import inspector
from codeexec_lsp.execution import session as session_module
from codeexec_lsp.execution.base import InspectAnswer
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.variables import (
    CompletionContext,
    NameAt,
    Variable,
    attribute_completions,
    busy_markdown,
    completion_context,
    hover_markdown,
    key_completions,
    name_at,
    variable_line,
    variables_markdown,
)

# --- wording -------------------------------------------------------------------------------


def test_hover_is_an_annotated_assignment_with_a_preview_for_tables() -> None:
    n = Variable("n", "int", "42")
    assert variable_line(n) == "n: int = 42"
    assert hover_markdown(n).startswith("```python\nn: int = 42\n```")
    assert "```text" not in hover_markdown(n)
    frame = Variable("df", "DataFrame", "100 rows × 3 columns", preview="   a\n0  1")
    text = hover_markdown(frame)
    assert "df: DataFrame = 100 rows × 3 columns" in text
    assert "```text\n   a\n0  1\n```" in text
    assert "session" in text


def test_backticks_in_a_value_cannot_close_the_fence() -> None:
    text = hover_markdown(Variable("s", "str", "'```'"))
    assert text.startswith("````python\n") and "\n````" in text


def test_a_long_summary_is_clipped_on_hover() -> None:
    line = variable_line(Variable("s", "str", "x" * 500))
    assert len(line) < 230 and line.endswith("…")


def test_malformed_inspector_entries_are_dropped() -> None:
    assert Variable.from_json({"name": "n", "type": "int"}) is None
    assert Variable.from_json("n") is None
    parsed = Variable.from_json({"name": "n", "type": "int", "summary": "1", "preview": ""})
    assert parsed == Variable("n", "int", "1")
    assert parsed.to_json() == {"name": "n", "type": "int", "summary": "1", "kind": "value"}


def test_variables_page_is_a_table_with_escaped_cells() -> None:
    page = variables_markdown("proj", [Variable("t", "tuple", "(1, '|')")])
    assert page.startswith("# Session variables — proj\n")
    assert "| `t` | tuple | (1, '\\|') |" in page
    assert "no variables" in variables_markdown("proj", [])
    busy = variables_markdown("proj", [], "(session busy) ask again.")
    assert "(session busy)" in busy and "no variables" not in busy


def test_busy_says_so() -> None:
    assert "(session busy)" in busy_markdown("n") and "`n`" in busy_markdown("n")


# --- which name, which completion ------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "column", "expected"),
    [
        ("total = n + 1", 8, NameAt(("n",), 8, 9)),
        ("total = n + 1", 9, NameAt(("n",), 8, 9)),  # just after the name still counts
        ("x = os.path.join(a)", 9, NameAt(("os", "path"), 7, 11)),
        ("x = os.path.join(a)", 4, NameAt(("os",), 4, 6)),
        ("émoji = 1", 1, NameAt(("émoji",), 0, 5)),
        ('print("n")', 7, None),  # in a string
        ("x = 1  # n", 9, None),  # in a comment
        ("for n in x", 1, None),  # a keyword
        ("f().x", 4, None),  # an attribute of a call's result
        ("1.real", 3, None),
        ("x = 12", 5, None),  # a number
        ("a² = 1", 0, None),  # \w, but not a Python name (found by hypothesis)
        ("", 0, None),
    ],
)
def test_name_at(line: str, column: int, expected: NameAt | None) -> None:
    assert name_at(line, column) == expected


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        ("names.", CompletionContext("attributes", ("names",), "")),
        ("x = os.path.jo", CompletionContext("attributes", ("os", "path"), "jo")),
        ('d["', CompletionContext("keys", ("d",), "", '"')),
        ("d['k", CompletionContext("keys", ("d",), "k", "'")),
        ("d[", CompletionContext("keys", ("d",), "")),
        ('obj.table["a', CompletionContext("keys", ("obj", "table"), "a", '"')),
        ("f().", None),
        ('"s".', None),
        ("# names.", None),
        ('print("names.', None),
        ('x = """d["', None),
        ("1.", None),
        ("if.", None),
        ("names", None),
    ],
)
def test_completion_context(before: str, expected: CompletionContext | None) -> None:
    assert completion_context(before) == expected


def test_attribute_items_hide_private_names_until_typed_and_match_fuzzily() -> None:
    attributes = [
        {"name": "append", "kind": "method"},
        {"name": "_private", "kind": "field"},
        {"name": "shape", "kind": "property"},
        {"name": 3, "kind": "field"},  # malformed: skipped
    ]
    assert [c.label for c in attribute_completions(attributes, "")] == ["append", "shape"]
    assert [c.label for c in attribute_completions(attributes, "apd")] == ["append"]
    assert [c.label for c in attribute_completions(attributes, "_")] == ["_private"]
    assert attribute_completions(attributes, "zz") == []
    item = attribute_completions(attributes, "sh")[0]
    assert item.kind == "property" and "session" in item.detail


def test_key_items_inside_quotes_are_bare_and_escaped_literals_otherwise() -> None:
    keys = [{"key": "k", "type": "int"}, {"key": 'say "hi"', "type": ""}, {"key": 3, "type": ""}]
    quoted = key_completions(keys, "", '"')
    assert [(c.label, c.insert) for c in quoted] == [("k", "k"), ('say "hi"', 'say \\"hi\\"')]
    assert "int" in quoted[0].detail and "session" in quoted[0].detail
    bare = key_completions(keys, "", None)
    assert [c.insert for c in bare] == ['"k"', '"say \\"hi\\""', "3"]
    assert [c.label for c in key_completions(keys, "k", "'")] == ["k"]


# Lines made of the pieces that matter here (names, dots, brackets, quotes, comments).
PYTHONISH = st.lists(
    st.sampled_from([*"an_.[]()'\"#\\ 1é", "if", "d[", "os.", '"""']),
    max_size=20,
).map("".join)


@given(line=st.text(max_size=40) | PYTHONISH, column=st.integers(-5, 50))
def test_any_line_and_column_give_a_name_inside_the_line_or_none(line: str, column: int) -> None:
    found = name_at(line, column)
    if found is not None:
        assert 0 <= found.start < found.end <= len(line)
        assert line[found.start : found.end] == found.path[-1]
        assert all(part.isidentifier() for part in found.path)


@given(before=st.text(max_size=40) | PYTHONISH)
def test_any_text_before_the_cursor_gives_a_sound_completion_context(before: str) -> None:
    context = completion_context(before)
    if context is not None:
        assert before.endswith(context.prefix)
        assert all(part.isidentifier() for part in context.path)
        assert context.quote in (None, "'", '"')


# --- the inspector, in this process ------------------------------------------------------------


class SleepsForever:
    def __repr__(self) -> str:
        while True:
            time.sleep(1)


class Talks:
    def __repr__(self) -> str:
        print("noise")
        return "Talks()"


@pytest.fixture
def alarm_restored() -> Iterator[None]:
    """Whatever alarm was set before (pytest-timeout's, when it runs) is set again after."""
    previous = signal.getsignal(signal.SIGALRM)
    before, _ = signal.getitimer(signal.ITIMER_REAL)
    yield
    after, _ = signal.getitimer(signal.ITIMER_REAL)
    assert (0 < after <= before) if before else after == 0
    assert signal.getsignal(signal.SIGALRM) == previous


def test_inspector_summaries_bounds_and_cut_off(
    alarm_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {
        "n": 42,
        "_hidden": 1,
        "many": list(range(100_000)),
        "slow": SleepsForever(),
        "talks": Talks(),
        "signal": signal,
        "fn": lambda x, y=1: x,
    }
    answer = inspector.inspect_request({"id": 5, "what": "variables", "budget_s": 2}, namespace)
    assert answer["inspected"] == 5
    found = {entry["name"]: entry for entry in answer["variables"]}
    assert "_hidden" not in found
    assert found["n"]["summary"] == "42" and found["n"]["type"] == "int"
    assert found["many"]["summary"].startswith("100,000 items: [0, 1, 2")
    assert len(found["many"]["summary"]) <= inspector.MAX_SUMMARY_CHARS
    assert found["slow"]["summary"].startswith("(could not show: it took longer than")
    assert found["talks"]["summary"] == "Talks()"
    assert found["signal"] == {
        "name": "signal",
        "type": "module",
        "kind": "module",
        "summary": "signal",
    }
    assert found["fn"]["summary"] == "<lambda>(x, y=1)"
    assert "noise" not in capsys.readouterr().out  # what a __repr__ prints is thrown away


def test_inspector_value_attributes_keys_and_missing(alarm_restored: None) -> None:
    namespace: dict[str, Any] = {"d": {"k": [1], 2: "two", (1, 2): 0}, "names": ["a"]}
    ask = inspector.inspect_request
    assert ask({"id": 1, "what": "value", "path": ["nothere"]}, namespace)["missing"] is True
    value = ask({"id": 1, "what": "value", "path": ["d"]}, namespace)["variables"][0]
    assert value["type"] == "dict"
    keys = ask({"id": 1, "what": "keys", "path": ["d"]}, namespace)["keys"]
    assert keys == [{"key": "k", "type": "list"}, {"key": 2, "type": "str"}]  # no tuple keys
    attributes = ask({"id": 1, "what": "attributes", "path": ["names"]}, namespace)["attributes"]
    assert {"name": "append", "kind": "method"} in attributes
    first_private = next(i for i, a in enumerate(attributes) if a["name"].startswith("_"))
    assert all(not a["name"].startswith("_") for a in attributes[:first_private])
    assert ask({"id": 1, "what": "keys", "path": ["names", "nope"]}, namespace)["missing"]


def test_the_budget_ends_a_listing_without_running_on(alarm_restored: None) -> None:
    namespace = {f"slow{i}": SleepsForever() for i in range(10)}
    answer = inspector.inspect_request({"id": 1, "what": "variables", "budget_s": 1}, namespace)
    summaries = [entry["summary"] for entry in answer["variables"]]
    assert len(summaries) == 10
    assert summaries[-1] == "(not shown: no time left to look at it)"
    assert summaries[0].startswith("(could not show: it took longer")


def test_a_users_own_alarm_survives_an_inspection() -> None:
    fired: list[int] = []
    saved = 0.0
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        saved, _ = signal.setitimer(signal.ITIMER_REAL, 30)  # pytest-timeout's, if any
        inspector.inspect_request({"id": 1, "what": "variables"}, {"n": 1})
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left <= 30
        assert signal.getsignal(signal.SIGALRM) is not inspector._on_alarm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if saved:
            signal.setitimer(signal.ITIMER_REAL, saved)


# --- the use cases with a real session ------------------------------------------------------


@pytest.fixture
async def executor() -> AsyncIterator[SessionExecutor]:
    sessions = SessionExecutor()
    try:
        yield sessions
    finally:
        await sessions.close()


async def run_in(sessions: SessionExecutor, code: str, tmp_path: Path) -> actions.Place:
    path = tmp_path / "live.py"
    path.write_text(code)
    request = build_request(snippet.whole_file(code, str(path)), Settings(), tmp_path)
    result = await sessions.run(request)
    assert result.status == "ok", result.message
    place = actions.place_for(str(path), Settings(), [str(tmp_path)], sessions)
    assert place is not None and place.inspector is sessions
    assert (place.request.cwd, place.request.sandbox) == (request.cwd, request.sandbox)
    return place


async def test_use_cases_against_a_real_session(executor: SessionExecutor, tmp_path: Path) -> None:
    place = await run_in(executor, "n = 42\nnames = ['a']\n", tmp_path)
    shown = await actions.hover(place, "total = n + 1", 8)
    assert shown is not None and "n: int = 42" in shown.markdown
    assert (shown.start, shown.end) == (8, 9)
    assert await actions.hover(place, "unknown + 1", 2) is None
    listed = await actions.list_variables(place, "session")
    assert [v.name for v in listed.variables] == ["n", "names"] and not listed.note
    completions = await actions.complete(place, "names.ap")
    assert [c.label for c in completions.items] == ["append"] and completions.replaces == 2
    local = LocalExecutor(prestart=False)
    assert actions.place_for(str(tmp_path / "x.py"), Settings(executor="local"), [], local) is None
    no_session = await actions.list_variables(None, "local")
    assert "executor is 'local'" in no_session.note


async def test_no_session_is_started_for_a_question(tmp_path: Path) -> None:
    sessions = SessionExecutor()
    request = build_request(
        snippet.for_lines("pass\n", str(tmp_path / "x.py"), 0, 0), Settings(), tmp_path
    )
    answer = await sessions.inspect(request, {"what": "variables"}, 1.0)
    assert answer == InspectAnswer("none") and sessions.pids() == {}


async def test_an_inspection_stuck_past_the_alarm_is_ended_and_the_next_run_says_so(
    executor: SessionExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A __repr__ that blocks SIGALRM stands for C code the worker's alarm cannot stop:
    the question is answered "timeout" at once, runs wait, then the worker is replaced."""
    monkeypatch.setattr(session_module, "HUNG_INSPECTION_S", 1.0)
    code = (
        "import signal, time\n"
        "class Stuck:\n"
        "    def __repr__(self):\n"
        "        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
        "        while True:\n"
        "            time.sleep(1)\n"
        "stuck = Stuck()\n"
    )
    place = await run_in(executor, code, tmp_path)
    pid = next(iter(executor.pids().values()))
    shown = await actions.hover(place, "stuck", 0)
    assert shown is not None and "did not answer" in shown.markdown
    busy = await executor.inspect(place.request, {"what": "variables"}, 1.0)
    assert busy.status == "busy"  # the stuck question still holds the session
    stuck_session = executor._sessions[(place.request.cwd, place.request.sandbox)]
    assert stuck_session.inspecting  # what a queued run can tell it waits for
    request = build_request(
        snippet.whole_file("1 + 1\n", str(tmp_path / "x.py")), Settings(), tmp_path
    )
    after = await executor.run(request)
    assert after.status == "ok" and after.value == "2"
    assert "showing a variable's value hung" in after.message
    assert next(iter(executor.pids().values())) != pid
    assert not stuck_session.inspecting
    gone = await actions.hover(place, "stuck", 0)
    assert gone is None  # the new session does not hold it


async def test_a_question_given_up_by_the_asker_still_frees_the_session(
    executor: SessionExecutor, tmp_path: Path
) -> None:
    place = await run_in(executor, "n = 1\n", tmp_path)
    asking = asyncio.ensure_future(actions.hover(place, "n", 0))
    await asyncio.sleep(0)  # the question is sent
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    for _ in range(100):  # the worker's answer arrives and frees the lock
        answer = await executor.inspect(place.request, {"what": "variables"}, 1.0)
        if answer.status != "busy":
            break
        await asyncio.sleep(0.02)
    assert answer.status == "ok" and answer.answer["variables"][0]["name"] == "n"


async def test_a_run_about_to_take_the_session_counts_as_busy(
    executor: SessionExecutor, tmp_path: Path
) -> None:
    """Just after a run ends, the lock reads as free while the next queued run is woken
    but not yet going: a question must not slip in and make that run wait."""
    place = await run_in(executor, "n = 1\n", tmp_path)
    lock = executor._sessions[(place.request.cwd, place.request.sandbox)].lock
    await lock.acquire()
    next_run = asyncio.ensure_future(lock.acquire())
    await asyncio.sleep(0)  # queued
    lock.release()
    assert not lock.locked()
    answer = await executor.inspect(place.request, {"what": "variables"}, 1.0)
    assert answer.status == "busy"
    await next_run
    lock.release()
    answer = await executor.inspect(place.request, {"what": "variables"}, 1.0)
    assert answer.status == "ok"


def test_the_inspector_runs_in_any_users_interpreter() -> None:
    """It runs under the user's Python, as runner.py does: 3.8 syntax, standard library."""
    source = Path(inspector.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source, feature_version=(3, 8))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0
    }
    # IPython only inside in_ipython, which only an IPython kernel calls.
    assert imported <= sys.stdlib_module_names | {"__future__", "IPython"}, imported


# --- the same questions in a real IPython kernel ---------------------------------------------


@pytest.fixture(scope="module")
def kernel() -> Iterator[Any]:
    pytest.importorskip("ipykernel")
    manager_module = pytest.importorskip("jupyter_client.manager")
    manager, client = manager_module.start_new_kernel(kernel_name="python3")
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def ask_kernel(client: Any, request: dict[str, Any]) -> dict[str, Any]:
    msg_id = client.execute(**inspector.kernel_execute_content({"id": 9, **request}))
    reply = client.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id
    return inspector.answer_from_kernel(reply["content"], 9)


def test_kernel_answers_about_its_user_namespace_without_touching_it(kernel: Any) -> None:
    kernel.execute_interactive("n = 42\nd = {'k': [1]}\n", timeout=30)
    listed = ask_kernel(kernel, {"what": "variables", "budget_s": 2})
    names = {entry["name"]: entry for entry in listed["variables"]}
    assert set(names) == {"n", "d"}  # not In, Out, exit, quit, get_ipython
    assert names["n"]["summary"] == "42"
    assert ask_kernel(kernel, {"what": "keys", "path": ["d"]})["keys"] == [
        {"key": "k", "type": "list"}
    ]
    assert ask_kernel(kernel, {"what": "value", "path": ["nope"]})["missing"] is True
    after = ask_kernel(kernel, {"what": "variables"})  # asked twice: installed once, no trace
    assert {entry["name"] for entry in after["variables"]} == {"n", "d"}
    count = kernel.execute_interactive("1", timeout=30)["content"]["execution_count"]
    assert count == 2  # silent questions did not count as cells


def test_a_kernel_that_cannot_answer_is_an_error_not_an_exception() -> None:
    assert "error" in inspector.answer_from_kernel({"status": "error"}, 1)
    failed = {
        "user_expressions": {
            inspector.KERNEL_EXPRESSION_KEY: {"status": "error", "ename": "KeyError", "evalue": "x"}
        }
    }
    assert inspector.answer_from_kernel(failed, 1)["error"] == "KeyError: x"
    garbled = {
        "user_expressions": {
            inspector.KERNEL_EXPRESSION_KEY: {"status": "ok", "data": {"text/plain": "not json"}}
        }
    }
    assert "error" in inspector.answer_from_kernel(garbled, 1)


def test_kernel_cuts_off_a_hanging_repr_and_keeps_its_state(kernel: Any) -> None:
    kernel.execute_interactive(
        "import time\nclass Stuck:\n    def __repr__(self):\n        while True:\n"
        "            time.sleep(1)\nstuck = Stuck()\nkept = 7\n",
        timeout=30,
    )
    listed = ask_kernel(kernel, {"what": "variables", "budget_s": 2})
    summaries = {entry["name"]: entry["summary"] for entry in listed["variables"]}
    assert summaries["stuck"].startswith("(could not show: it took longer")
    reply = kernel.execute_interactive("kept", timeout=30)
    assert reply["content"]["status"] == "ok"
    assert ask_kernel(kernel, {"what": "value", "path": ["kept"]})["variables"][0]["summary"] == "7"


async def test_what_a_repr_prints_never_reaches_the_next_run(
    executor: SessionExecutor, tmp_path: Path
) -> None:
    code = (
        "import os\n"
        "class Loud:\n"
        "    def __repr__(self):\n"
        "        os.write(1, b'NOISE-FD\\n')\n"
        "        print('NOISE-PY')\n"
        "        return 'Loud()'\n"
        "loud = Loud()\n"
    )
    place = await run_in(executor, code, tmp_path)
    shown = await actions.hover(place, "loud", 0)
    assert shown is not None and "loud: Loud = Loud()" in shown.markdown
    printed = snippet.whole_file("print('x')\n", str(tmp_path / "live.py"))
    after = await executor.run(build_request(printed, Settings(), tmp_path))
    assert (after.stdout, after.stderr) == ("x\n", "")
