"""Turning what happened to a child process into a RunResult, the same way for every
process-based executor (a fresh child per run, or a persistent session worker)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any, Literal

from codeexec_lsp.execution.base import Limits, RunRequest
from codeexec_lsp.execution.capture import BoundedCapture
from codeexec_lsp.execution.display import bounded_outputs
from codeexec_lsp.execution.runner import (
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_TRACEBACK_CHARS,
    clip,
    clip_frames,
)
from codeexec_lsp.results import ErrorInfo, Frame, RunResult, Status

StopReason = Literal["timeout", "cancelled", "output", "processes"]


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({signal.strsignal(number)})"
    except ValueError:
        return f"signal {number}"


def internal_result(request: RunRequest, executor: str, message: str, started: float) -> RunResult:
    return RunResult(
        status="internal",
        message=message,
        duration_ms=(time.perf_counter() - started) * 1000,
        executor=executor,
        interpreter=request.python,
        cwd=request.cwd,
    )


def could_not_start(request: RunRequest, executor: str, exc: OSError, started: float) -> RunResult:
    return internal_result(
        request,
        executor,
        f"Could not start the interpreter {request.python!r} "
        f"({request.interpreter_source or 'configured'}): {exc.strerror or exc}. "
        "Check the codeexec.python setting.",
        started,
    )


def start_failure_message(python: str, returncode: int | None, stderr: str) -> str:
    tail = stderr.strip().splitlines()[-3:]
    return f"The interpreter {python} could not start the run (exit status {returncode}): " + (
        " ".join(tail) or "no output"
    )


def build_result(
    request: RunRequest,
    executor: str,
    classified: tuple[Status, ErrorInfo | None, str],
    reported: dict[str, Any] | None,
    stdout: BoundedCapture,
    stderr: BoundedCapture,
    started: float,
    extra: dict[str, Any] | None = None,
) -> RunResult:
    status, error, message = classified
    wall_ms = (time.perf_counter() - started) * 1000
    return RunResult(
        status=status,
        stdout=stdout.text(),
        stderr=stderr.text(),
        value=reported.get("value") if reported and status == "ok" else None,
        error=error,
        duration_ms=float(reported["duration_ms"]) if reported else wall_ms,
        truncated=stdout.truncated or stderr.truncated,
        executor=executor,
        # Bounded again here: the result channel is reachable by the code that ran.
        outputs=tuple(bounded_outputs(reported.get("outputs"))) if reported else (),
        message=message,
        interpreter=request.python,
        cwd=request.cwd,
        extra={
            "wall_ms": wall_ms,
            "limits_applied": reported.get("limits_applied", {}) if reported else {},
            **(extra or {}),
        },
    )


def classify(
    limits: Limits,
    returncode: int | None,
    reported: dict[str, Any] | None,
    reason: StopReason | None,
) -> tuple[Status, ErrorInfo | None, str]:
    """Status, error and message from the child's report (None: it never reported), how the
    process ended, and why the server stopped it (None: it was not stopped)."""
    reported_error = error_from_json(reported.get("error")) if reported else None
    if reason == "timeout":
        message = (
            f"Stopped after {limits.timeout_s:g} s (the codeexec.timeout setting). "
            "Raise the timeout if the code needs longer."
        )
        return "timeout", relabel(reported_error, "TimeoutError", message), message
    if reason == "cancelled":
        return "cancelled", None, "Cancelled: the run was stopped."
    if reason == "processes":
        message = process_limit_message(limits)
        return "limit", relabel(reported_error, PROCESS_LIMIT_TYPE, message), message
    if reason == "output":
        message = (
            f"Stopped: the code printed more than {limits.output_hard_cap:,} bytes "
            f"(10 × codeexec.maxOutputBytes). Print less, or raise maxOutputBytes."
        )
        return "limit", None, message
    if reported is not None:
        if reported_error is None:
            return "ok", None, ""
        if reported_error.type == "MemoryError":
            message = (
                f"Memory limit: the code needed more than {limits.memory_mb} MB "
                "(the codeexec.memoryMb setting)."
            )
            return "limit", relabel(reported_error, "MemoryError", message), message
        if reported_error.type == "CPUTimeLimitExceeded":
            message = (
                f"CPU time limit: the code used more than {limits.cpu_seconds:g} s of CPU "
                "(the codeexec.cpuSeconds setting)."
            )
            return "limit", relabel(reported_error, "CPUTimeLimitExceeded", message), message
        return "error", reported_error, ""
    # The process ended without reporting: os._exit(), a crash, or a kill by a limit.
    if returncode == 0:
        return "ok", None, "The process exited (os._exit) before the selection finished."
    if returncode is not None and returncode < 0:
        signum = -returncode
        if signum in (signal.SIGXCPU, signal.SIGKILL):
            message = (
                f"Killed by {signal_name(signum)}: the run hit the CPU time or memory "
                f"limit (cpuSeconds {limits.cpu_seconds:g}, memoryMb {limits.memory_mb})."
            )
            return "limit", None, message
        message = f"The process died from {signal_name(signum)}."
        return "error", ErrorInfo(type="Crash", message=message), message
    message = f"The process exited with status {returncode} before the selection finished."
    return "error", ErrorInfo(type="SystemExit", message=str(returncode)), message


PROCESS_LIMIT_TYPE = "ProcessLimitExceeded"


def process_limit_message(limits: Limits, kept: str = "") -> str:
    return (
        f"Process limit: the code tried to run more than {limits.max_processes} processes "
        f"and threads at once (a fork bomb?); all of them were stopped{kept}."
    )


def over_process_limit(
    classified: tuple[Status, ErrorInfo | None, str], limits: Limits, kept: str = ""
) -> tuple[Status, ErrorInfo | None, str]:
    """The run hit the process limit: a failure is reported as that limit (where the code
    was is kept); a run that coped with refused forks stays ok, with a note."""
    status, error, message = classified
    note = process_limit_message(limits, kept)
    if status in ("error", "timeout"):
        return "limit", relabel(error, PROCESS_LIMIT_TYPE, note), note
    if status == "ok":
        return status, error, " ".join(part for part in (message, note) if part)
    return classified


def looks_like_refused_fork(error: ErrorInfo | None) -> bool:
    """Where the kernel bounds processes through RLIMIT_NPROC there is no counter to read
    afterwards: a fork or a new thread failing with EAGAIN is the sign."""
    if error is None:
        return False
    if error.type == "BlockingIOError":
        return any(word in error.traceback for word in ("fork", "_execute_child", "spawn"))
    return error.type == "RuntimeError" and "can't start new thread" in error.message


def error_from_json(data: dict[str, Any] | None) -> ErrorInfo | None:
    """The child's `error` object. Clipped again as the runner clips it: the child's result
    channel is reachable by the code it runs, so what arrives may not be what runner.py sent."""
    if not data:
        return None
    frames = tuple(
        Frame(
            file=clip(str(frame.get("file", "")), MAX_NAME_CHARS),
            line=int(frame.get("line") or 0),
            name=clip(str(frame.get("name", "")), MAX_NAME_CHARS),
            column=frame.get("column"),
            end_line=frame.get("end_line"),
            end_column=frame.get("end_column"),
        )
        for frame in clip_frames(list(data.get("frames", [])))
    )
    return ErrorInfo(
        type=clip(str(data.get("type", "Exception")), MAX_NAME_CHARS),
        message=clip(str(data.get("message", "")), MAX_MESSAGE_CHARS),
        line=data.get("line"),
        column=data.get("column"),
        end_line=data.get("end_line"),
        end_column=data.get("end_column"),
        traceback=clip(str(data.get("traceback", "")), MAX_TRACEBACK_CHARS),
        frames=frames,
    )


def relabel(error: ErrorInfo | None, type_name: str, message: str) -> ErrorInfo | None:
    """Keep where the code was stopped, but say why in the user's terms."""
    if error is None or error.line is None:
        return None
    return ErrorInfo(
        type=type_name,
        message=message,
        line=error.line,
        column=error.column,
        end_line=error.end_line,
        end_column=error.end_column,
        traceback=error.traceback,
        frames=error.frames,
    )
