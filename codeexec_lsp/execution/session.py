"""The persistent backend: one long-lived worker per (interpreter, working directory) keeps
the user's variables and imports between runs, like a REPL or Jupyter's interactive window.

Why it is built this way:

- Code and results travel as JSON lines on two dedicated pipes (worker.py); the user's
  stdin is closed, as in a fresh run.
- User output goes to the worker's own long-lived stdout/stderr pipes (fd level, so C
  extensions and subprocesses are captured), cut into runs by a random end marker that
  the worker writes after each run. Fresh pipes per run would need fd passing and new fds
  in a process whose user code may already hold every fd it is allowed.
- A long-lived process cannot get a per-run wall-clock rlimit, so the server enforces the
  timeout: SIGINT to the worker's process group (KeyboardInterrupt where the code was, as
  Ctrl-C in a REPL), and if the code does not report within a short grace, SIGKILL of the
  group and a new worker; the result then says plainly that the state was lost. The
  worker only gets SIGINT after it said the run's code started, so a late interrupt never
  hits the idle worker or the next run.
- Each worker is confined once, when it starts, by the launcher (launcher.py) before its
  interpreter runs: the box of its profile, its own pids and memory cgroups, shared by
  its runs. A run that hits the process limit gets the extra processes killed, the
  worker kept.
- The interpreter is resolved once, when a session starts: if the workspace's interpreter
  changes later (a new `.venv/bin/python`), runs stay on the session's and say so, until
  the user restarts the session. Nothing a run writes changes what the next run starts.
- Every reply line is read up to a bound (RESULT_CAP_FACTOR × maxOutputBytes): past it the
  worker is killed and the run ends with status `limit`.
- Runs on one session are queued in arrival order (asyncio.Lock wakes waiters FIFO).
- Throwaway runs, such as verifying a fix, belong in LocalExecutor: a fresh process cannot
  touch the session's state.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import os
import secrets
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from codeexec_lsp.execution.base import InspectAnswer, Limits, Profile, RunRequest, has_waiters
from codeexec_lsp.execution.capture import BoundedCapture, DelimitedStream
from codeexec_lsp.execution.launcher import Box, launch
from codeexec_lsp.execution.live import LiveOutput, RunQueue
from codeexec_lsp.execution.local import memory_limit_message, result_cap
from codeexec_lsp.execution.outcome import (
    StopReason,
    build_result,
    classify,
    could_not_start,
    error_from_json,
    internal_result,
    kill_group,
    looks_like_refused_fork,
    over_process_limit,
    signal_name,
    start_failure_message,
)
from codeexec_lsp.execution.sandbox import ProcessGuard
from codeexec_lsp.results import ErrorInfo, RunResult, Status

NAME = "session"
WORKER = Path(__file__).with_name("worker.py")
# Loads worker.py through importlib, from its cached bytecode: run as a script it would be
# compiled at every start. Its path stays an argument (the strict box keeps its folder
# visible), and `python -c` puts the working directory first on sys.path: not ours to add.
WORKER_BOOTSTRAP = (
    "import sys, importlib.util as u; sys.path[:1] = [p for p in sys.path[:1] if p]; "
    "s = u.spec_from_file_location('_codeexec_worker', sys.argv[1]); "
    "m = u.module_from_spec(s); s.loader.exec_module(m); m.main(sys.argv[2:])"
)
# Unlike a fresh process, a session is worth a moment's wait before it is killed for output.
INTERRUPT_GRACE_S: dict[StopReason, float] = {
    "timeout": 1.0,
    "cancelled": 0.5,
    "output": 0.5,
    "processes": 0.5,
}
LATE_REPORT_S = 0.2  # interrupted, maybe still formatting the traceback
# The worker block-buffers output (worker.py); while a run goes it is asked this often to
# flush, so live progress is never further behind, and a run killed after ignoring SIGINT
# loses at most this long's output (and at most 64 KB).
FLUSH_INTERVAL_S = 0.5
FLUSH_SIGNAL = signal.SIGURG
START_TIMEOUT_S = 30.0
MARKER_GRACE_S = 1.0  # the result is in; the markers were written before it
DRAIN_GRACE_S = 1.0  # an escaped grandchild may hold the pipes open forever
STATE_LOST = "its state (variables, imports) was lost"

SessionKey = tuple[str, str]
REPLY_TOO_LARGE = "reply too large"


@dataclass(frozen=True)
class _StartConfig:
    """What a worker fixes when it starts; a run that needs other values needs a new one."""

    python: str
    cwd: str
    env: tuple[tuple[str, str], ...]
    memory_mb: int
    max_file_mb: int
    max_open_files: int
    network: bool = False
    max_processes: int = Limits().max_processes
    profile: Profile = "standard"
    # Added per run instead: different files of one workspace need different entries.
    sys_path: tuple[str, ...] = field(default=(), compare=False)
    # Bounds each reply line; the run's own maxOutputBytes is checked per run.
    reply_cap: int = field(default=10_000_000, compare=False)

    @classmethod
    def of(
        cls,
        python: str,
        cwd: str,
        env: Mapping[str, str],
        limits: Limits,
        sys_path: Sequence[str],
        network: bool = False,
        profile: Profile = "standard",
    ) -> _StartConfig:
        return cls(
            python=python,
            cwd=cwd,
            env=tuple(sorted(env.items())),
            memory_mb=limits.memory_mb,
            max_file_mb=limits.max_file_mb,
            max_open_files=limits.max_open_files,
            network=network,
            max_processes=limits.max_processes,
            profile=profile,
            sys_path=tuple(sys_path),
            reply_cap=result_cap(limits),
        )

    @property
    def key(self) -> SessionKey:
        return (self.cwd, self.profile)

    @property
    def box(self) -> Box:
        limits = Limits(
            memory_mb=self.memory_mb,
            max_file_mb=self.max_file_mb,
            max_open_files=self.max_open_files,
            max_processes=self.max_processes,
        )
        return Box.of(self.cwd, dict(self.env), limits, self.profile, self.network)

    def start_message(self) -> dict[str, Any]:
        return {
            "op": "start",
            "sys_path": list(self.sys_path),
            "limits": {
                "memory_bytes": self.memory_mb * 1024 * 1024,
                "file_bytes": self.max_file_mb * 1024 * 1024,
                "open_files": self.max_open_files,
            },
        }


@dataclass
class _RunState:
    limits: Limits
    stdout: BoundedCapture
    stderr: BoundedCapture
    overflow: asyncio.Event = field(default_factory=asyncio.Event)
    ended: tuple[asyncio.Event, asyncio.Event] = field(
        default_factory=lambda: (asyncio.Event(), asyncio.Event())
    )
    # Who watches this run while it goes (progress, Show output); None: nobody.
    live: LiveOutput | None = None
    # Set by begin_run: what each pipe shows the watcher, the marker already cut off.
    live_feeds: tuple[_LiveFeed, _LiveFeed] | None = None

    @property
    def output_total(self) -> int:
        return self.stdout.total + self.stderr.total


class _LiveFeed:
    """One pipe's output of the open run, decoded as it arrives, for a LiveOutput.

    It sees the raw chunks, not the run's capture: DelimitedStream holds back as many bytes
    as the end marker is long in case they start it, which would keep a short line ("epoch
    3") from the watcher until more output came. Here only bytes that really could begin
    the marker (from a NUL on: it starts with one) wait for the next chunk."""

    __slots__ = ("decoder", "done", "live", "marker", "pending", "stream")

    def __init__(self, live: LiveOutput, stream: str, marker: bytes) -> None:
        self.live = live
        self.stream = stream
        self.marker = marker
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = b""
        self.done = False

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        if self.pending:
            data, self.pending = self.pending + data, b""
        found = data.find(self.marker)
        if found >= 0:
            self.done = True
            data = data[:found]
        else:
            # A marker split across chunks: keep its possible start for the next one.
            nul = data.find(b"\x00", max(0, len(data) - len(self.marker) + 1))
            while nul >= 0 and not self.marker.startswith(data[nul:]):
                nul = data.find(b"\x00", nul + 1)
            if nul >= 0:
                data, self.pending = data[:nul], data[nul:]
        text = self.decoder.decode(data, final=self.done)
        if text:
            self.live.feed(self.stream, text)

    def finish(self) -> None:
        """The run ended without its marker (killed, pipe closed): show what was held."""
        if not self.done:
            self.done = True
            text = self.decoder.decode(self.pending, final=True)
            self.pending = b""
            if text:
                self.live.feed(self.stream, text)


class _OutputPipe(asyncio.Protocol):
    """Feeds a worker's stdout or stderr to it as soon as the loop reads it."""

    def __init__(self, worker: _Worker, index: int) -> None:
        self.worker = worker
        self.index = index

    def data_received(self, data: bytes) -> None:
        self.worker.on_output(self.index, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.on_output_closed(self.index)


async def _read_pipe(fd: int, protocol: asyncio.BaseProtocol) -> asyncio.ReadTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(lambda: protocol, os.fdopen(fd, "rb", buffering=0))
    return transport


class _Worker:
    """One worker process: its pipes, the run it is doing, and how it ended."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        config: _StartConfig,
        guard: ProcessGuard,
        box: Box,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.process = process
        self.pid = process.pid
        self.config = config
        self.guard = guard
        self.box = box
        self.sandbox: dict[str, Any] | None = None  # what the launcher applied
        self._sandbox_report: dict[str, Any] | None = None
        self.streams = (DelimitedStream(), DelimitedStream())
        self.output_closed = (loop.create_future(), loop.create_future())
        self.run_state: _RunState | None = None
        self.results = asyncio.StreamReader(limit=config.reply_cap)
        self.transports: list[asyncio.BaseTransport] = []
        self.requests: asyncio.WriteTransport | None = None
        self.killed_for: str | None = None  # why the server killed it on purpose
        self.runs = 0
        # The text each path's runs last sent: the worker keeps it, so an unchanged document
        # (a 10,000-line file, run cell after cell) is not sent and decoded again.
        self.documents: dict[str, str] = {}
        self.exited: asyncio.Future[int] = asyncio.ensure_future(process.wait())
        self.ready: asyncio.Future[bool] | None = None

    @classmethod
    async def start(cls, config: _StartConfig) -> _Worker:
        """Start the process and send it its limits; `ready` tells when it can run code.

        Raises OSError when the interpreter cannot be started at all.
        """
        box = config.box
        guard = box.guard()
        request_read, request_write = os.pipe()
        result_read, result_write = os.pipe()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        child_ends = (request_read, result_write, out_write, err_write)
        program = [
            config.python,
            "-c",
            WORKER_BOOTSTRAP,
            str(WORKER),
            "--request-fd",
            str(request_read),
            "--result-fd",
            str(result_write),
            "--parent-pid",
            str(os.getpid()),
        ]
        if guard.tracks_tree:
            # Without a cgroup the worker, a subreaper (set by the launcher), kills what
            # its runs left behind when it exits; the box itself is already in place.
            program += ["--sandbox", json.dumps({"subreaper": True})]
        try:
            process = await launch(
                box,
                guard,
                program,
                report_fd=result_write,
                form="json",
                cwd=config.cwd,
                env=dict(config.env),
                pass_fds=(request_read, result_write),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
            )
        except BaseException:
            for fd in (request_write, result_read, out_read, err_read):
                os.close(fd)
            await guard.release(0)
            raise
        finally:
            for fd in child_ends:
                os.close(fd)
        worker = cls(process, config, guard, box)
        adopted = asyncio.ensure_future(guard.adopt(process.pid))
        try:
            await worker._connect(request_write, result_read, out_read, err_read)
            await adopted  # before the first request: no user code outside the cgroup
        except BaseException:
            adopted.cancel()
            worker.kill("failed to start")
            await guard.release(process.pid)
            raise
        worker.send(config.start_message())
        worker.ready = asyncio.ensure_future(worker._read_ready())
        return worker

    async def _connect(self, request_write: int, result_read: int, out: int, err: int) -> None:
        loop = asyncio.get_running_loop()
        self.transports.append(await _read_pipe(out, _OutputPipe(self, 0)))
        self.transports.append(await _read_pipe(err, _OutputPipe(self, 1)))
        self.transports.append(
            await _read_pipe(result_read, asyncio.StreamReaderProtocol(self.results))
        )
        self.requests, _ = await loop.connect_write_pipe(
            asyncio.Protocol, os.fdopen(request_write, "wb", buffering=0)
        )
        self.transports.append(self.requests)

    @property
    def alive(self) -> bool:
        return self.killed_for is None and not self.exited.done()

    # --- talking to the worker ---------------------------------------------------------

    def document_fields(self, path: str, document: str) -> dict[str, Any]:
        """The run message's document: the text, or that the worker has it already."""
        sent = self.documents.get(path)
        if sent is not None and (sent is document or sent == document):
            return {"document_cached": True}
        self.documents[path] = document
        return {"document": document}

    def send(self, message: dict[str, Any]) -> None:
        if self.requests is not None and not self.requests.is_closing():
            self.requests.write(json.dumps(message).encode("utf-8") + b"\n")

    async def read_message(self) -> dict[str, Any] | None:
        """The next message, or None once the worker can say nothing more."""
        try:
            line = await self.results.readline()
        except ValueError:
            # Longer than the bound: the reply is the run's to write, our memory is not.
            self.kill(REPLY_TOO_LARGE)
            return None
        if not line.endswith(b"\n"):
            return None
        try:
            message = json.loads(line)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    def sandbox_report(self) -> dict[str, Any]:
        """What confines this worker (and so each of its runs); it is fixed at start."""
        if self._sandbox_report is None:
            self._sandbox_report = self.box.report(self.guard, self.sandbox).to_json()
        return self._sandbox_report

    async def _read_ready(self) -> bool:
        # The first line is the launcher's, written before the user's interpreter started:
        # the only report of the box that is trusted ("sandbox" in `ready` is ignored).
        first = await self.read_message()
        if first and isinstance(first.get("sandbox"), dict):
            self.sandbox = first["sandbox"]
        message = await self.read_message()
        return bool(message and message.get("ready"))

    # --- output ------------------------------------------------------------------------

    def begin_run(self, run: _RunState, marker: bytes) -> None:
        self.run_state = run
        if run.live is not None:
            run.live_feeds = (
                _LiveFeed(run.live, "stdout", marker),
                _LiveFeed(run.live, "stderr", marker),
            )
        for index, capture in enumerate((run.stdout, run.stderr)):
            self.streams[index].begin(marker, capture)
            if self.streams[index].closed:
                run.ended[index].set()

    def end_run(self) -> None:
        run, self.run_state = self.run_state, None
        if run is not None and run.live_feeds is not None:
            for feed in run.live_feeds:
                feed.finish()
        for stream in self.streams:
            stream.abandon()

    def on_output(self, index: int, data: bytes) -> None:
        run = self.run_state
        completed = self.streams[index].feed(data)
        if run is None:
            return
        if run.live_feeds is not None:
            run.live_feeds[index].feed(data)
        if completed:
            run.ended[index].set()
        if run.output_total > run.limits.output_hard_cap:
            run.overflow.set()

    def on_output_closed(self, index: int) -> None:
        self.streams[index].close()
        if self.run_state is not None:
            self.run_state.ended[index].set()
        if not self.output_closed[index].done():
            self.output_closed[index].set_result(None)

    # --- ending ------------------------------------------------------------------------

    def kill(self, reason: str) -> None:
        if self.killed_for is None and not self.exited.done():
            self.killed_for = reason
        # The guard first: without a cgroup, orphans are found in the worker's process
        # tree, which only holds them while the worker lives.
        self.guard.kill_now(self.pid)
        kill_group(self.pid)

    async def drain(self) -> None:
        """Wait until the output pipes are closed, or give up on them."""
        await asyncio.wait(set(self.output_closed), timeout=DRAIN_GRACE_S)

    async def stop(self, reason: str) -> None:
        self.kill(reason)
        await asyncio.wait({self.exited}, timeout=DRAIN_GRACE_S)
        # Everything the worker's runs started, even after setsid(), goes with it.
        await self.guard.release(self.pid)
        await self.drain()
        for transport in self.transports:
            transport.close()
        if self.ready is not None:
            self.ready.cancel()

    def describe_end(self) -> str:
        code = self.process.returncode
        if code is None:
            return "it stopped answering"
        if code < 0:
            return f"it died from {signal_name(-code)}"
        return f"it exited with status {code}"


async def _first(
    waitables: set[asyncio.Future[Any]], timeout: float | None
) -> set[asyncio.Future[Any]]:
    done: set[asyncio.Future[Any]]
    done, _ = await asyncio.wait(waitables, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    return done


async def _all_set(events: Sequence[asyncio.Event], timeout: float) -> None:
    if all(event.is_set() for event in events):
        return
    waiters = {asyncio.ensure_future(event.wait()) for event in events}
    try:
        await asyncio.wait(waiters, timeout=timeout)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _acquire(lock: asyncio.Lock, cancel: asyncio.Event | None) -> bool:
    """Take our place in the session's queue; False if cancelled while waiting."""
    if cancel is None:
        cancel = asyncio.Event()
    if cancel.is_set():
        return False
    acquiring = asyncio.ensure_future(lock.acquire())
    cancelled = asyncio.ensure_future(cancel.wait())
    try:
        await _first({acquiring, cancelled}, None)
    except asyncio.CancelledError:
        if acquiring.done() and not acquiring.cancelled():
            lock.release()
        else:
            acquiring.cancel()
        raise
    finally:
        cancelled.cancel()
    if acquiring.done():
        return True
    acquiring.cancel()
    try:
        await acquiring
    except asyncio.CancelledError:
        return False
    lock.release()  # it was granted just as we gave up
    return False


HUNG_INSPECTION_S = 10.0  # past the asker's timeout; then the worker is replaced. Long enough
# that a loaded machine never costs the user their state: the alarm already ended Python code.


def _is_ready(worker: _Worker) -> bool:
    ready = worker.ready
    if ready is None or not ready.done() or ready.cancelled() or ready.exception() is not None:
        return False
    return bool(ready.result())


async def _inspect_reply(worker: _Worker, inspection: int) -> dict[str, Any] | None:
    """The worker's answer to inspect request `inspection`; None if the worker is gone."""
    while True:
        message = await worker.read_message()
        if message is None or message.get("inspected") == inspection:
            return message


class _Session(RunQueue):
    """The worker for one (interpreter, cwd), replaced when it dies or its settings change."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()  # one run at a time, in order
        self.spawn_lock = asyncio.Lock()  # restart() replaces workers outside `lock`
        self.worker: _Worker | None = None
        self.config: _StartConfig | None = None
        self.note = ""  # told with the next run: why earlier state is gone
        self.closed = False  # runs still queued when the executor closed must not restart it
        self.wanted_python: str | None = None  # the workspace's, once it differs from ours
        self.cleanups: set[asyncio.Future[None]] = set()
        self.inspections = 0  # ids of inspect requests (answers carry them back)
        self.inspecting = False  # `lock` is held by a question, not a run
        super().__init__()  # RunQueue: what runs queued for `lock` are told

    idle = "the session to start"

    def busy_with(self) -> str | None:
        return "a look at the session's variables" if self.inspecting else None

    @property
    def unused(self) -> bool:
        """No run has used the current worker: replacing it loses nothing of the user's."""
        return self.worker is None or self.worker.runs == 0

    async def ensure_worker(self, config: _StartConfig | None = None) -> _Worker:
        async with self.spawn_lock:
            config = config or self.config
            assert config is not None
            old = self.worker
            if old is not None:
                if old.alive and old.config == config:
                    return old
                if old.alive and old.runs:
                    self.note = (
                        "New session: memoryMb, maxFileMb, maxOpenFiles, network or the "
                        "environment changed, and they apply when a session starts, so "
                        f"{STATE_LOST}."
                    )
                elif not old.alive and old.killed_for is None and not self.note:
                    # It died while idle (one that never ran anything is just replaced).
                    ended = old.describe_end()
                    self.note = f"New session: the previous one ended ({ended}), so {STATE_LOST}."
                await old.stop("replaced")
                self.worker = None
            self.config = config
            self.worker = await _Worker.start(config)
            return self.worker

    async def wait_ready(self, worker: _Worker, cancel: asyncio.Event | None) -> bool:
        assert worker.ready is not None
        waiting: set[asyncio.Future[Any]] = {worker.ready}
        cancelled = asyncio.ensure_future(cancel.wait()) if cancel else None
        if cancelled is not None:
            waiting.add(cancelled)
        try:
            await _first(waiting, START_TIMEOUT_S)
        finally:
            if cancelled is not None:
                cancelled.cancel()
        return worker.ready.done() and not worker.ready.cancelled() and worker.ready.result()

    async def discard(self, worker: _Worker, reason: str) -> None:
        await worker.stop(reason)
        if self.worker is worker:
            self.worker = None

    async def replace_lost(self, worker: _Worker, note: str) -> None:
        """A worker died or was killed mid-run: say so next time, and start its successor
        now so the next run does not wait for it."""
        await worker.stop("lost")
        if self.worker is not worker:
            return  # restart() or close() already dealt with it
        self.worker = None
        self.note = note
        with contextlib.suppress(OSError):
            await self.ensure_worker()

    # --- looking at variables between runs ----------------------------------------------

    async def inspect(self, message: dict[str, Any], timeout: float) -> InspectAnswer:
        """Ask the worker about its variables (worker.py's `inspect` op), between runs.

        Never waits behind a run: a session that is running (or has runs queued) answers
        "busy" at once. The lock is held while the worker answers, so a run that arrives
        meanwhile waits for the answer and never reads it as its own result. If the
        answer does not come within `timeout` (or the asker gives up), the caller is told
        "timeout" at once, and the lock stays held in the background until the worker
        answers, or is replaced once HUNG_INSPECTION_S has passed (C code the worker's
        alarm could not interrupt): then, as for a hung run, the state is lost and the
        next run says so."""
        worker = self.worker
        if worker is None or not worker.alive or not _is_ready(worker):
            return InspectAnswer("none")
        if self.lock.locked() or has_waiters(self.lock):
            return InspectAnswer("busy")
        await self.lock.acquire()  # free and nobody waiting, so taken at once
        self.inspecting = True
        self.inspections += 1
        inspection = self.inspections
        worker.send({**message, "op": "inspect", "id": inspection})
        reply = asyncio.ensure_future(_inspect_reply(worker, inspection))
        try:
            await asyncio.wait({reply}, timeout=timeout)
        except asyncio.CancelledError:
            self._hold_until_answered(worker, reply)
            raise
        if not reply.done():
            self._hold_until_answered(worker, reply)
            return InspectAnswer("timeout")
        self.inspecting = False
        self.lock.release()
        answer = reply.result()
        return InspectAnswer("none") if answer is None else InspectAnswer("ok", answer)

    def _hold_until_answered(
        self, worker: _Worker, reply: asyncio.Future[dict[str, Any] | None]
    ) -> None:
        async def hold() -> None:
            try:
                await asyncio.wait({reply}, timeout=HUNG_INSPECTION_S)
                if not reply.done() and worker.alive:
                    reply.cancel()
                    worker.kill("inspection")
                    await self.replace_lost(
                        worker,
                        "New session: showing a variable's value hung (its __repr__, "
                        f"__len__ or a property did not return), so {STATE_LOST}.",
                    )
            finally:
                self.inspecting = False
                self.lock.release()

        task = asyncio.ensure_future(hold())
        self.cleanups.add(task)  # a task nobody holds may be collected mid-way
        task.add_done_callback(self.cleanups.discard)

    # --- one run -----------------------------------------------------------------------

    async def run(
        self, request: RunRequest, cancel: asyncio.Event | None, started: float
    ) -> RunResult:
        config = _StartConfig.of(
            request.python,
            request.cwd,
            request.env,
            request.limits,
            request.sys_path,
            request.network_allowed,
            request.sandbox,
        )
        note = ""
        if self.config is not None and self.config.python != request.python:
            # Resolved once per session: a new interpreter in the workspace (perhaps one
            # that a run planted) is only used once the user restarts the session.
            self.wanted_python = request.python
            note = (
                f"This session still runs {self.config.python}; the workspace's interpreter "
                f"is now {request.python}. Restart the session (codeexec.restart) to use it."
            )
            config = replace(config, python=self.config.python)
        try:
            worker = await self.ensure_worker(config)
        except OSError as exc:
            return could_not_start(request, NAME, exc, started)
        if not await self.wait_ready(worker, cancel):
            if cancel is not None and cancel.is_set() and worker.alive:
                return _cancelled(request, started)
            if worker.killed_for in ("restart", "close"):
                # Restarted or closed while it was starting: nothing failed.
                stopped_by = "restarted" if worker.killed_for == "restart" else "closed"
                return _cancelled(request, started, f"Cancelled: the session was {stopped_by}.")
            assert worker.ready is not None
            timed_out = not worker.ready.done()  # else its result pipe closed: it exited
            await self.discard(worker, "failed to start")
            if timed_out:
                message = (
                    f"The interpreter {request.python} did not start a session within "
                    f"{START_TIMEOUT_S:g} s."
                )
            else:
                stderr = worker.streams[1].idle.text()
                message = start_failure_message(request.python, worker.process.returncode, stderr)
            return internal_result(request, NAME, message, started)
        if cancel is not None and cancel.is_set():
            return _cancelled(request, started)
        note, self.note = " ".join(part for part in (self.note, note) if part), ""
        try:
            return await self._run_on(worker, request, cancel, started, note)
        except asyncio.CancelledError:
            # Nobody is left to wait for an interrupt to work: kill now, say so next time.
            worker.kill("abandoned")
            cleanup = asyncio.ensure_future(worker.stop("abandoned"))
            self.cleanups.add(cleanup)  # a task nobody holds may be collected mid-way
            cleanup.add_done_callback(self.cleanups.discard)
            if self.worker is worker:
                self.worker = None
                self.note = f"New session: an earlier run was abandoned, so {STATE_LOST}."
            raise

    async def _run_on(
        self,
        worker: _Worker,
        request: RunRequest,
        cancel: asyncio.Event | None,
        started: float,
        note: str,
    ) -> RunResult:
        limits = request.limits
        run = _RunState(
            limits,
            BoundedCapture(limits.max_output_bytes),
            BoundedCapture(limits.max_output_bytes),
            live=request.live,
        )
        worker.runs += 1
        run_id = worker.runs
        limit_hits = worker.guard.limit_events()
        memory_kills = worker.guard.memory_events()
        marker = f"\x00codeexec-end:{secrets.token_hex(16)}\x00"
        worker.begin_run(run, marker.encode("ascii"))
        worker.send(
            {
                "op": "run",
                "id": run_id,
                "marker": marker,
                "code": request.snippet.code,
                "path": request.snippet.path,
                **worker.document_fields(request.snippet.path, request.snippet.document),
                "first_line": request.snippet.first_line + 1,
                "column": request.snippet.column,
                "sys_path": list(request.sys_path),
                "cpu_seconds": limits.cpu_seconds,
            }
        )
        try:
            reported, reason = await self._supervise(worker, run, cancel, limits.timeout_s)
            if reported is not None and reported.get("id") != run_id:
                worker.kill("protocol")
                reported = None
            if reported is not None:
                await _all_set(run.ended, MARKER_GRACE_S)
            else:
                # The result pipe closed: the worker is exiting; let it, for its status.
                await asyncio.wait({worker.exited}, timeout=DRAIN_GRACE_S)
                kill_group(worker.pid)  # whatever the run started goes with it
                await worker.guard.kill(worker.pid)
                await worker.drain()
            limit_hits = worker.guard.limit_events() - limit_hits
            memory_kills = worker.guard.memory_events() - memory_kills
            if not worker.guard.counts_refusals and reported is not None:
                limit_hits += looks_like_refused_fork(error_from_json(reported.get("error")))
            if limit_hits and worker.alive:
                # The run's processes go; the worker and its state stay.
                await worker.guard.kill(worker.pid, keep_root=True)
                worker.send({"op": "reap"})
        finally:
            worker.end_run()
        return await self._result(
            worker,
            request,
            reported,
            reason,
            run,
            started,
            note,
            run_id,
            (limit_hits > 0, memory_kills > 0),
        )

    async def _supervise(
        self,
        worker: _Worker,
        run: _RunState,
        cancel: asyncio.Event | None,
        timeout: float,
    ) -> tuple[dict[str, Any] | None, StopReason | None]:
        """Wait for the result, stopping the run on timeout, cancel or too much output."""
        started = asyncio.Event()
        result_task = asyncio.ensure_future(_run_messages(worker, started))
        overflow = asyncio.ensure_future(run.overflow.wait())
        cancelled = asyncio.ensure_future(cancel.wait()) if cancel else None
        too_many = worker.guard.watcher(worker.pid)
        flushing = asyncio.ensure_future(_ask_for_flushes(worker, started))
        watched: set[asyncio.Future[Any]] = {result_task, worker.exited, overflow}
        for optional in (cancelled, too_many):
            if optional is not None:
                watched.add(optional)
        try:
            done = await _first(watched, timeout)
            reason: StopReason | None
            if cancelled is not None and cancelled in done:
                reason = "cancelled"
            elif too_many is not None and too_many in done:
                # Only the supervisor fallback gets here: it cannot stop a runaway tree
                # and keep its root working, so the whole session goes.
                reason = "processes"
                worker.kill(reason)
            elif overflow in done:
                reason = "output"
            elif not done:
                reason = "timeout"
            else:
                reason = None
            if reason is not None and not result_task.done() and worker.alive:
                await self._interrupt(worker, started, result_task, INTERRUPT_GRACE_S[reason])
                if not result_task.done():
                    worker.kill(reason)
            if not result_task.done():
                # The worker is gone; its result pipe reports end of file at once.
                await asyncio.wait({result_task}, timeout=DRAIN_GRACE_S)
            reported = result_task.result() if result_task.done() else None
            return reported, reason
        finally:
            for task in (overflow, cancelled, result_task, too_many, flushing):
                if task is not None and not task.done():
                    task.cancel()

    async def _interrupt(
        self,
        worker: _Worker,
        started: asyncio.Event,
        result_task: asyncio.Future[dict[str, Any] | None],
        grace: float,
    ) -> None:
        """Ctrl-C: the code gets a KeyboardInterrupt where it is, and reports it."""
        until_started = asyncio.ensure_future(started.wait())
        try:
            await _first({until_started, result_task, worker.exited}, grace)
        finally:
            until_started.cancel()
        if not started.is_set() or result_task.done() or worker.exited.done():
            return
        kill_group(worker.pid, signal.SIGINT)
        await _first({result_task, worker.exited}, grace)
        if not result_task.done() and not worker.exited.done():
            await asyncio.wait({result_task}, timeout=LATE_REPORT_S)

    async def _result(
        self,
        worker: _Worker,
        request: RunRequest,
        reported: dict[str, Any] | None,
        reason: StopReason | None,
        run: _RunState,
        started: float,
        note: str,
        run_id: int,
        over: tuple[bool, bool],
    ) -> RunResult:
        over_limit, over_memory = over
        lost = ""
        classified: tuple[Status, ErrorInfo | None, str]
        if reported is None and worker.killed_for in ("restart", "close"):
            stopped_by = "restarted" if worker.killed_for == "restart" else "closed"
            classified = ("cancelled", None, f"Cancelled: the session was {stopped_by}.")
        elif reported is None and worker.killed_for == REPLY_TOO_LARGE:
            message = (
                f"Stopped: the code sent more than {worker.config.reply_cap:,} bytes of result "
                "(10 × codeexec.maxOutputBytes), so the session was killed: "
                f"{STATE_LOST}. Print less, or raise maxOutputBytes."
            )
            classified = ("limit", None, message)
            await self.replace_lost(
                worker, f"New session: the previous one sent too large a result, so {STATE_LOST}."
            )
        else:
            returncode = worker.process.returncode if reported is None else None
            classified = classify(request.limits, returncode, reported, reason)
            if reported is None:
                if reason == "processes":
                    lost = f"The session was killed to stop them: {STATE_LOST}."
                    next_note = "New session: the previous one was killed by the process limit"
                elif reason is not None:
                    lost = (
                        "The code did not stop cleanly when interrupted, so the session was "
                        f"killed and restarted: {STATE_LOST}."
                    )
                    next_note = "New session: the previous one was killed after an interrupt"
                else:
                    lost = (
                        f"The session's process ended, so {STATE_LOST}; "
                        "the next run starts a new session."
                    )
                    next_note = f"New session: the previous one ended ({worker.describe_end()})"
                await self.replace_lost(worker, f"{next_note}, so {STATE_LOST}.")
        if over_limit and reason != "processes":
            kept = "" if lost else "; the session's state was kept"
            classified = over_process_limit(classified, request.limits, kept)
        if over_memory and classified[0] != "ok":
            classified = ("limit", classified[1], memory_limit_message(request.limits))
        status, error, message = classified
        message = " ".join(part for part in (note, message, lost) if part)
        return build_result(
            request,
            NAME,
            (status, error, message),
            reported,
            run.stdout,
            run.stderr,
            started,
            extra={
                "session": {"pid": worker.pid, "run": run_id, "state_lost": bool(lost)},
                "sandbox": worker.sandbox_report(),
            },
        )


async def _ask_for_flushes(worker: _Worker, started: asyncio.Event) -> None:
    """While the run's code goes, ask its worker every FLUSH_INTERVAL_S for what it has
    printed (worker.py flushes on FLUSH_SIGNAL): a line a second shows up within a second."""
    await started.wait()
    while worker.alive:
        await asyncio.sleep(FLUSH_INTERVAL_S)
        if worker.alive:
            with contextlib.suppress(OSError):
                os.kill(worker.pid, FLUSH_SIGNAL)


async def _run_messages(worker: _Worker, started: asyncio.Event) -> dict[str, Any] | None:
    while True:
        message = await worker.read_message()
        if message is None or "started" not in message:
            return message
        started.set()


def _cancelled(
    request: RunRequest, started: float, message: str = "Cancelled before it started."
) -> RunResult:
    empty = BoundedCapture(0)
    return build_result(
        request,
        NAME,
        ("cancelled", None, message),
        None,
        empty,
        empty,
        started,
    )


class SessionExecutor:
    """Runs requests in persistent workers, one per (interpreter, working directory)."""

    name = NAME

    def __init__(self) -> None:
        self._sessions: dict[SessionKey, _Session] = {}

    def _session(self, key: SessionKey) -> _Session:
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = _Session()
        return session

    async def run(self, request: RunRequest, cancel: asyncio.Event | None = None) -> RunResult:
        started = time.perf_counter()
        session = self._session((request.cwd, request.sandbox))
        acquired = await session.wait_turn(
            session.lock.locked(), request, lambda: _acquire(session.lock, cancel)
        )
        if not acquired:
            return _cancelled(request, started)
        session.running = request.snippet
        session.tell_queued()
        try:
            if session.closed:
                return _cancelled(request, started, "Cancelled: the session was closed.")
            return await session.run(request, cancel, started)
        finally:
            session.running = None
            session.lock.release()

    async def warm_for(self, request: RunRequest) -> bool:
        """warm() for the worker a run of `request` would use (the server's warm-up at
        `initialize`/`initialized`, and the early start before it: early_session.py)."""
        return await self.warm(
            request.python,
            request.cwd,
            request.env,
            request.limits,
            request.sys_path,
            network=request.network,
            profile=request.sandbox,
        )

    async def warm(
        self,
        python: str,
        cwd: str,
        env: Mapping[str, str],
        limits: Limits | None = None,
        sys_path: Sequence[str] = (),
        network: bool | None = None,
        profile: Profile = "standard",
    ) -> bool:
        """Start the worker that a request with these fields would use, so the first run
        does not wait for an interpreter to start. False if it could not start (the next
        run reports why). Pass the fields of the RunRequest that build_request makes: a
        run whose env or limits differ would need a new worker."""
        allowed = network if network is not None else profile == "standard"
        config = _StartConfig.of(python, cwd, env, limits or Limits(), sys_path, allowed, profile)
        session = self._session(config.key)
        async with session.lock:
            if session.config is not None and session.config.python != python:
                if not session.unused:
                    # Its state is the user's: a new interpreter waits for a restart.
                    return session.worker is not None and session.worker.alive
                # Started early for settings that the client's configuration then changed.
                session.wanted_python = None
            try:
                worker = await session.ensure_worker(config)
            except OSError:
                return False
            if await session.wait_ready(worker, None):
                return True
            await session.discard(worker, "failed to start")
            return False

    async def stop_if_unused(self, cwd: str, profile: Profile = "standard") -> bool:
        """Stop the worker for (cwd, profile) if no run ever used it and none waits for it
        (one started early for settings the client's configuration then changed)."""
        session = self._sessions.get((cwd, profile))
        if session is None or session.worker is None or not session.unused:
            return False
        if session.lock.locked():
            return False
        worker, session.worker = session.worker, None
        await worker.stop("replaced")
        return True

    async def restart(self, python: str | None = None, cwd: str | None = None) -> int:
        """Clear the state of the sessions for `python` and `cwd` (None: any) by replacing
        their workers with fresh ones. A run in progress there ends as cancelled; queued
        runs go to the new worker. Returns how many sessions were restarted."""
        chosen = [
            session
            for (session_cwd, _), session in self._sessions.items()
            if session.config is not None
            and python in (None, session.config.python, session.wanted_python)
            and cwd in (None, session_cwd)
        ]
        for session in chosen:
            old, session.worker = session.worker, None
            session.note = ""
            if session.wanted_python and session.config is not None:
                # A restart is how the user takes up the workspace's new interpreter.
                session.config = replace(session.config, python=session.wanted_python)
                session.wanted_python = None
            if old is not None:
                await old.stop("restart")
            with contextlib.suppress(OSError):
                worker = await session.ensure_worker()
                await session.wait_ready(worker, None)
        return len(chosen)

    async def inspect(
        self, request: RunRequest, message: dict[str, Any], timeout: float
    ) -> InspectAnswer:
        """Ask the session a run of `request` would use about its variables (see
        _Session.inspect); "none" when there is no session there. Never starts a worker."""
        session = self._sessions.get((request.cwd, request.sandbox))
        if session is None or session.closed:
            return InspectAnswer("none")
        return await session.inspect(message, timeout)

    def pids(self) -> dict[SessionKey, int]:
        """The live workers' process ids by (cwd, profile) (for doctor output and tests)."""
        return {
            key: session.worker.pid
            for key, session in self._sessions.items()
            if session.worker is not None and session.worker.alive
        }

    async def close(self) -> None:
        """Stop every worker and whatever its runs started in its process group."""
        sessions, self._sessions = list(self._sessions.values()), {}
        workers = [session.worker for session in sessions if session.worker is not None]
        for session in sessions:
            session.closed = True
            session.worker = None
        await asyncio.gather(*(worker.stop("close") for worker in workers))
