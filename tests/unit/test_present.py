from __future__ import annotations

from lsprotocol import types as lsp

from codeexec_lsp import present
from codeexec_lsp.positions import from_client, to_client
from codeexec_lsp.results import ErrorInfo, Frame, RunResult
from codeexec_lsp.run_history import RunRecord

LINES = ["def f():\n", "    return 'é😀' + 1\n", "f()\n"]


def error_record() -> RunRecord:
    error = ErrorInfo(
        "TypeError",
        "can only concatenate str",
        line=2,
        column=11,
        end_line=2,
        end_column=19,
        frames=(Frame("/p/a.py", 3, "<module>"), Frame("/p/a.py", 2, "f")),
    )
    return RunRecord(0, 2, RunResult(status="error", error=error), "lines 1–3", "/p/a.py")


def test_columns_round_trip_in_every_encoding() -> None:
    line = "x = '😀é' + y"
    for encoding in ("utf-8", "utf-16", "utf-32"):
        for column in range(len(line) + 1):
            assert from_client(line, to_client(line, column, encoding), encoding) == column
    assert to_client(line, 8, "utf-16") == 9 and to_client(line, 8, "utf-8") == 12


def test_diagnostic_range_code_source_and_related_frames() -> None:
    [diagnostic] = present.diagnostics("file:///p/a.py", [error_record()], LINES, "utf-16")
    assert diagnostic.range.start == lsp.Position(line=1, character=11)
    assert diagnostic.range.end == lsp.Position(line=1, character=20)  # 😀 is two units
    assert diagnostic.code == "TypeError" and diagnostic.source == "codeexec"
    assert diagnostic.severity == lsp.DiagnosticSeverity.Error
    assert diagnostic.related_information is not None
    assert diagnostic.related_information[0].location.range.start.line == 2


def test_ok_results_make_no_diagnostic_but_a_hint() -> None:
    record = RunRecord(0, 0, RunResult(status="ok", value="42"), "line 1", "/p/a.py")
    assert present.diagnostics("u", [record], LINES, "utf-16") == []
    [hint] = present.inlay_hints([record], LINES, "utf-16", 0, 10)
    assert hint.label == "→ 42" and hint.position == lsp.Position(line=0, character=8)


def test_hint_is_short_and_uses_first_output_line() -> None:
    result = RunResult(status="ok", stdout="a very long line " * 10 + "\nsecond\n")
    label = present.hint_label(result)
    assert label.startswith("→ a very long line") and len(label) <= 40
    assert present.hint_label(RunResult(status="error", error=ErrorInfo("KeyError", "'k'"))) == (
        "✗ KeyError: 'k'"
    )


def test_hover_shows_output_value_and_traceback_safely_fenced() -> None:
    result = RunResult(status="ok", stdout="```\nhi\n", value="3", interpreter="/usr/bin/python3")
    markdown = present.hover_markdown(RunRecord(0, 1, result, "lines 1–2", "/p/a.py"))
    assert "````text\n```\nhi\n````" in markdown
    assert "→ ```python\n3\n```" in markdown and "/usr/bin/python3" in markdown
