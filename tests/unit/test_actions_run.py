"""What follows a run, in process: what the user is told and whether its result is kept;
and where code the user did not write runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import AfterRun, Notice, after_run, build_request, throwaway_runner
from codeexec_lsp.config import Settings
from codeexec_lsp.execution.registry import Executors
from codeexec_lsp.results import RunResult

LINES = ["x = 1\n", "print(x)\n"]


def test_a_run_that_went_fine_is_kept_and_tells_nothing() -> None:
    result = RunResult(status="ok", stdout="1\n")
    assert after_run(result, LINES, list(LINES)) == AfterRun(None, record=True)


def test_an_error_in_the_users_code_is_kept_silently_its_diagnostic_says_it() -> None:
    result = RunResult(status="error", message="NameError")
    assert after_run(result, LINES, list(LINES)) == AfterRun(None, record=True)


def test_an_internal_failure_is_an_error_message_and_still_kept() -> None:
    result = RunResult(status="internal", message="the worker could not start")
    after = after_run(result, LINES, list(LINES))
    assert after == AfterRun(Notice("error", "the worker could not start"), record=True)


@pytest.mark.parametrize("executor", ["session", "jupyter"])
def test_a_lost_state_is_a_warning_with_the_runs_own_message(executor: str) -> None:
    lost = RunResult(
        status="ok", message="the session restarted", extra={executor: {"state_lost": 1}}
    )
    assert after_run(lost, LINES, list(LINES)).notice == Notice("warning", "the session restarted")
    kept = RunResult(status="ok", message="", extra={executor: {"state_lost": False}})
    assert after_run(kept, LINES, list(LINES)).notice is None


def test_an_internal_failure_outranks_a_lost_state() -> None:
    result = RunResult(status="internal", message="boom", extra={"session": {"state_lost": True}})
    assert after_run(result, LINES, LINES).notice == Notice("error", "boom")


def test_a_cancelled_run_is_not_kept() -> None:
    assert after_run(RunResult(status="cancelled"), LINES, list(LINES)).record is False


def test_a_closed_document_keeps_nothing_but_is_still_told() -> None:
    result = RunResult(status="internal", message="boom")
    assert after_run(result, LINES, None) == AfterRun(Notice("error", "boom"), record=False)


def test_lines_edited_while_running_keep_nothing() -> None:
    edited = ["x = 2\n", "print(x)\n"]
    assert after_run(RunResult(status="ok"), LINES, edited).record is False
    assert after_run(RunResult(status="ok"), LINES, LINES[:1]).record is False
    assert after_run(RunResult(status="ok"), LINES, tuple(LINES)).record is True


async def test_code_the_user_did_not_write_runs_in_a_process_of_its_own(tmp_path: Path) -> None:
    executors = Executors(prestart=False)
    try:
        settings = Settings(executor="session")
        code = "import os\nprint(os.getpid())\n"
        request = build_request(
            snippet.whole_file(code, str(tmp_path / "fix.py")), settings, tmp_path
        )
        run = throwaway_runner(executors)
        first, second = await run(request), await run(request)
        assert (first.status, second.status) == ("ok", "ok")
        assert first.stdout != second.stdout  # two processes, no state carried over
        assert executors.session.pids() == {}  # the session was never started for it
        cancel = asyncio.Event()
        cancel.set()
        assert (await throwaway_runner(executors, cancel)(request)).status == "cancelled"
    finally:
        await executors.close()
