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


@dataclass
class _Child:
    process: asyncio.subprocess.Process
    result_read: int

    @property
    def usable(self) -> bool:
        return self.process.returncode is None

    def discard(self) -> None:
        kill_group(self.process.pid)
        with contextlib.suppress(OSError):
            os.close(self.result_read)


SpareKey = tuple[str, str, tuple[tuple[str, str], ...]]


async def _spawn(python: str, cwd: str, env: dict[str, str]) -> _Child:
    result_read, result_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            python,
            "-u",
            str(RUNNER),
            "--result-fd",
            str(result_write),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=env,
            pass_fds=(result_write,),
            start_new_session=True,
        )
    except OSError:
        os.close(result_read)
        raise
    finally:
        os.close(result_write)
    return _Child(process, result_read)


class LocalExecutor:
    """Runs each request in a new child process of the requested interpreter.

    With `prestart`, the next child for the same interpreter, folder and environment is
    started in advance and waits for its request, so a run does not pay for interpreter
    start-up. Each child still runs exactly one request.
    """

    name = "local"

    def __init__(self, prestart: bool = False) -> None:
        self.prestart = prestart
        self._spares: dict[SpareKey, asyncio.Task[_Child]] = {}

    async def close(self) -> None:
        spares, self._spares = list(self._spares.values()), {}
        for task in spares:
            if task.done() and not task.cancelled() and task.exception() is None:
                child = task.result()
                child.discard()
                await child.process.wait()
            else:
                task.cancel()
                with contextlib.suppress(BaseException):
                    (await task).discard()

    async def _child_for(self, request: RunRequest) -> _Child:
        key: SpareKey = (request.python, request.cwd, tuple(sorted(request.env.items())))
        spare = self._spares.pop(key, None)
        if self.prestart:
            self._spares[key] = asyncio.ensure_future(
                _spawn(request.python, request.cwd, request.env)
            )
        if spare is not None:
            with contextlib.suppress(OSError):
                child = await spare
                if child.usable:
                    return child
                child.discard()
        return await _spawn(request.python, request.cwd, request.env)

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
        try:
            child = await self._child_for(request)
        except OSError as exc:
            return could_not_start(request, self.name, exc, started)
        process, result_read = child.process, child.result_read

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
