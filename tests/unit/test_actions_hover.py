"""What a hover shows, in process: which answer wins on a line (a run's result, its
explanation, nothing while a run goes, else the live value from a real session) and how the
parts are put together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from codeexec_lsp import present, present_outputs, snippet
from codeexec_lsp.actions.hover import SEPARATOR, Shown, hover, recorded_markdown, run_going
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.actions.variables import Place, place_for
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.session import SessionExecutor
from codeexec_lsp.results import RunResult
from codeexec_lsp.run_history import ExplanationHistory, ExplanationRecord, RunHistory, RunRecord

URI = "file:///p/calc.py"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="


def record(first: int, last: int, **fields: object) -> RunRecord:
    result = RunResult(status="ok", **fields)  # type: ignore[arg-type]
    return RunRecord(first, last, result, "lines", "/p/calc.py")


def test_a_run_and_its_explanation_are_joined_by_a_rule() -> None:
    ran, explained = record(0, 1, stdout="3\n"), ExplanationRecord(0, 1, "Adds one.")
    both = recorded_markdown(ran, explained, "none")
    expected = present.hover_markdown(ran) + SEPARATOR + present.explanation_markdown("Adds one.")
    assert both == expected
    assert recorded_markdown(ran, None, "none") == present.hover_markdown(ran)
    assert recorded_markdown(None, explained, "none") == present.explanation_markdown("Adds one.")
    assert recorded_markdown(None, None, "vscode") is None


def test_a_runs_outputs_follow_its_result_in_the_clients_image_style() -> None:
    figure = {"output_type": "display_data", "data": {"image/png": PNG}, "metadata": {}}
    ran = record(0, 0, outputs=(figure,), value="<Figure>")
    for style in ("none", "vscode"):
        outputs = present_outputs.hover_outputs_markdown((figure,), style, value="<Figure>")
        assert recorded_markdown(ran, None, style) == present.hover_markdown(ran) + "\n\n" + outputs
    assert "data:image/png" in (recorded_markdown(ran, None, "vscode") or "")


def test_run_going_covers_its_own_lines_of_its_own_document() -> None:
    going = {(URI, 3, 5): "run", ("file:///p/other.py", 0, 9): "run"}
    assert [run_going(going, URI, line) for line in (2, 3, 5, 6)] == [False, True, True, False]


@pytest.fixture
async def session_place(tmp_path: Path) -> AsyncIterator[Place]:
    """A real session that ran `n = 42` for a document in `tmp_path`."""
    sessions = SessionExecutor()
    try:
        path = tmp_path / "live.py"
        request = build_request(snippet.whole_file("n = 42\n", str(path)), Settings(), tmp_path)
        assert (await sessions.run(request)).status == "ok"
        place = place_for(str(path), Settings(), [str(tmp_path)], sessions)
        assert place is not None
        yield place
    finally:
        await sessions.close()


async def ask(
    place: Place | None,
    text: str | None,
    line: int,
    character: int,
    encoding: str = "utf-16",
    history: RunHistory | None = None,
    going: dict[tuple[str, int, int], object] | None = None,
) -> Shown | None:
    return await hover(
        URI,
        line,
        character,
        encoding,
        history=history or RunHistory(),
        explanations=ExplanationHistory(),
        going=going or {},
        image_style="none",
        python_line=lambda: None if text is None else (text, place),
    )


async def test_the_live_value_and_its_span_in_the_clients_units(session_place: Place) -> None:
    text = 'e = "😀" + n'  # `n` is code point 10, UTF-16 unit 11 (the emoji takes two)
    shown = await ask(session_place, text, 4, 11)
    assert shown is not None and "n: int = 42" in shown.markdown
    assert shown.span == (11, 12)
    shown32 = await ask(session_place, text, 4, 10, encoding="utf-32")
    assert shown32 is not None and shown32.span == (10, 11)
    assert await ask(session_place, "unknown + 1", 4, 2) is None  # not held: nothing
    assert await ask(None, text, 4, 11) is None  # an executor that keeps no state
    assert await ask(session_place, None, 4, 11) is None  # not a Python document


async def test_a_run_line_wins_and_a_going_run_silences_the_session(session_place: Place) -> None:
    history = RunHistory()
    ran = record(4, 4, stdout="43\n")
    history.add(URI, ran)
    on_run = await ask(session_place, "n + 1", 4, 0, history=history)
    assert on_run == Shown(present.hover_markdown(ran))  # no span: about the whole run
    going = {(URI, 6, 8): "run"}
    assert await ask(session_place, "n + 1", 7, 0, going=going) is None
    after = await ask(session_place, "n + 1", 9, 0, going=going)
    assert after is not None and "n: int = 42" in after.markdown
