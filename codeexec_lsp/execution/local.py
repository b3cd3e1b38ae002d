"""The embedded default backend: a fresh, limited child process per run.

The child runs `runner.py` in its own session (process group). It is interrupted with
SIGINT on timeout or cancel, so the traceback can say where the code was, then the whole
group is killed, so nothing the run started outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codeexec_lsp.execution.base import Limits, RunRequest
from codeexec_lsp.results import ErrorInfo, Frame, RunResult, Status

RUNNER = Path(__file__).with_name("runner.py")
READ_CHUNK = 1 << 16
INTERRUPT_GRACE_S = {"timeout": 1.0, "cancelled": 0.5, "output": 0.0}
EXIT_GRACE_S = 1.0  # after the result arrived: time for threads and atexit hooks
DRAIN_GRACE_S = 1.0  # an escaped grandchild may hold the pipes open forever

StopReason = Literal["timeout", "cancelled", "output"]


class BoundedCapture:
    """Keeps the head and the tail of a stream within `limit` bytes, counting the rest."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return (self.head + self.tail).decode("utf-8", "replace")
        omitted = self.total - len(self.head) - len(self.tail)
        return (
            self.head.decode("utf-8", "replace")
            + f"\n… [{omitted:,} bytes of output omitted: maxOutputBytes] …\n"
            + self.tail.decode("utf-8", "replace")
        )


@dataclass
class _Run:
    limits: Limits
    stdout: BoundedCapture
    stderr: BoundedCapture
    overflow: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def output_total(self) -> int:
        return self.stdout.total + self.stderr.total


async def _pump(stream: asyncio.StreamReader, capture: BoundedCapture, run: _Run) -> None:
    while chunk := await stream.read(READ_CHUNK):
        capture.feed(chunk)
        if run.output_total > run.limits.output_hard_cap:
            run.overflow.set()


async def _read_result(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        return await reader.read()
    finally:
        transport.close()


def _kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({signal.strsignal(number)})"
    except ValueError:
        return f"signal {number}"


class LocalExecutor:
    """Runs each request in a new child process of the requested interpreter."""

    name = "local"

    async def close(self) -> None:
        return None

    async def run(self, request: RunRequest, cancel: asyncio.Event | None = None) -> RunResult:
        started = time.perf_counter()
        limits = request.limits
        payload = json.dumps(
            {
                "code": request.snippet.code,
                "path": request.snippet.path,
                "document": request.snippet.document,
                "first_line": request.snippet.first_line + 1,
                "column": request.snippet.column,
                "sys_path": list(request.sys_path),
                "limits": {
                    "memory_bytes": limits.memory_mb * 1024 * 1024,
                    "cpu_seconds": limits.cpu_seconds,
                    "file_bytes": limits.max_file_mb * 1024 * 1024,
                    "open_files": limits.max_open_files,
                },
            }
        ).encode()
        result_read, result_write = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                request.python,
                "-u",
                str(RUNNER),
                "--result-fd",
                str(result_write),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=request.cwd,
                env=request.env,
                pass_fds=(result_write,),
                start_new_session=True,
            )
        except OSError as exc:
            os.close(result_read)
            return self._internal(
                request,
                f"Could not start the interpreter {request.python!r} "
                f"({request.interpreter_source or 'configured'}): {exc.strerror or exc}. "
                "Check the codeexec.python setting.",
                started,
            )
        finally:
            os.close(result_write)

        run = _Run(
            limits, BoundedCapture(limits.max_output_bytes), BoundedCapture(limits.max_output_bytes)
        )
        assert process.stdout is not None and process.stderr is not None
        pumps = [
            asyncio.create_task(_pump(process.stdout, run.stdout, run)),
            asyncio.create_task(_pump(process.stderr, run.stderr, run)),
        ]
        result_task = asyncio.create_task(_read_result(result_read))
        try:
            await self._send_request(process, payload)
            reason = await self._supervise(process, result_task, run, cancel, limits.timeout_s)
            await self._drain(pumps)
            raw_result = await result_task
        except asyncio.CancelledError:
            _kill_group(process.pid)
            for task in [*pumps, result_task]:
                task.cancel()
            raise
        finally:
            _kill_group(process.pid)
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        return self._result(request, process.returncode, raw_result, reason, run, started)

    async def _send_request(self, process: asyncio.subprocess.Process, payload: bytes) -> None:
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(payload)
            await process.stdin.drain()
        process.stdin.close()

    async def _supervise(
        self,
        process: asyncio.subprocess.Process,
        result_task: asyncio.Task[bytes],
        run: _Run,
        cancel: asyncio.Event | None,
        timeout: float,
    ) -> StopReason | None:
        exited = asyncio.create_task(process.wait())
        overflow = asyncio.create_task(run.overflow.wait())
        cancelled = asyncio.create_task(cancel.wait()) if cancel else None
        watched: set[asyncio.Future[Any]] = {exited, result_task, overflow}
        if cancelled is not None:
            watched.add(cancelled)
        try:
            done, _ = await asyncio.wait(
                watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            reason: StopReason | None
            if cancelled is not None and cancelled in done:
                reason = "cancelled"
            elif overflow in done:
                reason = "output"
            elif not done:
                reason = "timeout"
            else:
                reason = None
            if reason is None:
                # Finished: give threads and atexit hooks a moment, then end the group.
                await asyncio.wait({exited}, timeout=EXIT_GRACE_S)
                return None
            grace = INTERRUPT_GRACE_S[reason]
            if grace > 0 and process.returncode is None:
                _kill_group(process.pid, signal.SIGINT)
                await asyncio.wait({exited, result_task}, timeout=grace)
                if not result_task.done():
                    # Interrupted but not yet reported: the runner may be formatting the
                    # traceback; a short extra wait keeps the location.
                    await asyncio.wait({result_task}, timeout=0.2)
            _kill_group(process.pid)
            return reason
        finally:
            for task in (overflow, cancelled):
                if task is not None:
                    task.cancel()
            if not exited.done():
                _kill_group(process.pid)
            await asyncio.wait({exited}, timeout=DRAIN_GRACE_S)

    async def _drain(self, pumps: list[asyncio.Task[None]]) -> None:
        _, pending = await asyncio.wait(pumps, timeout=DRAIN_GRACE_S)
        for task in pending:
            task.cancel()

    # --- turning what happened into a RunResult -----------------------------------------

    def _internal(self, request: RunRequest, message: str, started: float) -> RunResult:
        return RunResult(
            status="internal",
            message=message,
            duration_ms=(time.perf_counter() - started) * 1000,
            executor=self.name,
            interpreter=request.python,
            cwd=request.cwd,
        )

    def _result(
        self,
        request: RunRequest,
        returncode: int | None,
        raw_result: bytes,
        reason: StopReason | None,
        run: _Run,
        started: float,
    ) -> RunResult:
        ready, _, body = raw_result.decode("utf-8", "replace").partition("\n")
        reported: dict[str, Any] | None = None
        if body.strip():
            with contextlib.suppress(ValueError):
                reported = json.loads(body)
        stderr = run.stderr.text()
        if ready != "ready" and reason is None:
            tail = stderr.strip().splitlines()[-3:]
            return self._internal(
                request,
                f"The interpreter {request.python} could not start the run "
                f"(exit status {returncode}): " + (" ".join(tail) or "no output"),
                started,
            )
        status, error, message = self._classify(request, returncode, reported, reason, run)
        wall_ms = (time.perf_counter() - started) * 1000
        return RunResult(
            status=status,
            stdout=run.stdout.text(),
            stderr=stderr,
            value=reported.get("value") if reported and status == "ok" else None,
            error=error,
            duration_ms=float(reported["duration_ms"]) if reported else wall_ms,
            truncated=run.stdout.truncated or run.stderr.truncated,
            executor=self.name,
            message=message,
            interpreter=request.python,
            cwd=request.cwd,
            extra={
                "wall_ms": wall_ms,
                "limits_applied": reported.get("limits_applied", {}) if reported else {},
            },
        )

    def _classify(
        self,
        request: RunRequest,
        returncode: int | None,
        reported: dict[str, Any] | None,
        reason: StopReason | None,
        run: _Run,
    ) -> tuple[Status, ErrorInfo | None, str]:
        limits = request.limits
        reported_error = _error_from_json(reported.get("error")) if reported else None
        if reason == "timeout":
            message = (
                f"Stopped after {limits.timeout_s:g} s (the codeexec.timeout setting). "
                "Raise the timeout if the code needs longer."
            )
            return "timeout", _relabel(reported_error, "TimeoutError", message), message
        if reason == "cancelled":
            return "cancelled", None, "Cancelled: the run was stopped."
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
                return "limit", _relabel(reported_error, "MemoryError", message), message
            if reported_error.type == "CPUTimeLimitExceeded":
                message = (
                    f"CPU time limit: the code used more than {limits.cpu_seconds:g} s of CPU "
                    "(the codeexec.cpuSeconds setting)."
                )
                return "limit", _relabel(reported_error, "CPUTimeLimitExceeded", message), message
            return "error", reported_error, ""
        # The process ended without reporting: os._exit(), a crash, or a kill by a limit.
        if returncode == 0:
            return "ok", None, "The process exited (os._exit) before the selection finished."
        if returncode is not None and returncode < 0:
            signum = -returncode
            if signum in (signal.SIGXCPU, signal.SIGKILL):
                message = (
                    f"Killed by {_signal_name(signum)}: the run hit the CPU time or memory "
                    f"limit (cpuSeconds {limits.cpu_seconds:g}, memoryMb {limits.memory_mb})."
                )
                return "limit", None, message
            message = f"The process died from {_signal_name(signum)}."
            return "error", ErrorInfo(type="Crash", message=message), message
        message = f"The process exited with status {returncode} before the selection finished."
        return "error", ErrorInfo(type="SystemExit", message=str(returncode)), message


def _error_from_json(data: dict[str, Any] | None) -> ErrorInfo | None:
    if not data:
        return None
    frames = tuple(
        Frame(
            file=str(frame.get("file", "")),
            line=int(frame.get("line") or 0),
            name=str(frame.get("name", "")),
            column=frame.get("column"),
            end_line=frame.get("end_line"),
            end_column=frame.get("end_column"),
        )
        for frame in data.get("frames", [])
    )
    return ErrorInfo(
        type=str(data.get("type", "Exception")),
        message=str(data.get("message", "")),
        line=data.get("line"),
        column=data.get("column"),
        end_line=data.get("end_line"),
        end_column=data.get("end_column"),
        traceback=str(data.get("traceback", "")),
        frames=frames,
    )


def _relabel(error: ErrorInfo | None, type_name: str, message: str) -> ErrorInfo | None:
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
