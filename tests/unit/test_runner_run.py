"""One run in the child (runner.py `run_request` and what it uses), in-process.

Each test pins down what the server gets back from a run: the result object's exact shape
for a success and a failure, the trailing value's text (a broken or huge `repr`), how
`sys.exit` ends a run, its duration, its rich outputs (shown, the trailing value's own, and
none at all when display.py cannot load), top-level `await`, and what a session keeps from
one run to the next (`_`, `__future__` features, `__file__`).

The process state a run changes (`__main__`, builtins `_` and `display`, the SIGINT and
SIGXCPU handlers, the import hooks display.py installs, the session's __future__ table) is
put back after each test, and every document is made at run time under a path of its own,
so each test passes twice in one process (mutation testing runs it so).
"""

from __future__ import annotations

import builtins
import itertools
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp.execution import runner

_numbers = itertools.count()
RESULT_KEYS = {"status", "value", "error", "duration_ms", "outputs"}


@pytest.fixture(autouse=True)
def process_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What a run changes in its process, saved and put back."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])
    monkeypatch.setattr(builtins, "_", getattr(builtins, "_", None), raising=False)
    monkeypatch.setattr(runner, "_SESSION_FUTURES", {})
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGXCPU)}
    yield
    for number, handler in handlers.items():
        signal.signal(number, handler)


@pytest.fixture
def fresh_display(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """rich_outputs() as in a new child: display.py not loaded yet. What loading it
    installs (the `display` builtin, an import hook, its module) is put back."""
    monkeypatch.setattr(runner, "_DISPLAY", [])
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(builtins, "display", getattr(builtins, "display", None), raising=False)
    for name in ("IPython.core.display_functions", "IPython.core.display", "IPython.display"):
        ipython = sys.modules.get(name)  # installing rebinds their `display`, if imported
        if ipython is not None and hasattr(ipython, "display"):
            monkeypatch.setattr(ipython, "display", ipython.display)
    saved = sys.modules.get("_codeexec_display")
    yield
    if saved is None:
        sys.modules.pop("_codeexec_display", None)
    else:
        sys.modules["_codeexec_display"] = saved


def fresh_path(stem: str = "main") -> str:
    """A document path no other run in this process has used."""
    return f"/virtual/{uuid.uuid4().hex}/{stem}{next(_numbers)}.py"


def text(*lines: str) -> str:
    """Code made now, so a new text object each time (never a shared literal)."""
    return "\n".join(lines) + "\n"


def run(code: str, path: str | None = None, **more: Any) -> dict[str, Any]:
    return runner.run_request({"code": code, "path": path or fresh_path(), **more})


def new_session() -> dict[str, Any]:
    """A session's namespace, made as the session worker makes it."""
    namespace = runner._new_main_module("")
    del namespace["__file__"]  # the worker sets it per run
    return namespace


def run_in(namespace: dict[str, Any], code: str, path: str | None = None) -> dict[str, Any]:
    return runner.run_request({"code": code, "path": path or fresh_path()}, namespace)


# --- the result object --------------------------------------------------------------------


def test_a_successful_run_reports_exactly_its_status_value_and_outputs() -> None:
    result = run(text("6 * 7"))
    assert set(result) == RESULT_KEYS
    assert result["status"] == "ok"
    assert result["value"] == "42"
    assert result["error"] is None
    assert result["outputs"] == []
    assert isinstance(result["duration_ms"], float)


def test_a_failed_run_reports_exactly_its_status_error_and_no_value() -> None:
    result = run(text("x = 1", "1 / 0"))
    assert set(result) == RESULT_KEYS
    assert result["status"] == "error"
    assert result["value"] is None
    assert result["error"]["type"] == "ZeroDivisionError"
    assert result["error"]["line"] == 2
    assert result["outputs"] == []
    assert isinstance(result["duration_ms"], float)


def test_code_without_a_trailing_expression_has_no_value() -> None:
    result = run(text("x = 5"))
    assert result["status"] == "ok"
    assert result["value"] is None


# --- sys.exit -----------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["sys.exit()", "sys.exit(0)", "raise SystemExit", "exit(0)"])
def test_exiting_with_success_is_a_successful_run_without_a_value(ending: str) -> None:
    result = run(text("import sys", "x = 1", ending, "x = 2"))
    assert result["status"] == "ok"
    assert result["value"] is None
    assert result["error"] is None


@pytest.mark.parametrize(("ending", "message"), [("sys.exit(1)", "1"), ("sys.exit('bye')", "bye")])
def test_exiting_with_a_failure_is_a_failed_run(ending: str, message: str) -> None:
    result = run(text("import sys", ending))
    assert result["status"] == "error"
    assert result["error"]["type"] == "SystemExit"
    assert result["error"]["message"] == message
    assert result["error"]["line"] == 2


# --- the trailing value's text -------------------------------------------------------------


def test_a_broken_repr_gives_a_value_that_says_so_and_the_run_still_succeeds() -> None:
    result = run(
        text(
            "class Broken:",
            "    def __repr__(self):",
            "        raise ValueError('no text today')",
            "Broken()",
        )
    )
    assert result["status"] == "ok"
    assert result["value"] == "<repr failed: ValueError: no text today>"


def test_a_value_of_exactly_the_limit_is_kept_whole() -> None:
    result = run(text(f"'a' * {runner.MAX_VALUE_CHARS - 2}"))  # the quotes make the limit
    assert result["value"] == "'" + "a" * (runner.MAX_VALUE_CHARS - 2) + "'"


def test_a_value_past_the_limit_is_clipped_and_says_how_much_was_cut() -> None:
    result = run(text(f"'a' * {runner.MAX_VALUE_CHARS * 2}"))
    whole = "'" + "a" * (runner.MAX_VALUE_CHARS * 2) + "'"
    cut = len(whole) - runner.MAX_VALUE_CHARS
    assert cut == runner.MAX_VALUE_CHARS + 2
    assert result["value"] == whole[: runner.MAX_VALUE_CHARS] + f"… [{cut} characters omitted]"


# --- the duration -------------------------------------------------------------------------


class SteppingClock:
    """A perf_counter that reads the given times in turn (only run_request reads it)."""

    def __init__(self, *readings: float) -> None:
        self.readings = iter(readings)

    def perf_counter(self) -> float:
        return next(self.readings)


def test_the_duration_is_the_time_between_the_start_and_the_end_of_the_run_in_ms(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner, "time", SteppingClock(1000.0, 1000.25))
    assert run(text("1"))["duration_ms"] == 250.0
    monkeypatch.setattr(runner, "time", SteppingClock(7.5, 9.0))
    assert run(text("1 / 0"))["duration_ms"] == 1500.0


def test_the_duration_covers_the_code_and_nothing_outside_the_call() -> None:
    before = time.perf_counter()
    result = run(text("import time", "time.sleep(0.02)"))
    outside_ms = (time.perf_counter() - before) * 1000
    assert 20 <= result["duration_ms"] <= outside_ms


# --- rich outputs -------------------------------------------------------------------------


def card_class() -> str:
    return text(
        "class Card:",
        "    def _repr_html_(self):",
        "        return '<b>card</b>'",
        "    def __repr__(self):",
        "        return 'Card()'",
    )


def test_a_trailing_value_with_a_rich_form_becomes_the_runs_execute_result() -> None:
    result = run(card_class() + "Card()\n")
    assert result["value"] == "Card()"
    [output] = result["outputs"]
    assert output["output_type"] == "execute_result"
    assert output["data"] == {"text/html": "<b>card</b>", "text/plain": "Card()"}


def test_what_was_shown_comes_back_in_order_and_an_error_keeps_it_but_no_result() -> None:
    result = run(
        card_class()
        + text(
            "display({'text/plain': 'first'}, raw=True)",
            "card = Card()",
            "display(card)",
            "card.missing",
        )
    )
    assert result["status"] == "error"
    assert result["error"]["type"] == "AttributeError"
    assert [output["output_type"] for output in result["outputs"]] == ["display_data"] * 2
    assert result["outputs"][0]["data"] == {"text/plain": "first"}
    assert result["outputs"][1]["data"]["text/html"] == "<b>card</b>"


def test_each_run_has_only_its_own_outputs() -> None:
    namespace = new_session()
    shown = run_in(
        namespace,
        text(
            "def show_later():",
            "    display({'text/plain': 'late'}, raw=True)",
            "display({'text/plain': 'now'}, raw=True)",
        ),
    )
    assert [output["data"] for output in shown["outputs"]] == [{"text/plain": "now"}]
    # Shown between runs (as a thread the first run started could): part of no run.
    namespace["show_later"]()
    assert run_in(namespace, text("1"))["outputs"] == []


def test_rich_outputs_are_loaded_and_installed_once(fresh_display: None) -> None:
    display = runner.rich_outputs()
    assert display is not None
    assert display.__name__ == "_codeexec_display"
    assert display.__file__ == str(Path(runner.RUNNER_FILE).with_name("display.py"))
    assert builtins.display is display.display  # type: ignore[attr-defined]
    assert runner.rich_outputs() is display


def test_without_display_py_runs_go_on_without_rich_outputs(
    fresh_display: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with monkeypatch.context() as elsewhere:
        # A runner whose folder has no display.py (a broken install).
        elsewhere.setattr(runner, "RUNNER_FILE", str(tmp_path / "runner.py"))
        assert runner.rich_outputs() is None
    assert runner.rich_outputs() is None
    result = run(card_class() + "Card()\n")
    assert result["status"] == "ok"
    assert result["value"] == "Card()"
    assert result["outputs"] == []
    failed = run(text("1 / 0"))
    assert failed["error"]["type"] == "ZeroDivisionError"
    assert failed["outputs"] == []


# --- top-level await ----------------------------------------------------------------------


def test_top_level_await_runs_the_whole_body_before_the_trailing_value() -> None:
    result = run(text("import asyncio", "await asyncio.sleep(0)", "x = 5", "x * 2"))
    assert result["status"] == "ok"
    assert result["value"] == "10"


def test_an_awaited_trailing_value_is_the_result() -> None:
    result = run(text("import asyncio", "await asyncio.sleep(0, result=7)"))
    assert result["value"] == "7"


def test_code_without_await_runs_outside_any_event_loop() -> None:
    # asyncio.run() refuses to start inside a running loop: the code must not be in one.
    result = run(text("import asyncio", "async def f():", "    return 3", "asyncio.run(f())"))
    assert result["status"] == "ok", result["error"]
    assert result["value"] == "3"
    result = run(text("import asyncio", "async def f():", "    return 4", "v = asyncio.run(f())"))
    assert result["status"] == "ok", result["error"]


# --- what the request may leave out --------------------------------------------------------


def test_a_request_without_a_document_runs_its_code_at_the_column_given() -> None:
    result = run(text("x = 1", "x + 1"), first_line=3, column=4)
    assert result["status"] == "ok"
    assert result["value"] == "2"


def test_a_syntax_error_in_a_request_without_a_document_shows_the_codes_own_line() -> None:
    code = text("x = = 1")
    result = run(code)
    error = result["error"]
    assert error["type"] == "SyntaxError"
    assert error["line"] == 1
    assert "    x = = 1\n" in error["traceback"]
    assert "XXXX" not in error["traceback"]


def test_a_fresh_module_is_made_for_the_file_run() -> None:
    path = fresh_path()
    result = run(text("import sys", "(__name__, __file__, sys.modules['__main__'].__file__)"), path)
    assert result["value"] == repr(("__main__", path, path))


# --- after the run ------------------------------------------------------------------------


def test_once_the_code_is_over_a_late_interrupt_or_cpu_signal_is_ignored() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGXCPU, runner._raise_cpu_limit)
    run(text("1"))
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGXCPU) == signal.SIG_IGN


# --- a session ----------------------------------------------------------------------------


def test_a_sessions_first_run_succeeds_and_sets_the_file_it_runs() -> None:
    namespace = new_session()
    path = fresh_path()
    result = run_in(namespace, text("__file__"), path)
    assert result["status"] == "ok", result["error"]
    assert result["value"] == repr(path)
    assert namespace["__file__"] == path


def test_underscore_is_the_sessions_last_trailing_value() -> None:
    namespace = new_session()
    assert run_in(namespace, text("6 * 7"))["value"] == "42"
    assert run_in(namespace, text("y = 1"))["value"] is None  # no value: `_` stays
    assert run_in(namespace, text("_ + 1"))["value"] == "43"
    assert builtins._ == 43  # type: ignore[attr-defined]


def test_a_single_run_does_not_touch_underscore() -> None:
    builtins._ = "the user's"  # type: ignore[attr-defined]
    assert run(text("6 * 7"))["value"] == "42"
    assert builtins._ == "the user's"  # type: ignore[attr-defined]


def test_a_future_import_stays_in_effect_for_the_sessions_next_runs() -> None:
    namespace = new_session()
    first = run_in(namespace, text("from __future__ import annotations"))
    assert first["status"] == "ok", first["error"]
    for _ in range(2):
        later = run_in(namespace, text("def f(x: not_defined): pass", "f.__annotations__"))
        assert later["status"] == "ok", later["error"]
        assert later["value"] == "{'x': 'not_defined'}"


def test_a_future_import_does_not_reach_another_session_or_a_single_run() -> None:
    with_future, without = new_session(), new_session()  # both kept alive: ids stay apart
    run_in(with_future, text("from __future__ import annotations"))
    annotated = text("def f(x: int): pass", "f.__annotations__")
    assert run_in(without, annotated)["value"] == "{'x': <class 'int'>}"
    assert run(annotated)["value"] == "{'x': <class 'int'>}"
