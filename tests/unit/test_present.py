from __future__ import annotations

import re

import pytest
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
    assert "→\n```python\n3\n```" in markdown and "/usr/bin/python3" in markdown


# --- what the code raised: small diagnostics, clipped hovers, no live Markdown ------------------

HOSTILE = (
    "[click me](http://evil.example/steal) ![pixel](http://evil.example/p.png) "
    "<img src=http://evil.example/i.png> <b>bold</b> https://evil.example/bare www.evil.example "
    "**loud** `code` ```\n# heading\n<script>alert(1)</script>"
)


def raised(type_name: str, message: str, traceback: str = "") -> RunRecord:
    error = ErrorInfo(type_name, message, line=1, column=0, traceback=traceback)
    return RunRecord(0, 0, RunResult(status="error", error=error), "line 1", "/p/a.py")


def test_a_huge_exception_gives_a_small_diagnostic_and_a_clipped_hover_with_counts() -> None:
    message = "x" * 8_000_000
    record = raised("ValueError", message, "Traceback ...\n" + "ValueError: " + message + "END")
    [diagnostic] = present.diagnostics(
        "file:///p/a.py", [record], ["raise ValueError()\n"], "utf-16"
    )
    assert diagnostic.message.startswith("ValueError: xxx")
    assert len(diagnostic.message) <= present.DIAGNOSTIC_MAX_CHARS + 100
    assert f"{8_000_012 - present.DIAGNOSTIC_MAX_CHARS:,} more characters" in diagnostic.message
    markdown = present.hover_markdown(record)
    assert len(markdown) < 3 * present.HOVER_MAX_CHARS
    assert f"{8_000_012 - present.HOVER_MAX_CHARS:,} more characters" in markdown  # headline
    assert "Traceback ..." in markdown and "xxxEND" in markdown  # traceback: head and tail
    assert len(present.hint_label(record.result)) <= present.HINT_MAX_CHARS


POINTER = "**Show output** (a code action on these lines) shows all of it"


@pytest.mark.parametrize("field", ["stdout", "stderr", "value", "message"])
def test_a_hover_that_clipped_a_text_says_where_to_read_all_of_it(field: str) -> None:
    limit = present.HOVER_MAX_CHARS
    fits = RunRecord(0, 0, RunResult(status="ok", **{field: "y" * limit}), "line 1", "/p/a.py")
    assert POINTER not in present.hover_markdown(fits)
    cut = RunRecord(0, 0, RunResult(status="ok", **{field: "y" * (limit + 1)}), "line 1", "/p/a.py")
    markdown = present.hover_markdown(cut)
    assert POINTER in markdown and "1 more characters" in markdown


def test_a_hover_that_clipped_a_traceback_says_where_to_read_all_of_it() -> None:
    short = raised("ValueError", "bad", "Traceback ...\nValueError: bad")
    assert POINTER not in present.hover_markdown(short)
    long_traceback = raised("ValueError", "bad", "T" * (present.HOVER_MAX_CHARS + 1))
    assert POINTER in present.hover_markdown(long_traceback)


def test_huge_type_and_frame_names_stay_small_in_a_diagnostic() -> None:
    error = ErrorInfo(
        "T" * 1_000_000,
        "m",
        line=2,
        frames=(Frame("/p/a.py", 1, "f" * 1_000_000), Frame("/p/a.py", 2, "g")),
    )
    record = RunRecord(0, 1, RunResult(status="error", error=error), "lines 1–2", "/p/a.py")
    [diagnostic] = present.diagnostics("file:///p/a.py", [record], ["a\n", "b\n"], "utf-16")
    assert isinstance(diagnostic.code, str) and len(diagnostic.code) <= 400
    assert len(diagnostic.message) <= present.DIAGNOSTIC_MAX_CHARS + 100
    [related] = diagnostic.related_information or []
    assert len(related.message) <= 400 and related.message.endswith("(line 1)")


def _outside_fences(markdown: str) -> str:
    """The Markdown with fenced blocks removed: what a renderer would interpret."""
    kept, fence = [], ""
    for line in markdown.splitlines():
        opening = re.match(r"^(`{3,})", line)
        if fence:
            if line.startswith(fence) and not line[len(fence) :].strip():
                fence = ""
        elif opening:
            fence = opening.group(1)
        else:
            kept.append(line)
    return "\n".join(kept)


def test_markdown_in_an_exception_never_renders_live_in_hover() -> None:
    markdown = present.hover_markdown(raised(HOSTILE, HOSTILE, f"ValueError: {HOSTILE}\n"))
    assert HOSTILE.splitlines()[0] in markdown  # shown, as text
    live = _outside_fences(markdown)
    for dangerous in ("](http", "<img", "<b>", "<script", "https://", "www.evil", "**loud**"):
        assert dangerous not in live, dangerous


def test_markdown_in_an_exception_renders_as_text_in_a_real_markdown_parser() -> None:
    markdown_it = pytest.importorskip("markdown_it")
    record = raised(HOSTILE, HOSTILE, f"ValueError: {HOSTILE}\n")
    record = RunRecord(
        0,
        0,
        RunResult(
            status="error",
            error=record.result.error,
            message=f"The interpreter said: {HOSTILE}",
            interpreter="/home/u/[x](http://evil.example)/python",
            cwd="/home/u/<img src=x>",
        ),
        f"cell {HOSTILE.splitlines()[0]}",
        "/p/a.py",
    )
    html = markdown_it.MarkdownIt("commonmark", {"html": True}).render(
        present.hover_markdown(record)
    )
    assert "<a " not in html and "<img" not in html and "<script" not in html
    assert "<b>" not in html and "<strong>loud" not in html and "<h1>" not in html
    assert "&lt;img src=http://evil.example/i.png&gt;" in html  # visible as text


def test_utf16_units_change_exactly_at_the_first_astral_character() -> None:
    # U+FFFF is the last character of one UTF-16 unit, U+10000 the first of two.
    line = "\uffff\U00010000x"
    assert [to_client(line, column, "utf-16") for column in range(4)] == [0, 1, 3, 4]
    assert [from_client(line, units, "utf-16") for units in range(5)] == [0, 1, 2, 2, 3]
    assert [to_client(line, column, "utf-8") for column in range(4)] == [0, 3, 7, 8]
    assert [from_client(line, units, "utf-32") for units in range(5)] == [0, 1, 2, 3, 3]
