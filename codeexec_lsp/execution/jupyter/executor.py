"""The `jupyter` executor: runs selections in a Jupyter kernel, local or remote, ours or
attached, with the same RunResult as every other executor.

This module is the lifecycle policy; it imports no third-party package, so choosing the
executor without the `jupyter` extra gives one clear line instead of an ImportError.
Launching and the wire live elsewhere (local.py, remote.py, protocol.py, helper.py).

Policy, written down:
- One kernel per (working directory, interpreter, kernelspec, sandbox profile) locally;
  one per executor for a server URL or an attached kernel. Runs on a kernel are queued.
- The helper (helper.py) is installed with one silent execute after every start or
  restart; a kernel that lost it behind our back (a notebook's Restart) gets it again.
- timeout / cancel / too much output: interrupt (state kept). No reply within a grace:
  the kernel is restarted and the result says its state was lost.
- A kernel that dies mid-run (the process ends; or, on a server, an unparented
  `status: restarting`) is reported as state lost; the next run gets a fresh kernel.
- Kernels we started are shut down at close; attached ones never (Restart aside).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import time
from dataclasses import dataclass, field
from typing import Any

from codeexec_lsp.execution import inspector
from codeexec_lsp.execution.base import InspectAnswer, RunRequest, has_waiters
from codeexec_lsp.execution.capture import BoundedCapture
from codeexec_lsp.execution.jupyter import helper
from codeexec_lsp.execution.jupyter.connection import KernelConnection, KernelUnavailable
from codeexec_lsp.execution.jupyter.protocol import (
    KernelState,
    RunCollector,
    execute_content,
    msg_type,
    unparented_status,
)
from codeexec_lsp.execution.live import LiveOutput, RunQueue
from codeexec_lsp.execution.outcome import build_result, classify, internal_result
from codeexec_lsp.results import ErrorInfo, RunResult, Status

NAME = "jupyter"
EXTRA_HINT = "pip install 'codeexec-lsp[jupyter]'"
IDLE_AFTER_REPLY_S = 2.0  # the iopub `idle` normally follows the reply within milliseconds
INTERRUPT_GRACE_S = 3.0  # an interrupted kernel answers in ~20 ms; a stuck one never does
HELPER_TIMEOUT_S = 30.0
STATE_LOST = "its state (variables, imports) was lost"
DEFAULT_TOKEN_ENV = "JUPYTER_TOKEN"
# The strict box gives the kernel a private /tmp and no writes elsewhere, so the ipc
# sockets it binds are out of our reach (and TCP is out of its network namespace).
STRICT_UNSUPPORTED = (
    'The jupyter executor cannot start a local kernel in the "strict" sandbox (the box '
    'hides the kernel\'s sockets from the server): use sandbox "standard" for it, or the '
    "session executor for strict runs."
)
STILL_BUSY = (
    "An earlier run did not stop when interrupted and the attached kernel is not ours to "
    "restart: it may still be busy. Use Restart (codeexec.restart) to restart it."
)
PLAIN_KERNEL = (
    "This kernel is not IPython, so the error is given by name and message only, "
    "without its line in the file."
)

KernelKey = tuple[str, ...]


def missing_dependencies(remote: bool) -> str | None:
    """One line naming the extra to install, or None when everything is there."""
    needed = ["jupyter_client"] + (["httpx", "websockets"] if remote else [])
    missing = [name for name in needed if not _importable(name)]
    if not missing:
        return None
    return f"The jupyter executor needs {', '.join(missing)}: install it with `{EXTRA_HINT}`."


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: sys.modules[name] is None
        return False


@dataclass
class _Kernel(RunQueue):
    """One kernel slot: its connection, whether our helper is in it, and its queue."""

    connection: KernelConnection | None = None
    helper_installed: bool = False
    plain: bool = False  # not an IPython kernel: code runs as is, errors by name only
    note: str = ""  # said on the next run (e.g. that an earlier run lost the state)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    runs: int = 0

    idle = "the kernel to start"

    def __post_init__(self) -> None:
        RunQueue.__init__(self)  # what runs queued for `lock` are told


class JupyterExecutor:
    """The Executor protocol over Jupyter kernels.

    Exactly one of: nothing (a local kernel we launch: ipykernel on the run's interpreter,
    or the kernelspec `kernel`), `url` (a server: a new kernel of `kernel`, or the existing
    `kernel_id`), `connection_file` (a running local kernel).
    """

    name = NAME

    def __init__(
        self,
        *,
        kernel: str | None = None,
        url: str | None = None,
        token_env: str = DEFAULT_TOKEN_ENV,
        kernel_id: str | None = None,
        connection_file: str | None = None,
    ) -> None:
        self.kernel_name = kernel
        self.url = url
        self.token_env = token_env
        self.kernel_id = kernel_id
        self.connection_file = connection_file
        self._kernels: dict[KernelKey, _Kernel] = {}
        self._closed = False
        self._background: set[asyncio.Future[None]] = set()

    # --- which kernel ----------------------------------------------------------------------

    @property
    def _launches_kernels(self) -> bool:
        return not (self.url or self.connection_file)

    def _key(self, request: RunRequest) -> KernelKey:
        if not self._launches_kernels:
            return ("shared",)
        network = "network" if request.network_allowed else "offline"
        return (request.cwd, request.python, self.kernel_name or "", request.sandbox, network)

    def _connect(self, request: RunRequest) -> KernelConnection:
        if self.connection_file:
            from codeexec_lsp.execution.jupyter.local import AttachedKernel

            return AttachedKernel(self.connection_file)
        if self.url:
            from codeexec_lsp.execution.jupyter.remote import RemoteKernel

            remote: KernelConnection = RemoteKernel(
                self.url, self.token_env, kernel_name=self.kernel_name, kernel_id=self.kernel_id
            )
            return remote
        from codeexec_lsp.execution.jupyter.local import LaunchedKernel

        return LaunchedKernel(request, self.kernel_name)

    def connections(self) -> list[KernelConnection]:
        """The live kernel connections (for tests and `doctor`)."""
        return [slot.connection for slot in self._kernels.values() if slot.connection]

    async def _ready(self, slot: _Kernel, request: RunRequest) -> KernelConnection:
        """The slot's kernel, started (or reconnected) and with our helper in it."""
        connection = slot.connection
        if connection is None:
            connection = slot.connection = self._connect(request)
            await connection.start()
            slot.helper_installed = False
            return await self._with_helper(slot, connection)
        connection.drain()  # notices a death between runs
        if connection.died.is_set() or connection.state is KernelState.DEAD:
            if connection.state_lost and not slot.note:
                slot.note = (
                    f"New kernel: the previous one was lost ({connection.death}), so {STATE_LOST}."
                )
            await connection.recover()
            slot.helper_installed = False
        return await self._with_helper(slot, connection)

    async def _with_helper(self, slot: _Kernel, connection: KernelConnection) -> KernelConnection:
        if not slot.helper_installed:
            await self._prepare(slot, connection)
        return connection

    async def _prepare(self, slot: _Kernel, connection: KernelConnection) -> None:
        """Our helper into an IPython kernel; any other kernel runs the code as it is."""
        slot.plain = not await self._is_ipython(connection)
        if not slot.plain:
            await self._install_helper(connection)
        slot.helper_installed = True

    async def _is_ipython(self, connection: KernelConnection) -> bool:
        connection.drain()
        msg_id = await connection.send("kernel_info_request", {})
        collector = RunCollector(msg_id, 100_000)
        await self._settle(connection, collector, "answer kernel_info")
        implementation = (collector.reply or {}).get("implementation")
        return implementation == "ipython"

    async def _settle(
        self, connection: KernelConnection, collector: RunCollector, what: str
    ) -> None:
        """Wait for one of our own requests to be done; KernelUnavailable if it never is."""
        if await self._collect(connection, collector, HELPER_TIMEOUT_S, None) is not None:
            raise KernelUnavailable(f"the kernel did not {what} within {HELPER_TIMEOUT_S:g} s")
        if collector.reply is None:
            raise KernelUnavailable(f"the kernel died before it could {what} ({connection.death})")

    async def _install_helper(self, connection: KernelConnection) -> None:
        connection.drain()
        msg_id = await connection.send(
            "execute_request", execute_content(helper.install_cell(), silent=True)
        )
        collector = RunCollector(msg_id, 100_000)
        await self._settle(connection, collector, "take the codeexec helper")
        error = collector.error_from_kernel()
        if error is not None:
            raise KernelUnavailable(
                "this kernel cannot run the codeexec helper (is it an IPython kernel?): "
                f"{error['type']}: {error['message']}"
            )

    # --- one run ---------------------------------------------------------------------------

    async def run(self, request: RunRequest, cancel: asyncio.Event | None = None) -> RunResult:
        started = time.perf_counter()
        missing = missing_dependencies(remote=bool(self.url))
        if missing is not None:
            return internal_result(request, NAME, missing, started)
        if self._closed:
            return self._cancelled(request, started, "Cancelled: the executor was closed.")
        if request.sandbox == "strict" and self._launches_kernels:
            return internal_result(request, NAME, STRICT_UNSUPPORTED, started)
        slot = self._kernels.setdefault(self._key(request), _Kernel())
        acquired = await slot.wait_turn(
            slot.lock.locked(), request, lambda: _acquire(slot.lock, cancel)
        )
        if not acquired:
            return self._cancelled(request, started, "Cancelled before it started.")
        slot.running = request.snippet
        slot.tell_queued()
        try:
            try:
                connection = await self._ready(slot, request)
            except KernelUnavailable as exc:
                if slot.connection is not None and slot.connection.owned:
                    with contextlib.suppress(Exception):
                        await slot.connection.close()
                slot.connection = None
                return internal_result(request, NAME, str(exc), started)
            if cancel is not None and cancel.is_set():
                return self._cancelled(request, started, "Cancelled before it started.")
            result = await self._execute(slot, connection, request, cancel, started)
            if result is None:  # the helper was gone (restarted behind our back): once more
                slot.helper_installed = False
                await self._prepare(slot, connection)
                result = await self._execute(slot, connection, request, cancel, started)
            return result or internal_result(
                request, NAME, "the kernel keeps losing the codeexec helper", started
            )
        except KernelUnavailable as exc:
            return internal_result(request, NAME, str(exc), started)
        except asyncio.CancelledError:
            # Nobody waits for this run any more: stop the code, keep the kernel.
            if slot.connection is not None and slot.connection.state is KernelState.BUSY:
                stopping = asyncio.ensure_future(slot.connection.interrupt())
                self._background.add(stopping)
                stopping.add_done_callback(self._background.discard)
            raise
        finally:
            slot.running = None
            if slot.connection is not None:
                slot.connection.stop_listening()
            slot.lock.release()

    async def _execute(
        self,
        slot: _Kernel,
        connection: KernelConnection,
        request: RunRequest,
        cancel: asyncio.Event | None,
        started: float,
    ) -> RunResult | None:
        snippet = request.snippet
        limits = request.limits
        connection.drain()
        slot.runs += 1
        if slot.plain:
            msg_id = await connection.send("execute_request", execute_content(snippet.code))
        else:
            msg_id = await connection.send(
                "execute_request",
                execute_content(helper.run_cell(snippet.code)),
                metadata=helper.request_metadata(
                    snippet.code,
                    snippet.path,
                    snippet.document,
                    snippet.first_line + 1,
                    snippet.column,
                ),
            )
        connection.state = KernelState.BUSY
        collector = RunCollector(msg_id, limits.max_output_bytes)
        hard_cap = limits.output_hard_cap
        reason = await self._collect(
            connection, collector, limits.timeout_s, cancel, hard_cap, request.live
        )
        lost = ""
        if reason is not None and not connection.died.is_set():
            await connection.interrupt()
            await self._collect(connection, collector, INTERRUPT_GRACE_S, None, None, request.live)
            if collector.reply is None and not connection.died.is_set() and connection.owned:
                lost = (
                    f"The kernel did not stop when interrupted, so it was restarted: {STATE_LOST}."
                )
                await self._restart_lost(slot, connection)
            elif collector.reply is None and not connection.died.is_set():
                # Not ours to restart (a notebook's kernel) unless the user says Restart.
                slot.note = STILL_BUSY
        if connection.died.is_set() and not lost and not connection.state_lost:
            lost = (
                f"The run's end is unknown: {connection.death}. The next run reconnects "
                "to the kernel."
            )
        elif connection.died.is_set() and not lost:
            lost = f"The kernel died ({connection.death}), so {STATE_LOST}."
            if collector.report is None:
                # The next run starts (or reconnects to) a fresh kernel and reinstalls.
                slot.helper_installed = False
        if not lost and connection.state is not KernelState.DEAD:
            connection.state = KernelState.IDLE
        if (
            collector.report is None
            and not lost
            and reason is None
            and helper.helper_missing(collector.kernel_error)
        ):
            return None
        result = self._result(slot, connection, request, collector, reason, lost, started)
        if lost and connection.state_lost:
            slot.note = f"New kernel: the previous one was lost, so {STATE_LOST}."
        return result

    async def _collect(
        self,
        connection: KernelConnection,
        collector: RunCollector,
        timeout: float,
        cancel: asyncio.Event | None,
        output_cap: int | None = None,
        live: LiveOutput | None = None,
    ) -> str | None:
        """Feed the run's messages to `collector` (and to `live`, the run's watcher, as
        they come) until it is done; returns why it was stopped early ("timeout",
        "cancelled", "output") or None (done, or the kernel died).

        The reply can come before the last output, so `idle` is waited for too, but only
        for IDLE_AFTER_REPLY_S: a lost status (a server's iopub hiccup) must not turn a
        finished run into a timeout, and then into a restart."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        idle_by: float | None = None
        died = asyncio.ensure_future(connection.died.wait())
        cancelled = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
        try:
            while not collector.done:
                if died.done():
                    return None
                if cancelled is not None and cancelled.done():
                    return "cancelled"
                if collector.reply is not None and idle_by is None:
                    idle_by = loop.time() + IDLE_AFTER_REPLY_S
                if idle_by is not None and loop.time() >= idle_by:
                    return None
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return "timeout"
                if idle_by is not None:
                    remaining = min(remaining, idle_by - loop.time())
                try:
                    message = connection.messages.get_nowait()
                except asyncio.QueueEmpty:
                    getter = asyncio.ensure_future(connection.messages.get())
                    waiting = {getter, died} | ({cancelled} if cancelled else set())
                    await asyncio.wait(
                        waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                    if not getter.done():
                        getter.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await getter
                        continue
                    message = getter.result()
                status = unparented_status(message)
                if status is not None:
                    connection.mark_dead(f"the server reports the kernel {status}")
                    continue
                outputs_before = len(collector.outputs)
                if collector.feed(message) and live is not None:
                    _show_live(live, message, collector.outputs[outputs_before:])
                if output_cap is not None and collector.output_total > output_cap:
                    return "output"
            return None
        finally:
            died.cancel()
            if cancelled is not None:
                cancelled.cancel()

    async def _restart_lost(self, slot: _Kernel, connection: KernelConnection) -> None:
        slot.helper_installed = False
        try:
            await connection.restart()
        except KernelUnavailable as exc:
            slot.note = f"The kernel could not be restarted ({exc})."
            connection.mark_dead(str(exc))

    def _result(
        self,
        slot: _Kernel,
        connection: KernelConnection,
        request: RunRequest,
        collector: RunCollector,
        reason: str | None,
        lost: str,
        started: float,
    ) -> RunResult:
        reported = collector.report
        if reported is None and collector.reply is not None and not lost:
            # A kernel without our helper (not IPython): its own error, no file mapping.
            reported = {
                "value": collector.plain_value,
                "error": collector.error_from_kernel(),
                "duration_ms": (time.perf_counter() - started) * 1000,
            }
        classified: tuple[Status, ErrorInfo | None, str]
        if reported is None and reason is None and lost:
            classified = ("error", ErrorInfo(type="KernelDied", message=connection.death), "")
        else:
            classified = classify(request.limits, None, reported, reason)  # type: ignore[arg-type]
        status, error, message = classified
        note, slot.note = slot.note, ""
        plain = PLAIN_KERNEL if slot.plain and error is not None else ""
        message = " ".join(part for part in (note, message, lost, plain) if part)
        result = build_result(
            request,
            NAME,
            (status, error, message),
            reported,
            collector.stdout,
            collector.stderr,
            started,
            extra={
                "jupyter": {
                    "kernel": connection.description,
                    "state": connection.state.value,
                    "state_lost": bool(lost) and connection.state_lost,
                    "run": slot.runs,
                    **_identity(connection),
                },
                **_sandbox(connection),
            },
        )
        return _with_outputs(result, collector, bool(collector.truncated))

    @staticmethod
    def _cancelled(request: RunRequest, started: float, message: str) -> RunResult:
        empty = BoundedCapture(0)
        return build_result(
            request, NAME, ("cancelled", None, message), None, empty, empty, started
        )

    # --- lifecycle ---------------------------------------------------------------------------

    async def inspect(
        self, request: RunRequest, message: dict[str, Any], timeout: float
    ) -> InspectAnswer:
        """Between runs, what the kernel a run of `request` would use holds (hover,
        completion, codeexec.variables; called by actions/variables.py): one silent execute
        whose user_expression asks inspector.py's kernel half. "none" without a started
        IPython kernel (a question never starts one), "busy" while a run holds or waits for
        it, "timeout" when the kernel did not answer in time (then it is interrupted; its
        state is kept)."""
        slot = self._kernels.get(self._key(request))
        connection = slot.connection if slot is not None else None
        if slot is None or connection is None or slot.plain or not slot.helper_installed:
            return InspectAnswer("none")
        if slot.lock.locked() or has_waiters(slot.lock):
            return InspectAnswer("busy")
        async with slot.lock:
            connection.drain()
            if connection.died.is_set():
                return InspectAnswer("none")
            msg_id = await connection.send(
                "execute_request", inspector.kernel_execute_content({"id": 0, **message})
            )
            collector = RunCollector(msg_id, 1_000_000)
            try:
                reason = await self._collect(connection, collector, timeout, None)
                if reason is not None and not connection.died.is_set():
                    await connection.interrupt()  # a KeyboardInterrupt in our expression only
                    await self._collect(connection, collector, INTERRUPT_GRACE_S, None)
                    return InspectAnswer("timeout")
            finally:
                connection.stop_listening()
            if collector.reply is None:
                return InspectAnswer("none")
            return InspectAnswer("ok", inspector.answer_from_kernel(collector.reply, 0))

    async def warm(self, request: RunRequest) -> bool:
        """Start the kernel `request` would use (at `initialize`, like the session)."""
        if missing_dependencies(remote=bool(self.url)) is not None:
            return False
        if request.sandbox == "strict" and self._launches_kernels:
            return False
        slot = self._kernels.setdefault(self._key(request), _Kernel())
        async with slot.lock:
            try:
                await self._ready(slot, request)
            except KernelUnavailable:
                slot.connection = None
                return False
            finally:
                if slot.connection is not None:
                    slot.connection.stop_listening()
        return True

    async def restart(self) -> int:
        """Restart every kernel (Restart session): fresh state, our helper reinstalled.
        Attached kernels too: this is the one explicit action allowed to."""
        count = 0
        for slot in self._kernels.values():
            if slot.connection is None:
                continue
            async with slot.lock:
                slot.helper_installed = False
                try:
                    await slot.connection.restart()
                    await self._prepare(slot, slot.connection)
                    count += 1
                except KernelUnavailable as exc:
                    slot.note = f"The kernel could not be restarted ({exc})."
                finally:
                    slot.connection.stop_listening()
        return count

    async def close(self) -> None:
        self._closed = True
        slots, self._kernels = list(self._kernels.values()), {}
        for slot in slots:
            if slot.connection is not None:
                with contextlib.suppress(Exception):
                    await slot.connection.close()
                slot.connection = None


def _show_live(live: LiveOutput, message: dict[str, Any], new_outputs: list[Any]) -> None:
    """What one of the run's kernel messages shows its watcher: stream text as it is, and
    the rich outputs the collector kept from it (within its limits, helper reports not)."""
    if msg_type(message) == "stream":
        content = message.get("content") or {}
        stream = "stderr" if content.get("name") == "stderr" else "stdout"
        live.feed(stream, str(content.get("text", "")))
    for output in new_outputs:
        live.add_output(output)


def _sandbox(connection: KernelConnection) -> dict[str, Any]:
    report = getattr(connection, "sandbox_report", None)
    found = report() if callable(report) else None
    return {"sandbox": found} if isinstance(found, dict) else {}


def _identity(connection: KernelConnection) -> dict[str, Any]:
    pid = getattr(connection, "pid", None)
    kernel_id = getattr(connection, "kernel_id", None)
    found: dict[str, Any] = {}
    if pid is not None:
        found["pid"] = pid
    if kernel_id is not None:
        found["kernel_id"] = kernel_id
    return found


def _with_outputs(result: RunResult, collector: RunCollector, truncated: bool) -> RunResult:
    from dataclasses import replace

    return replace(result, outputs=tuple(collector.outputs), truncated=truncated)


async def _acquire(lock: asyncio.Lock, cancel: asyncio.Event | None) -> bool:
    if cancel is None:
        await lock.acquire()
        return True
    acquire = asyncio.ensure_future(lock.acquire())
    cancelled = asyncio.ensure_future(cancel.wait())
    await asyncio.wait({acquire, cancelled}, return_when=asyncio.FIRST_COMPLETED)
    cancelled.cancel()
    if acquire.done() and not acquire.cancelled():
        if cancel.is_set():
            lock.release()
            return False
        return True
    acquire.cancel()
    return False
