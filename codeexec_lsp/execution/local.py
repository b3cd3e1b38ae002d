"""The embedded default backend: a fresh, limited child process per run.

The child runs `runner.py` in its own session (process group), in the box the request's
profile asks for (launcher.py builds it before the interpreter starts; a pids and a memory
cgroup of its own). Everything it sends back is read up to a bound (RESULT_CAP_FACTOR ×
maxOutputBytes): a run past it is stopped with status `limit`, the server's memory stays
bounded.
It is interrupted with SIGINT on timeout or cancel, so the traceback can say where the code
was, then the whole group and everything else the run started (the cgroup, or the child's
process tree) is killed, so nothing the run started outlives it.
"""

from __future__ import annotations

import asyncio
import codecs
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
from codeexec_lsp.execution.launcher import Box, launch
from codeexec_lsp.execution.live import LiveOutput
from codeexec_lsp.execution.outcome import (
    StopReason,
    build_result,
    classify,
    could_not_start,
    internal_result,
    kill_group,
    looks_like_refused_fork,
    over_process_limit,
    start_failure_message,
)
from codeexec_lsp.execution.sandbox import ProcessGuard
from codeexec_lsp.results import RunResult

__all__ = ["BoundedCapture", "LocalExecutor"]

RUNNER = Path(__file__).with_name("runner.py")
INTERRUPT_GRACE_S = {"timeout": 1.0, "cancelled": 0.5, "output": 0.0, "processes": 0.0}
# The result pipe carries the value's repr, the traceback and the rich outputs: at most
# this many times maxOutputBytes of it is read (plus a floor for small settings).
RESULT_CAP_FACTOR = 10
RESULT_CAP_FLOOR = 4 * 1024 * 1024
EXIT_GRACE_S = 1.0  # after the result arrived: time for threads and atexit hooks
DRAIN_GRACE_S = 1.0  # an escaped grandchild may hold the pipes open forever


def result_cap(limits: Limits) -> int:
    """How much of a result (or a session reply) the server reads before it stops the run."""
    return max(RESULT_CAP_FACTOR * limits.max_output_bytes, RESULT_CAP_FLOOR)


@dataclass
class _Run:
    limits: Limits
    stdout: BoundedCapture
    stderr: BoundedCapture
    overflow: asyncio.Event = field(default_factory=asyncio.Event)
    result_overflow: asyncio.Event = field(default_factory=asyncio.Event)
    # Who watches the run while it goes (progress, Show output); None: nobody.
    live: LiveOutput | None = None

    @property
    def output_total(self) -> int:
        return self.stdout.total + self.stderr.total


async def _pump(
    stream: asyncio.StreamReader, capture: BoundedCapture, run: _Run, name: str
) -> None:
    """Read one output pipe into its capture (and to the watcher, decoded as it comes: a
    character split between two reads is held by the decoder, not garbled)."""
    live = run.live
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace") if live else None
    while chunk := await stream.read(READ_CHUNK):
        capture.feed(chunk)
        if run.output_total > run.limits.output_hard_cap:
            run.overflow.set()
        if live is not None and decoder is not None:
            live.feed(name, decoder.decode(chunk))
    if live is not None and decoder is not None:
        live.feed(name, decoder.decode(b"", final=True))


async def _read_result(fd: int, into: bytearray, cap: int, over: asyncio.Event) -> None:
    """Read the result pipe to its end into `into`, which keeps what arrived if this is
    cancelled: a process the code left behind may hold the pipe open. Past `cap` bytes the
    reading stops and `over` is set: the pipe is the run's to write, the memory is ours."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=READ_CHUNK)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        while chunk := await reader.read(READ_CHUNK):
            if len(into) + len(chunk) > cap:
                over.set()
                return
            into += chunk
    finally:
        transport.close()


def memory_limit_message(limits: Limits) -> str:
    return (
        f"Memory limit: the run used more than {limits.memory_mb} MB, counting files in "
        "/dev/shm, /tmp (tmpfs) and memfd (the codeexec.memoryMb setting); it was killed."
    )


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    waiters = {asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or already reaped
        return None


async def _ended(process: asyncio.subprocess.Process) -> None:
    """Returns once the child has exited and its status is known. process.wait() does too,
    but before Python 3.12 it also waits until every pipe of the child is closed, which a
    process that escaped the run (setsid() and fork) can hold open for ever."""
    if process.returncode is not None:
        return
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[Any] = loop.create_future()
    fd = _pidfd(process.pid)

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    if fd is not None:
        loop.add_reader(fd, on_exit)
    waiting: asyncio.Future[Any] = asyncio.ensure_future(process.wait())
    try:
        while process.returncode is None:
            # A pidfd wakes us at the exit; asyncio's watcher sets the status right after.
            poll = 0.001 if exited.done() else 0.05
            await asyncio.wait({exited, waiting}, timeout=poll)
    finally:
        waiting.cancel()
        if fd is not None:
            loop.remove_reader(fd)
            os.close(fd)


def _kill(process: asyncio.subprocess.Process, guard: ProcessGuard) -> None:
    # The guard first: without a cgroup, the run's orphans are found through the child's
    # process tree, which only holds them while the child lives.
    guard.kill_now(process.pid)
    kill_group(process.pid)


@dataclass
class _Child:
    process: asyncio.subprocess.Process
    result_read: int
    guard: ProcessGuard
    adopted: asyncio.Future[None]  # moved into its cgroup while the interpreter starts

    @property
    def usable(self) -> bool:
        return self.process.returncode is None

    async def discard(self) -> None:
        with contextlib.suppress(Exception):
            await self.adopted
        _kill(self.process, self.guard)
        with contextlib.suppress(OSError):
            os.close(self.result_read)
        await asyncio.wait({asyncio.ensure_future(_ended(self.process))}, timeout=DRAIN_GRACE_S)
        await self.guard.release(self.process.pid)


SpareKey = tuple[str, str, tuple[tuple[str, str], ...], Box]


async def _spawn(python: str, cwd: str, env: dict[str, str], box: Box) -> _Child:
    guard = box.guard()
    result_read, result_write = os.pipe()
    program = [python, "-u", str(RUNNER), "--result-fd", str(result_write)]
    if guard.tracks_tree:
        # Without a cgroup, the runner (a subreaper, set by the launcher) kills what the
        # code left running at its exit; the box itself is already in place.
        program += ["--sandbox", json.dumps({"subreaper": True})]
    try:
        process = await launch(
            box,
            guard,
            program,
            report_fd=result_write,
            form="line",
            cwd=cwd,
            env=env,
            pass_fds=(result_write,),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except BaseException:
        os.close(result_read)
        await guard.release(0)
        raise
    finally:
        os.close(result_write)
    return _Child(process, result_read, guard, asyncio.ensure_future(guard.adopt(process.pid)))


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
                await task.result().discard()
            else:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await (await task).discard()

    async def _child_for(self, request: RunRequest, box: Box) -> _Child:
        env = tuple(sorted(request.env.items()))
        key: SpareKey = (request.python, request.cwd, env, box)
        spare = self._spares.pop(key, None)
        if self.prestart:
            self._spares[key] = asyncio.ensure_future(
                _spawn(request.python, request.cwd, request.env, box)
            )
        if spare is not None:
            with contextlib.suppress(OSError):
                child = await spare
                if child.usable:
                    return child
                await child.discard()
        return await _spawn(request.python, request.cwd, request.env, box)

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
        box = Box.for_request(request)
        try:
            child = await self._child_for(request, box)
        except OSError as exc:
            return could_not_start(request, self.name, exc, started)
        process, result_read, guard = child.process, child.result_read, child.guard

        run = _Run(
            limits,
            BoundedCapture(limits.max_output_bytes),
            BoundedCapture(limits.max_output_bytes),
            live=request.live,
        )
        assert process.stdout is not None and process.stderr is not None
        pumps = [
            asyncio.create_task(_pump(process.stdout, run.stdout, run, "stdout")),
            asyncio.create_task(_pump(process.stderr, run.stderr, run, "stderr")),
        ]
        raw_result = bytearray()
        result_task = asyncio.create_task(
            _read_result(result_read, raw_result, result_cap(limits), run.result_overflow)
        )
        sending: asyncio.Task[None] | None = None
        try:
            await child.adopted  # before the request: no user code outside the cgroup
            # Sent under supervision: an interpreter that never reads its request (hung in
            # start-up) must still be stopped by the timeout or a cancel, like any run.
            sending = asyncio.create_task(self._send_request(process, payload))
            reason = await self._supervise(
                process, result_task, run, cancel, limits.timeout_s, guard
            )
            # Whatever the run left behind goes now: it may hold the pipes open.
            kill_group(process.pid)
            await guard.kill(process.pid)
            await self._drain([*pumps, result_task])
        except asyncio.CancelledError:
            _kill(process, guard)
            for task in [*pumps, result_task]:
                task.cancel()
            raise
        finally:
            if sending is not None:
                sending.cancel()
                if sending.done() and not sending.cancelled():
                    sending.exception()  # retrieved: how the run ended already says it
            _kill(process, guard)
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.wait({asyncio.ensure_future(_ended(process))}, timeout=5)
            result_task.cancel()
            process_limit_hits = guard.limit_events()
            memory_kills = guard.memory_events()
            await guard.release(process.pid)
        if run.result_overflow.is_set():
            # Nothing of it is shown but the launcher's first line: what the box applied.
            del raw_result[raw_result.find(b"\n") + 1 :]
        return self._result(
            request,
            process.returncode,
            raw_result,
            reason,
            run,
            started,
            (box, guard),
            (process_limit_hits, memory_kills),
        )

    async def _send_request(self, process: asyncio.subprocess.Process, payload: bytes) -> None:
        assert process.stdin is not None
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            process.stdin.write(payload)
            await process.stdin.drain()
        process.stdin.close()
        # A child that closed its input leaves the pipe's close future holding the error;
        # older Pythons (Debian's 3.11.2; not 3.11.7) log it as "Future exception was never
        # retrieved" unless someone awaits it. The buffer was drained above: no wait here.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await process.stdin.wait_closed()

    async def _supervise(
        self,
        process: asyncio.subprocess.Process,
        result_task: asyncio.Task[None],
        run: _Run,
        cancel: asyncio.Event | None,
        timeout: float,
        guard: ProcessGuard,
    ) -> StopReason | None:
        exited = asyncio.create_task(_ended(process))
        overflow = asyncio.create_task(_either(run.overflow, run.result_overflow))
        cancelled = asyncio.create_task(cancel.wait()) if cancel else None
        too_many = guard.watcher(process.pid)
        watched: set[asyncio.Future[Any]] = {exited, result_task, overflow}
        for optional in (cancelled, too_many):
            if optional is not None:
                watched.add(optional)
        try:
            done, _ = await asyncio.wait(
                watched, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            reason: StopReason | None
            if cancelled is not None and cancelled in done:
                reason = "cancelled"
            elif too_many is not None and too_many in done:
                reason = "processes"
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
            _kill(process, guard)
            return reason
        finally:
            for task in (overflow, cancelled, too_many):
                if task is not None:
                    task.cancel()
            if not exited.done():
                _kill(process, guard)
            await asyncio.wait({exited}, timeout=DRAIN_GRACE_S)

    async def _drain(self, pumps: list[asyncio.Task[None]]) -> None:
        """Let the pipes deliver what is in them; none is waited on for long."""
        _, pending = await asyncio.wait(pumps, timeout=DRAIN_GRACE_S)
        for task in pending:
            task.cancel()

    # --- turning what happened into a RunResult -----------------------------------------

    def _result(
        self,
        request: RunRequest,
        returncode: int | None,
        raw_result: bytearray,
        reason: StopReason | None,
        run: _Run,
        started: float,
        boxed: tuple[Box, ProcessGuard],
        hits: tuple[int, int],
    ) -> RunResult:
        box, guard = boxed
        process_limit_hits, memory_kills = hits
        text = bytes(raw_result).decode("utf-8", "replace")
        confined: dict[str, Any] | None = None
        # The first line is the launcher's, written before the user's interpreter ran;
        # any later "sandbox" line is the runner's own (the subreaper), not a report.
        first = True
        while text.startswith("sandbox "):
            line, _, text = text.partition("\n")
            if first:
                with contextlib.suppress(ValueError):
                    confined = json.loads(line.removeprefix("sandbox "))
            first = False
        if run.result_overflow.is_set():
            report = box.report(guard, confined)
            message = (
                f"Stopped: the code sent more than {result_cap(request.limits):,} bytes of "
                "result (10 × codeexec.maxOutputBytes): a value or error that large is not "
                "shown. Print less, or raise maxOutputBytes."
            )
            return build_result(
                request,
                self.name,
                ("limit", None, message),
                None,
                run.stdout,
                run.stderr,
                started,
                extra={"sandbox": report.to_json()},
            )
        ready, _, body = text.partition("\n")
        reported: dict[str, Any] | None = None
        if body.strip():
            with contextlib.suppress(ValueError):
                reported = json.loads(body)
        if ready != "ready" and reason is None:
            message = start_failure_message(request.python, returncode, run.stderr.text())
            return internal_result(request, self.name, message, started)
        classified = classify(request.limits, returncode, reported, reason)
        if not guard.counts_refusals and looks_like_refused_fork(classified[1]):
            process_limit_hits += 1
        if process_limit_hits and reason != "processes":
            classified = over_process_limit(classified, request.limits)
        if memory_kills and classified[0] != "ok":
            classified = ("limit", classified[1], memory_limit_message(request.limits))
        report = box.report(guard, confined)
        return build_result(
            request,
            self.name,
            classified,
            reported,
            run.stdout,
            run.stderr,
            started,
            extra={"sandbox": report.to_json()},
        )
