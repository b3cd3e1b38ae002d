"""A kernel on this machine over ZMQ with the `ipc` transport: one we launch, or one named
by a connection file (a notebook's running kernel).

Why we launch it ourselves instead of through jupyter_client's KernelManager: the kernel
runs user code, so it starts through our launcher (launcher.py) in the configured sandbox
profile, with the scrubbed environment and its own pids/memory cgroups, like a session
worker. jupyter_client still does what it is best at: the connection file, the signed
wire format and the channels (AsyncKernelClient). `ipc` means no TCP ports, no
unencrypted-TCP warning, and it works inside the launcher's network namespace.

Readiness is our own loop of `kernel_info_request`s (jupyter_client's `wait_for_ready`
polls only every 0.2 s). A kernel that dies is seen at once: we hold its process.
Interrupt is SIGINT to the kernel's process group (what jupyter_client does for local
kernels); for an attached kernel, an `interrupt_request` on the control channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import write_connection_file

from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.jupyter.connection import KernelConnection, KernelUnavailable
from codeexec_lsp.execution.jupyter.protocol import KernelState
from codeexec_lsp.execution.launcher import Box, launch
from codeexec_lsp.execution.outcome import kill_group

START_TIMEOUT_S = 60.0
READY_POLL_S = 0.05
READY_RESEND_S = 1.0
READY_SETTLE_S = 0.0
STOP_GRACE_S = 2.0
IPYKERNEL_MISSING = "No module named ipykernel"


def install_hint(python: str) -> str:
    return (
        f"The interpreter {python} has no ipykernel, which the jupyter executor needs: "
        f"run `{python} -m pip install ipykernel`."
    )


def kernel_argv(python: str, kernel_name: str | None, connection_file: str) -> list[str]:
    """The kernel's command: ipykernel on `python`, or the kernelspec `kernel_name`."""
    if kernel_name is None:
        return [python, "-m", "ipykernel_launcher", "-f", connection_file]
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel as exc:
        raise KernelUnavailable(
            f"No Jupyter kernelspec named {kernel_name!r} (the codeexec.jupyter.kernel "
            "setting); `jupyter kernelspec list` shows the installed ones."
        ) from exc
    return [part.replace("{connection_file}", connection_file) for part in spec.argv]


class _ZmqKernel(KernelConnection):
    """The channels of one kernel, pumped into `messages`."""

    def __init__(self) -> None:
        super().__init__()
        self.client: AsyncKernelClient | None = None
        self._pumps: list[asyncio.Task[None]] = []

    def _connect(self, info: Mapping[str, Any]) -> None:
        client = AsyncKernelClient()
        client.load_connection_info(dict(info))  # type: ignore[arg-type]
        client.start_channels(stdin=False, hb=False)
        self.client = client
        self._pumps = [
            asyncio.ensure_future(self._pump(channel))
            for channel in (client.iopub_channel, client.shell_channel, client.control_channel)
        ]

    async def _pump(self, channel: Any) -> None:
        while True:
            try:
                message = await channel.get_msg()
            except asyncio.CancelledError:
                raise
            except Exception:  # a message that does not verify or parse: not ours to keep
                if channel.socket is None or channel.socket.closed:
                    return
                continue
            self.deliver(message)

    async def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        metadata: dict[str, Any] | None = None,
    ) -> str:
        client = self.client
        if client is None:
            raise KernelUnavailable("the kernel is not connected")
        message = client.session.msg(msg_type, content, metadata=metadata)
        target = client.control_channel if channel == "control" else client.shell_channel
        target.send(message)
        return str(message["header"]["msg_id"])

    async def _wait_ready(self, timeout: float, died: asyncio.Future[Any] | None) -> None:
        """kernel_info until both its reply and the kernel's iopub status for it arrive
        (iopub is a subscription: output sent before it is connected is lost). A request
        is repeated only when unanswered for a while: requests queued before the kernel
        binds all arrive at once, and a flood of them has lost later replies."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.drain()
        while True:
            asked = await self.send("kernel_info_request", {})
            resend_at = loop.time() + READY_RESEND_S
            replied = iopub_seen = False
            while loop.time() < resend_at:
                if died is not None and died.done():
                    raise KernelUnavailable("the kernel exited while starting")
                if loop.time() > deadline:
                    raise KernelUnavailable(f"the kernel did not answer within {timeout:g} s")
                try:
                    message = await asyncio.wait_for(self.messages.get(), READY_POLL_S)
                except asyncio.TimeoutError:
                    continue
                if (message.get("parent_header") or {}).get("msg_id") != asked:
                    continue
                if message.get("msg_type") == "kernel_info_reply":
                    replied = True
                elif message.get("msg_type") == "status":
                    iopub_seen = True
                if replied and iopub_seen:
                    await asyncio.sleep(READY_SETTLE_S)
                    self.drain()
                    self.state = KernelState.IDLE
                    return
                if replied:
                    # Answered on shell, but iopub was not connected yet: ask again.
                    resend_at = min(resend_at, loop.time() + READY_POLL_S)

    async def _disconnect(self) -> None:
        for pump in self._pumps:
            pump.cancel()
        for pump in self._pumps:
            with contextlib.suppress(BaseException):
                await pump
        self._pumps = []
        if self.client is not None:
            self.client.stop_channels()
            self.client = None


class LaunchedKernel(_ZmqKernel):
    """A kernel we start (ipykernel on the run's interpreter, or a kernelspec), confined
    by the launcher like a session worker, and shut down with the server."""

    owned = True

    def __init__(self, request: RunRequest, kernel_name: str | None) -> None:
        super().__init__()
        self.request = request
        self.kernel_name = kernel_name
        self.description = f"local kernel ({kernel_name or 'ipykernel'} on {request.python})"
        self.process: asyncio.subprocess.Process | None = None
        self.sandbox: dict[str, Any] | None = None
        self._guard: Any = None
        self._box: Box | None = None
        self._runtime_dir: str | None = None
        self._exited: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        self.state = KernelState.STARTING
        self.died = asyncio.Event()
        self.death = ""
        request = self.request
        runtime = tempfile.mkdtemp(prefix="codeexec-kernel-")
        os.chmod(runtime, 0o700)
        self._runtime_dir = runtime
        connection_file, info = write_connection_file(
            os.path.join(runtime, "kernel.json"),
            transport="ipc",
            ip=os.path.join(runtime, "ipc"),
            key=os.urandom(32).hex().encode("ascii"),
        )
        try:
            argv = kernel_argv(request.python, self.kernel_name, connection_file)
        except KernelUnavailable:
            self.state = KernelState.DEAD
            raise
        log_path = os.path.join(runtime, "kernel.log")
        box = Box.for_request(request)
        guard = box.guard()
        report_read, report_write = os.pipe()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        env = dict(request.env)
        if request.sys_path:
            # The workspace and the file's folder importable, as in the other executors.
            env["PYTHONPATH"] = os.pathsep.join(
                [*request.sys_path, *filter(None, [env.get("PYTHONPATH")])]
            )
        try:
            self.process = await launch(
                box,
                guard,
                argv,
                report_fd=report_write,
                form="json",
                cwd=request.cwd,
                env=env,
                pass_fds=(report_write,),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
            )
        except OSError as exc:
            os.close(report_read)
            self.state = KernelState.DEAD
            raise KernelUnavailable(
                f"Could not start the kernel with {argv[0]!r}: {exc.strerror or exc}. "
                "Check the codeexec.python setting."
            ) from exc
        finally:
            os.close(report_write)
            os.close(log_fd)
        self._guard = guard
        self._box = box
        with contextlib.suppress(Exception):
            await guard.adopt(self.process.pid)
        self.sandbox = await _read_report(report_read)
        self._exited = asyncio.ensure_future(self._watch(self.process))
        self._connect(info)
        try:
            await self._wait_ready(START_TIMEOUT_S, self._exited)
        except KernelUnavailable as exc:
            log = _tail(log_path)
            await self._stop_process()
            if IPYKERNEL_MISSING in log:
                raise KernelUnavailable(install_hint(request.python)) from exc
            raise KernelUnavailable(
                f"The Jupyter kernel on {request.python} did not start ({exc}): "
                + (" ".join(log.splitlines()[-3:]) or "no output")
            ) from exc

    def sandbox_report(self) -> dict[str, Any] | None:
        """What confines the kernel (and so each run), as the session's hover shows it."""
        if self._box is None or self._guard is None:
            return None
        report: dict[str, Any] = self._box.report(self._guard, self.sandbox).to_json()
        return report

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if process is not self.process:
            return  # an old kernel we stopped ourselves (restart): not a death to report
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        self.mark_dead(f"the kernel process ended ({how})")

    async def interrupt(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.state = KernelState.INTERRUPTING
            kill_group(self.process.pid, signal.SIGINT)

    async def restart(self) -> None:
        await self._stop_process()
        self.state = KernelState.RESTARTING
        await self.start()

    async def _stop_process(self) -> None:
        await self._disconnect()
        process, self.process = self.process, None
        if process is not None:
            if process.returncode is None:
                # Kernels hold no data of ours: a kill is as good as a polite shutdown
                # and never hangs on a busy kernel.
                kill_group(process.pid)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            if self._guard is not None:
                with contextlib.suppress(Exception):
                    await self._guard.release(process.pid)
        if self._exited is not None:
            self._exited.cancel()
            self._exited = None
        if self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
            self._runtime_dir = None

    async def close(self) -> None:
        await self._stop_process()
        self.state = KernelState.CLOSED


class AttachedKernel(_ZmqKernel):
    """A running local kernel named by its connection file (`jupyter.connectionFile`),
    e.g. a notebook's: never shut down by us; Restart asks the kernel to restart itself."""

    owned = False

    def __init__(self, connection_file: str) -> None:
        super().__init__()
        self.connection_file = connection_file
        self.description = f"attached kernel ({connection_file})"

    async def start(self) -> None:
        self.state = KernelState.STARTING
        self.died = asyncio.Event()
        self.death = ""
        try:
            text = await asyncio.to_thread(Path(self.connection_file).read_text, "utf-8")
            info = json.loads(text)
        except (OSError, ValueError) as exc:
            self.state = KernelState.DEAD
            raise KernelUnavailable(
                f"Cannot read the kernel connection file {self.connection_file} "
                f"(codeexec.jupyter.connectionFile): {exc}"
            ) from exc
        if not isinstance(info, dict):
            raise KernelUnavailable(f"{self.connection_file} is not a kernel connection file")
        self._connect(info)
        try:
            await self._wait_ready(10.0, None)
        except KernelUnavailable as exc:
            await self._disconnect()
            self.state = KernelState.DEAD
            raise KernelUnavailable(
                f"The kernel of {self.connection_file} does not answer ({exc}): "
                "is it still running?"
            ) from exc

    async def interrupt(self) -> None:
        self.state = KernelState.INTERRUPTING
        await self.send("interrupt_request", {}, channel="control")

    async def recover(self) -> None:
        """Not ours to restart: connect again to whatever runs behind the file now."""
        await self._disconnect()
        await self.start()

    async def restart(self) -> None:
        await self.send("shutdown_request", {"restart": True}, channel="control")
        await self._disconnect()
        self.state = KernelState.RESTARTING
        await asyncio.sleep(0.5)  # whoever owns the process starts the new one
        await self.start()

    async def close(self) -> None:
        await self._disconnect()
        self.state = KernelState.CLOSED


async def _read_report(fd: int) -> dict[str, Any] | None:
    """The launcher's first line (what it applied) from the report pipe."""
    loop = asyncio.get_running_loop()

    def read() -> bytes:
        with os.fdopen(fd, "rb") as pipe:
            return pipe.readline(1 << 16)

    try:
        line = await asyncio.wait_for(loop.run_in_executor(None, read), 30.0)
        data = json.loads(line) if line else None
    except (asyncio.TimeoutError, ValueError, OSError):
        return None
    sandbox = data.get("sandbox") if isinstance(data, dict) else None
    return sandbox if isinstance(sandbox, dict) else None


def _tail(path: str, limit: int = 4096) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - limit))
            return log.read().decode("utf-8", "replace")
    except OSError:
        return ""
