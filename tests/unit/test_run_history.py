from __future__ import annotations

from codeexec_lsp.results import ErrorInfo, Frame, RunResult
from codeexec_lsp.run_history import RunHistory, RunRecord

URI = "file:///p/a.py"


def record(first: int, last: int, error_line: int | None = None) -> RunRecord:
    error = None
    if error_line is not None:
        error = ErrorInfo(
            "ValueError", "bad", line=error_line, frames=(Frame("/p/a.py", error_line, "<module>"),)
        )
    status = "error" if error else "ok"
    return RunRecord(first, last, RunResult(status=status, error=error), "lines", "/p/a.py")


def test_new_result_replaces_overlapping_ones() -> None:
    history = RunHistory()
    history.add(URI, record(0, 4))
    history.add(URI, record(10, 12))
    history.add(URI, record(3, 6))
    assert [(r.first_line, r.last_line) for r in history.records(URI)] == [(10, 12), (3, 6)]


def test_edit_above_shifts_and_edit_inside_clears() -> None:
    history = RunHistory()
    history.add(URI, record(5, 7, error_line=7))
    assert history.edit(URI, 0, 0, 0, "import os\nimport sys\n")
    moved = history.records(URI)[0]
    assert (moved.first_line, moved.last_line) == (7, 9)
    assert moved.result.error is not None and moved.result.error.line == 9
    assert moved.result.error.frames[0].line == 9
    assert history.edit(URI, 8, 3, 8, "x")
    assert history.records(URI) == []


def test_edit_below_changes_nothing_and_line_insert_before_pushes_down() -> None:
    history = RunHistory()
    history.add(URI, record(2, 3))
    assert not history.edit(URI, 10, 0, 10, "more\n")
    assert history.edit(URI, 2, 0, 2, "# new line\n")
    assert history.records(URI)[0].first_line == 3
    assert history.at_line(URI, 4) is not None and history.at_line(URI, 2) is None
