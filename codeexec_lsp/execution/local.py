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
from typing import Any

from codeexec_lsp.execution.base import Limits, RunRequest
from codeexec_lsp.execution.capture import READ_CHUNK, BoundedCapture
from codeexec_lsp.execution.outcome import (
    StopReason,
    build_result,
    classify,
    could_not_start,
    internal_result,
    kill_group,
    start_failure_message,
)
from codeexec_lsp.results import RunResult

__all__ = ["BoundedCapture", "LocalExecutor"]

RUNNER = Path(__file__).with_name("runner.py")
INTERRUPT_GRACE_S = {"timeout": 1.0, "cancelled": 0.5, "output": 0.0}
EXIT_GRACE_S = 1.0  # after the result arrived: time for threads and atexit hooks
DRAIN_GRACE_S = 1.0  # an escaped grandchild may hold the pipes open forever


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
            return could_not_start(request, self.name, exc, started)
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
            kill_group(process.pid)
            for task in [*pumps, result_task]:
                task.cancel()
            raise
        finally:
            kill_group(process.pid)
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
                kill_group(process.pid, signal.SIGINT)
                await asyncio.wait({exited, result_task}, timeout=grace)
                if not result_task.done():
                    # Interrupted but not yet reported: the runner may be formatting the
                    # traceback; a short extra wait keeps the location.
                    await asyncio.wait({result_task}, timeout=0.2)
            kill_group(process.pid)
            return reason
        finally:
            for task in (overflow, cancelled):
                if task is not None:
                    task.cancel()
            if not exited.done():
                kill_group(process.pid)
            await asyncio.wait({exited}, timeout=DRAIN_GRACE_S)

    async def _drain(self, pumps: list[asyncio.Task[None]]) -> None:
        _, pending = await asyncio.wait(pumps, timeout=DRAIN_GRACE_S)
        for task in pending:
            task.cancel()

    # --- turning what happened into a RunResult -----------------------------------------

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
        if ready != "ready" and reason is None:
            message = start_failure_message(request.python, returncode, run.stderr.text())
            return internal_result(request, self.name, message, started)
        classified = classify(request.limits, returncode, reported, reason)
        return build_result(
            request, self.name, classified, reported, run.stdout, run.stderr, started
        )
