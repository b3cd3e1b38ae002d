"""Prompt content, budgets and size for Explain and Fix."""

from __future__ import annotations

import pytest

from codeexec_lsp.code_context import CodeContext, DiagnosticInfo, build_context
from codeexec_lsp.llm.base import ChatMessage
from codeexec_lsp.llm.prompts import (
    MAX_TARGET_CHARS,
    PROMPT_VERSION,
    STDOUT_BUDGET,
    TRACEBACK_BUDGET,
    FailedAttempt,
    TargetTooLarge,
    clip_head,
    clip_tail,
    estimate_tokens,
    explain_messages,
    fix_messages,
)
from codeexec_lsp.results import ErrorInfo, Frame, RunResult

# A typical request: a 20-line function that divides by zero, run from the editor.
DOCUMENT = '''\
import csv
from pathlib import Path


def summarize(path: str) -> dict[str, float]:
    """Average each numeric column of a CSV file."""
    totals: dict[str, float] = {}
    counts: dict[str, int] = {}
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            for name, value in row.items():
                try:
                    number = float(value)
                except ValueError:
                    continue
                totals[name] = totals.get(name, 0.0) + number
                counts[name] = counts.get(name, 0) + 1
    print(f"read {len(counts)} columns from {path}")
    averages = {}
    for name in totals:
        averages[name] = totals[name] / (counts[name] - counts[name])
    return averages


print(summarize("data.csv"))
'''
TRACEBACK = """\
Traceback (most recent call last):
  File "/home/ada/project/stats.py", line 25, in <module>
    print(summarize("data.csv"))
          ^^^^^^^^^^^^^^^^^^^^^
  File "/home/ada/project/stats.py", line 21, in summarize
    averages[name] = totals[name] / (counts[name] - counts[name])
                     ~~~~~~~~~~~~~^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
ZeroDivisionError: float division by zero
"""
RUN = RunResult(
    status="error",
    stdout="read 3 columns from data.csv\n",
    error=ErrorInfo(
        type="ZeroDivisionError",
        message="float division by zero",
        line=21,
        column=25,
        traceback=TRACEBACK,
        frames=(
            Frame("/home/ada/project/stats.py", 25, "<module>"),
            Frame("/home/ada/project/stats.py", 21, "summarize"),
        ),
    ),
    duration_ms=31.0,
)
ERROR_LINE = 20  # 0-based


def _typical(for_fix: bool) -> CodeContext:
    if for_fix:
        return build_context(
            DOCUMENT, "stats.py", ERROR_LINE, ERROR_LINE,
            last_run=RUN, for_fix=True, selection_empty=True,
        )  # fmt: skip
    return build_context(DOCUMENT, "stats.py", 4, 21, last_run=RUN)


def _user(messages: list[ChatMessage]) -> str:
    assert [message.role for message in messages] == ["system", "user"]
    return messages[1].content


def test_prompt_version_is_a_cache_key_part() -> None:
    assert isinstance(PROMPT_VERSION, str)
    assert PROMPT_VERSION


def test_typical_request_sizes() -> None:
    explain = explain_messages(_typical(for_fix=False))
    fix = fix_messages(_typical(for_fix=True))
    retry = fix_messages(
        _typical(for_fix=True),
        [FailedAttempt(_typical(True).selection, RUN, "the ZeroDivisionError still occurs")],
    )
    sizes = {name: estimate_tokens(m) for name, m in [("explain", explain), ("fix", fix)]}
    sizes["fix, 2nd attempt"] = estimate_tokens(retry)
    print(f"\ntypical request tokens (characters/4): {sizes}")
    assert sizes["explain"] < 900
    assert sizes["fix"] < 900
    assert sizes["fix, 2nd attempt"] < 1500


def test_explain_is_grounded_in_the_run() -> None:
    user = _user(explain_messages(_typical(for_fix=False)))
    assert user.startswith("Explain lines 5-22 of `stats.py`:\n```python\ndef summarize(")
    assert "read 3 columns from data.csv" in user
    assert (
        "It raised ZeroDivisionError: float division by zero at line 21: "
        "`averages[name] = totals[name] / (counts[name] - counts[name])`"
    ) in user
    assert 'File "/home/ada/project/stats.py", line 21, in summarize' in user
    assert "import csv\nfrom pathlib import Path" in user
    assert "When these lines ran (status: error)" in user


def test_explain_without_a_run_is_just_the_code() -> None:
    ctx = build_context(DOCUMENT, "stats.py", 10, 12)
    user = _user(explain_messages(ctx))
    assert "ran" not in user
    assert "It is inside function `summarize` (lines 5-22)" in user


def test_fix_gives_the_exact_target_and_its_lines() -> None:
    ctx = _typical(for_fix=True)
    system, user_message = fix_messages(ctx)
    user = user_message.content
    assert "exactly one ```python fenced code block" in system.content
    target = "\n".join(DOCUMENT.split("\n")[4:22])
    assert ctx.selection == target
    assert (
        "Target: lines 5-22 of `stats.py`. Its first line is not indented.\n"
        f"```python\n{target}\n```" in user
    )
    assert "It raised ZeroDivisionError: float division by zero at line 21" in user
    assert user.endswith("Reply with only the replacement for lines 5-22, in one ```python block.")


def test_fix_tells_the_indentation_of_a_method() -> None:
    source = "class A:\n\tdef f(self):\n\t\treturn 1 / 0\n"
    ctx = build_context(source, "a.py", 2, 2, for_fix=True, selection_empty=True)
    assert "Its first line is indented by 1 tab." in _user(fix_messages(ctx))


def test_fix_includes_the_latest_failed_attempts() -> None:
    failed = RunResult(
        status="error",
        error=ErrorInfo("KeyError", "'b'", line=21, traceback="Traceback ...\nKeyError: 'b'\n"),
    )
    attempts = [
        FailedAttempt(f"def summarize(path):\n    return {i}", failed, f"reason {i}")
        for i in range(1, 4)
    ]
    user = _user(fix_messages(_typical(for_fix=True), attempts))
    assert "(1 earlier attempt not shown.)" in user
    assert "reason 1" not in user
    assert (
        "Attempt 2:\n```python\ndef summarize(path):\n    return 2\n```\nRejected: reason 2" in user
    )
    assert "It raised KeyError: 'b' at line 21" in user
    assert user.index("Attempt 3") > user.index("Attempt 2")


def test_a_diagnostic_from_another_server_is_shown() -> None:
    diagnostic = DiagnosticInfo('"totals" is possibly unbound', 20, "Pyright", "reportUnbound")
    ctx = build_context(
        DOCUMENT, "stats.py", 20, 20, diagnostic=diagnostic, for_fix=True, selection_empty=True
    )
    user = _user(fix_messages(ctx))
    assert "Diagnostic (Pyright, reportUnbound) at line 21: `averages[name] = " in user
    assert '"totals" is possibly unbound' in user
    assert "No error message" not in user


def test_our_own_diagnostic_is_not_repeated_next_to_the_run() -> None:
    diagnostic = DiagnosticInfo("float division by zero", 20, "codeexec", "ZeroDivisionError")
    ctx = build_context(
        DOCUMENT, "stats.py", 20, 20,
        diagnostic=diagnostic, last_run=RUN, for_fix=True, selection_empty=True,
    )  # fmt: skip
    user = _user(fix_messages(ctx))
    assert "Diagnostic" not in user
    assert user.count("float division by zero") == 2  # headline and traceback


def test_a_fix_without_any_error_asks_to_find_the_bug() -> None:
    ctx = build_context(DOCUMENT, "stats.py", 20, 20, for_fix=True, selection_empty=True)
    assert "No error message is available" in _user(fix_messages(ctx))


def test_timeouts_are_described() -> None:
    run = RunResult(status="timeout", message="stopped after 10 s")
    ctx = build_context(DOCUMENT, "stats.py", 4, 21, last_run=run)
    assert "It did not finish (timeout): stopped after 10 s" in _user(explain_messages(ctx))


# --- budgets ------------------------------------------------------------------------------


def test_every_context_piece_is_budgeted() -> None:
    noisy = RunResult(
        status="error",
        stdout="".join(f"row {i}\n" for i in range(5_000)),
        stderr="warning\n" * 5_000,
        value="x" * 5_000,
        error=ErrorInfo(
            "RecursionError",
            "maximum recursion depth exceeded",
            line=21,
            traceback="".join(f'  File "stats.py", line 21, in f{i}\n' for i in range(3_000))
            + "RecursionError: maximum recursion depth exceeded\n",
        ),
    )
    ctx = build_context(DOCUMENT * 40, "stats.py", 0, 40 * 26, last_run=noisy)
    messages = explain_messages(ctx)
    user = _user(messages)
    assert "row 0\n" in user
    assert "row 4999" not in user
    assert "more characters cut]" in user
    assert "earlier characters cut]" in user
    assert user.rstrip("`\n").endswith("RecursionError: maximum recursion depth exceeded")
    assert estimate_tokens(messages) < 3_500


def test_a_target_too_large_to_send_whole_is_refused() -> None:
    ctx = CodeContext(path="big.py", selection="x = 1\n" * MAX_TARGET_CHARS, selection_start_line=0)
    with pytest.raises(TargetTooLarge, match="select a smaller range"):
        fix_messages(ctx)


def test_clipping_helpers() -> None:
    text = "".join(f"line {i}\n" for i in range(1_000))
    head = clip_head(text, STDOUT_BUDGET)
    assert head.startswith("line 0\n")
    assert head.endswith("more characters cut]")
    assert len(head) < STDOUT_BUDGET + 40
    tail = clip_tail(text, TRACEBACK_BUDGET)
    assert tail.startswith("[… ")
    assert tail.split("\n")[1].startswith("line ")  # cut at a line boundary
    assert tail.endswith("line 999\n")
    assert clip_head("short", 10) == clip_tail("short", 10) == "short"


def test_code_containing_backticks_gets_a_longer_fence() -> None:
    ctx = CodeContext(
        path="md.py", selection='DOC = """\n```python\nx\n```\n"""', selection_start_line=0
    )
    user = _user(explain_messages(ctx))
    assert "````python\nDOC = " in user
    assert user.endswith('"""\n````')


def test_estimate_tokens_is_characters_over_four() -> None:
    assert estimate_tokens([ChatMessage("user", "x" * 400)]) == 104
    assert estimate_tokens([]) == 0
