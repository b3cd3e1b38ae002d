"""Show output's use case in process: which run a page is about, its file, and following a
run still going until its recorded result replaces the live page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeexec_lsp import present_outputs
from codeexec_lsp.actions.show_output import (
    GoingRun,
    NothingToShow,
    PageNotWritten,
    choose_run,
    page_path,
    write_output_page,
)
from codeexec_lsp.execution.live import LiveOutput
from codeexec_lsp.results import RunResult
from codeexec_lsp.run_history import RunHistory, RunRecord

URI = "file:///p/calc.py"


def finished(first: int, last: int, stdout: str) -> RunRecord:
    return RunRecord(first, last, RunResult(status="ok", stdout=stdout), "lines", "/p/calc.py")


def test_no_run_going_or_finished_is_refused_with_what_to_do() -> None:
    with pytest.raises(NothingToShow, match="Run these lines"):
        choose_run(URI, (0, 3), {}, RunHistory())


def test_a_going_run_wins_over_a_finished_one_and_only_on_its_lines() -> None:
    history = RunHistory()
    history.add(URI, finished(2, 4, "old"))
    live = LiveOutput()
    live_runs = {(URI, 3, 5): ("lines 4–6", live), ("file:///p/other.py", 0, 9): ("x", live)}
    going = choose_run(URI, (4, 4), live_runs, history)
    assert going == GoingRun(3, 5, "lines 4–6", live)
    assert choose_run(URI, (2, 2), live_runs, history) == history.records(URI)[-1]
    with pytest.raises(NothingToShow):
        choose_run(URI, (7, 8), live_runs, history)
    assert isinstance(choose_run(URI, None, live_runs, history), GoingRun)


def test_a_finished_run_is_written_once_and_not_followed(tmp_path: Path) -> None:
    history = RunHistory()
    history.add(URI, finished(2, 4, "printed-by-the-run"))
    page = write_output_page(URI, (3, 3), "/p/calc.py", {}, history, tmp_path / "outputs")
    assert page.path == tmp_path / "outputs" / "calc-lines-3-5.html"
    assert page.path == page_path(tmp_path / "outputs", "C:\\p\\calc.py", 2, 4)
    assert not page.following
    assert "printed-by-the-run" in page.path.read_text(encoding="utf-8")


def test_an_unwritable_folder_is_a_refusal_naming_the_file(tmp_path: Path) -> None:
    history = RunHistory()
    history.add(URI, finished(0, 0, "x"))
    blocker = tmp_path / "outputs"
    blocker.write_text("a file where the folder should be", encoding="utf-8")
    with pytest.raises(PageNotWritten, match=r"could not write .*calc-lines-1-1\.html"):
        write_output_page(URI, None, "/p/calc.py", {}, history, blocker)


def test_a_going_run_is_followed_until_its_result_replaces_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(present_outputs, "LIVE_PAGE_REFRESH_S", 0)
    history = RunHistory()
    live = LiveOutput()
    live.feed("stdout", "so-far\n")
    key = (URI, 0, 1)
    live_runs = {key: ("lines 1–2", live)}

    async def scenario() -> tuple[str, str, str, int]:
        page = write_output_page(URI, None, "/p/calc.py", live_runs, history, tmp_path)
        assert page.following
        first = page.path.read_text(encoding="utf-8")
        # Asked again while it goes: still one follower.
        write_output_page(URI, None, "/p/calc.py", live_runs, history, tmp_path)
        followers = len(live.followers)
        live.feed("stdout", "more-output\n")
        for _ in range(20):
            await asyncio.sleep(0)
        during = page.path.read_text(encoding="utf-8")
        # The run ends as the server ends it: recorded as it is unregistered.
        history.add(URI, finished(0, 1, "the-whole-result"))
        del live_runs[key]
        await asyncio.gather(*live.followers)
        return first, during, page.path.read_text(encoding="utf-8"), followers

    first, during, final, followers = asyncio.run(scenario())
    assert followers == 1
    assert "so-far" in first and "more-output" not in first
    assert "more-output" in during
    assert "the-whole-result" in final and "more-output" not in final
