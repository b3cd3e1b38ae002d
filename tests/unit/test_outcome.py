"""How a child's end becomes a RunResult: status, error and the message a user acts on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from codeexec_lsp import snippet
from codeexec_lsp.execution.base import Limits, RunRequest
from codeexec_lsp.execution.capture import BoundedCapture
from codeexec_lsp.execution.outcome import (
    PROCESS_LIMIT_TYPE,
    build_result,
    classify,
    could_not_start,
    error_from_json,
    internal_result,
    kill_group,
    looks_like_refused_fork,
    over_process_limit,
    relabel,
    signal_name,
    start_failure_message,
)
from codeexec_lsp.results import ErrorInfo, Frame

LIMITS = Limits(timeout_s=7, cpu_s=5, memory_mb=321, max_output_bytes=1000, max_processes=64)
WHERE = {
    "type": "ValueError",
    "message": "bad",
    "line": 3,
    "column": 4,
    "end_line": 3,
    "end_column": 9,
    "traceback": "Traceback ...",
    "frames": [{"file": "/p/a.py", "line": 3, "name": "<module>", "column": 4}],
}


def reported(error: dict[str, object] | None = None, **more: object) -> dict[str, object]:
    return {
        "status": "error" if error else "ok",
        "value": "42",
        "error": error,
        "duration_ms": 12.5,
        **more,
    }


def test_a_clean_report_is_ok_and_an_exception_is_an_error_where_it_happened() -> None:
    assert classify(LIMITS, 0, reported(), None) == ("ok", None, "")
    status, error, message = classify(LIMITS, 0, reported(WHERE), None)
    assert (status, message) == ("error", "")
    assert error == ErrorInfo(
        "ValueError",
        "bad",
        3,
        4,
        3,
        9,
        "Traceback ...",
        (Frame("/p/a.py", 3, "<module>", 4, None, None),),
    )


def test_a_timeout_keeps_where_the_code_was_and_names_the_setting() -> None:
    status, error, message = classify(LIMITS, -2, reported(WHERE), "timeout")
    assert status == "timeout"
    assert message == (
        "Stopped after 7 s (the codeexec.timeout setting). Raise the timeout if the code "
        "needs longer."
    )
    assert error is not None and (error.type, error.message, error.line) == (
        "TimeoutError",
        message,
        3,
    )
    assert error.column == 4 and error.frames[0].line == 3
    assert classify(LIMITS, None, None, "timeout")[1] is None  # nowhere to point at


def test_cancel_and_output_flood_have_their_own_words() -> None:
    assert classify(LIMITS, -9, reported(WHERE), "cancelled") == (
        "cancelled",
        None,
        "Cancelled: the run was stopped.",
    )
    status, error, message = classify(LIMITS, -9, None, "output")
    assert (status, error) == ("limit", None)
    assert "more than 10,000 bytes" in message and "maxOutputBytes" in message


def test_the_process_limit_is_a_limit_that_keeps_the_place() -> None:
    status, error, message = classify(LIMITS, -9, reported(WHERE), "processes")
    assert status == "limit"
    assert message == (
        "Process limit: the code tried to run more than 64 processes and threads at once "
        "(a fork bomb?); all of them were stopped."
    )
    assert error is not None and error.type == PROCESS_LIMIT_TYPE and error.line == 3


@pytest.mark.parametrize(
    ("type_name", "setting", "words"),
    [
        ("MemoryError", "memoryMb", "more than 321 MB"),
        ("CPUTimeLimitExceeded", "cpuSeconds", "more than 5 s of CPU"),
    ],
)
def test_memory_and_cpu_exceptions_are_limits(type_name: str, setting: str, words: str) -> None:
    status, error, message = classify(LIMITS, 1, reported({**WHERE, "type": type_name}), None)
    assert status == "limit" and setting in message and words in message
    assert error is not None and error.type == type_name and error.message == message


def test_a_child_that_never_reported_is_explained_by_how_it_ended() -> None:
    assert classify(LIMITS, 0, None, None) == (
        "ok",
        None,
        "The process exited (os._exit) before the selection finished.",
    )
    for signum in (signal.SIGKILL, signal.SIGXCPU):
        status, error, message = classify(LIMITS, -signum, None, None)
        assert (status, error) == ("limit", None)
        assert "cpuSeconds 5, memoryMb 321" in message and signal.Signals(signum).name in message
    status, error, message = classify(LIMITS, -signal.SIGSEGV, None, None)
    assert status == "error" and error == ErrorInfo("Crash", message)
    assert message.startswith("The process died from SIGSEGV")
    status, error, message = classify(LIMITS, 3, None, None)
    assert (status, error) == ("error", ErrorInfo("SystemExit", "3"))
    assert message == "The process exited with status 3 before the selection finished."
    assert classify(LIMITS, None, None, None)[0] == "error"


def test_over_the_process_limit_an_error_becomes_the_limit_and_ok_stays_ok() -> None:
    error = ErrorInfo("BlockingIOError", "x", line=2)
    status, relabelled, note = over_process_limit(("error", error, ""), LIMITS, " (kept 3)")
    assert status == "limit" and note.endswith("all of them were stopped (kept 3).")
    assert relabelled is not None and relabelled.type == PROCESS_LIMIT_TYPE
    assert over_process_limit(("timeout", error, ""), LIMITS)[0] == "limit"
    ok = over_process_limit(("ok", None, "earlier note"), LIMITS)
    assert ok[0] == "ok" and ok[2].startswith("earlier note Process limit:")
    assert over_process_limit(("ok", None, ""), LIMITS)[2].startswith("Process limit:")
    assert over_process_limit(("cancelled", None, "c"), LIMITS) == ("cancelled", None, "c")


def test_refused_forks_are_recognised_and_nothing_else() -> None:
    fork = ErrorInfo("BlockingIOError", "[Errno 11]", traceback="in _execute_child\n")
    assert looks_like_refused_fork(fork)
    assert looks_like_refused_fork(ErrorInfo("BlockingIOError", "", traceback="os.fork()"))
    assert looks_like_refused_fork(ErrorInfo("BlockingIOError", "", traceback="spawn"))
    assert not looks_like_refused_fork(ErrorInfo("BlockingIOError", "", traceback="read()"))
    assert looks_like_refused_fork(ErrorInfo("RuntimeError", "can't start new thread"))
    assert not looks_like_refused_fork(ErrorInfo("RuntimeError", "other"))
    assert not looks_like_refused_fork(None)


def test_relabel_needs_a_place() -> None:
    assert relabel(None, "T", "m") is None
    assert relabel(ErrorInfo("ValueError", "x"), "T", "m") is None
    placed = ErrorInfo("ValueError", "x", 1, 2, 3, 4, "tb", (Frame("f", 1, "n"),))
    assert relabel(placed, "T", "m") == ErrorInfo("T", "m", 1, 2, 3, 4, "tb", placed.frames)


def request(tmp: str = "/work") -> RunRequest:
    code = snippet.whole_file("1\n", "/p/a.py")
    return RunRequest(code, python="/usr/bin/python3", cwd=tmp, env={}, interpreter_source="x")


def test_build_result_carries_output_value_and_timings() -> None:
    stdout, stderr = BoundedCapture(100), BoundedCapture(4)
    stdout.feed(b"out\n")
    stderr.feed(b"err\n")
    started = time.perf_counter()
    result = build_result(
        request(),
        "local",
        ("ok", None, "m"),
        reported(limits_applied={"RLIMIT_AS": 1}),
        stdout,
        stderr,
        started,
        {"sandbox": {"summary": "s"}},
    )
    assert (result.status, result.stdout, result.stderr, result.value) == (
        "ok",
        "out\n",
        "err\n",
        "42",
    )
    assert result.duration_ms == 12.5 and not result.truncated and result.message == "m"
    assert (result.executor, result.interpreter, result.cwd) == (
        "local",
        "/usr/bin/python3",
        "/work",
    )
    assert result.extra["limits_applied"] == {"RLIMIT_AS": 1}
    assert result.extra["sandbox"] == {"summary": "s"} and result.extra["wall_ms"] >= 0
    failed = build_result(
        request(), "local", ("error", None, ""), reported(WHERE), stdout, stderr, started
    )
    assert failed.value is None  # a value only for a run that finished
    silent = build_result(
        request(), "local", ("timeout", None, ""), None, stdout, stderr, started - 2
    )
    assert silent.duration_ms >= 2000 and silent.extra["limits_applied"] == {}
    assert silent.extra["wall_ms"] == silent.duration_ms


def test_start_failures_say_which_interpreter_and_why() -> None:
    started = time.perf_counter()
    failed = could_not_start(request(), "local", FileNotFoundError(2, "No such file"), started)
    assert failed.status == "internal" and failed.executor == "local"
    assert failed.message == (
        "Could not start the interpreter '/usr/bin/python3' (x): No such file. "
        "Check the codeexec.python setting."
    )
    assert internal_result(request(), "s", "m", started).message == "m"
    assert start_failure_message("/py", 1, "a\nb\nc\nd\n") == (
        "The interpreter /py could not start the run (exit status 1): b c d"
    )
    assert start_failure_message("/py", None, " ").endswith("(exit status None): no output")
    assert signal_name(9) == "SIGKILL (Killed)" and signal_name(999) == "signal 999"


def test_kill_group_ends_the_whole_group_and_ignores_a_gone_one() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "time.sleep(60)",
        ],
        start_new_session=True,
    )
    kill_group(child.pid)
    assert child.wait(timeout=10) == -signal.SIGKILL
    kill_group(child.pid)  # already gone: no error
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)


def test_a_minimal_error_object_gets_its_defaults() -> None:
    error = error_from_json({"frames": [{}], "line": 2})
    assert error == ErrorInfo(
        type="Exception",
        message="",
        line=2,
        traceback="",
        frames=(Frame(file="", line=0, name=""),),
    )
    assert error_from_json({}) is None and error_from_json(None) is None
    no_frames = error_from_json({"type": "Crash"})
    assert no_frames is not None and no_frames.frames == ()


def test_every_field_of_a_reported_error_arrives() -> None:
    data = {
        "type": "KeyError",
        "message": "'k'",
        "line": 5,
        "column": 2,
        "end_line": 6,
        "end_column": 8,
        "traceback": "tb",
        "frames": [
            {"file": "/p/a.py", "line": 5, "name": "f", "column": 2, "end_line": 6,
             "end_column": 8}
        ],
    }  # fmt: skip
    assert error_from_json(data) == ErrorInfo(
        "KeyError", "'k'", 5, 2, 6, 8, "tb", (Frame("/p/a.py", 5, "f", 2, 6, 8),)
    )


def test_build_result_keeps_the_error_and_says_exactly_whether_output_was_cut() -> None:
    error = ErrorInfo("ValueError", "bad", line=3)
    small, big = BoundedCapture(100), BoundedCapture(2)
    small.feed(b"ok")
    big.feed(b"too long")
    started = time.perf_counter()
    kept = build_result(request(), "session", ("error", error, ""), None, small, small, started)
    assert kept.error == error and kept.truncated is False and kept.executor == "session"
    assert kept.extra["limits_applied"] == {} and 0 <= kept.duration_ms < 60_000
    assert build_result(request(), "l", ("ok", None, ""), None, small, big, started).truncated
    assert build_result(request(), "l", ("ok", None, ""), None, big, small, started).truncated
    no_limits = build_result(request(), "l", ("ok", None, ""), reported(), small, small, started)
    assert no_limits.extra["limits_applied"] == {}


def test_limit_messages_name_the_setting_to_change() -> None:
    memory = classify(LIMITS, 1, reported({**WHERE, "type": "MemoryError"}), None)[2]
    assert memory == (
        "Memory limit: the code needed more than 321 MB (the codeexec.memoryMb setting)."
    )
    cpu = classify(LIMITS, 1, reported({**WHERE, "type": "CPUTimeLimitExceeded"}), None)[2]
    assert cpu == (
        "CPU time limit: the code used more than 5 s of CPU (the codeexec.cpuSeconds setting)."
    )
    _, error, message = classify(LIMITS, -9, reported(WHERE), "processes")
    assert error is not None and error.message == message
    relabelled = over_process_limit(("error", ErrorInfo("E", "x", line=1), ""), LIMITS)[1]
    assert relabelled is not None and relabelled.message.endswith("were stopped.")


def test_an_exit_status_of_zero_without_a_report_is_not_a_signal() -> None:
    assert classify(LIMITS, 0, None, None)[0] == "ok"


def test_could_not_start_and_internal_results_say_where_it_ran() -> None:
    started = time.perf_counter() - 1
    unnamed = RunRequest(snippet.whole_file("1\n", "/p/a.py"), "/py", "/w", {})
    failed = could_not_start(unnamed, "session", PermissionError(13, "Permission denied"), started)
    assert "(configured): Permission denied." in failed.message
    internal = internal_result(request(), "session", "broken", started)
    assert internal.duration_ms < 60_000  # measured from `started`, not added to it
    assert (internal.status, internal.executor, internal.interpreter, internal.cwd) == (
        "internal",
        "session",
        "/usr/bin/python3",
        "/work",
    )
    assert internal.duration_ms >= 1000
