"""A kernel on a Jupyter Server, Kernel Gateway or Enterprise Gateway: REST with httpx for
its lifecycle, the kernel websocket (`/api/kernels/{id}/channels`, JSON frames) with the
`websockets` library for its messages.

Why these choices (see ../shared/notes/jupyter.md):
- `Authorization: token …` works on all three servers (`Bearer` only on jupyter_server).
  The token is read from the variable named by `jupyter.tokenEnv` when a connection is
  made, and goes only into that header: never a URL, a log line or the kernel's env.
- An explicit `max_size`: kernels have no output cap, and the library's 1 MiB default
  makes a server close the socket (1009) on the first big output. We count output and
  interrupt the run ourselves (executor.py).
- None of the servers sets TCP_NODELAY on kernel websockets, so each small frame waits
  for our delayed ACK (~40 ms a run). TCP_QUICKACK on our socket after every received
  frame answers at once (Linux; the flag does not stick, hence every frame).
- Enterprise Gateway refuses `root` as the kernel's user: the POST names one in
  `env.KERNEL_USERNAME` (Kernel Gateway and EG pass `KERNEL_*` variables to the kernel;
  Jupyter Server ignores `env`).
- A dying kernel never replies: the server sends an unparented `status: restarting`,
  restarts it and keeps the websocket open (the executor reads that, protocol.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import socket
import uuid
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from codeexec_lsp.execution.jupyter.connection import KernelConnection, KernelUnavailable
from codeexec_lsp.execution.jupyter.protocol import KernelState, new_message

# Big enough for a plot or a large table in one frame; a bigger frame ends the connection
# (the run is then reported, and the next one reconnects to the same kernel).
MAX_FRAME_BYTES = 256 * 1024 * 1024
REST_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 60.0
READY_RESEND_S = 1.0
READY_POLL_S = 0.1
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def kernel_username() -> str:
    """Who the kernel runs for (EG's KERNEL_USERNAME): ours, unless we are root, which
    Enterprise Gateway refuses by default."""
    name = os.environ.get("KERNEL_USERNAME")
    if name:
        return name
    try:
        name = getpass.getuser()
    except Exception:
        name = ""
    return name if name and name != "root" else "codeexec"


def _websocket_url(base: str, kernel_id: str, session_id: str) -> str:
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    path = parts.path.rstrip("/") + f"/api/kernels/{quote(kernel_id)}/channels"
    return urlunsplit((scheme, parts.netloc, path, f"session_id={session_id}", ""))


class RemoteKernel(KernelConnection):
    """A new kernel on the server (deleted at close), or the existing `kernel_id` (never
    deleted: a notebook's, shared both ways)."""

    def __init__(
        self,
        url: str,
        token_env: str,
        *,
        kernel_name: str | None = None,
        kernel_id: str | None = None,
    ) -> None:
        super().__init__()
        self.url = url.rstrip("/")
        self.token_env = token_env
        self.kernel_name = kernel_name
        self.kernel_id = kernel_id
        self.owned = kernel_id is None
        self.description = (
            f"kernel {kernel_id} on {self.url}" if kernel_id else f"new kernel on {self.url}"
        )
        self.session_id = uuid.uuid4().hex
        self._http: httpx.AsyncClient | None = None
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    # --- REST --------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        token = os.environ.get(self.token_env, "")
        return {"Authorization": f"token {token}"} if token else {}

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.url, timeout=REST_TIMEOUT_S, headers=self._headers()
            )
        return self._http

    async def _rest(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KernelUnavailable(
                f"Cannot reach the Jupyter server at {self.url} (codeexec.jupyter.url): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code in (401, 403):
            hint = (
                f"the variable {self.token_env} is not set"
                if not os.environ.get(self.token_env)
                else f"check the token in {self.token_env}"
            )
            raise KernelUnavailable(
                f"The Jupyter server at {self.url} refused us (HTTP {response.status_code}): "
                f"{hint} (codeexec.jupyter.tokenEnv)."
            )
        return response

    async def start(self) -> None:
        self.state = KernelState.STARTING
        self.died = asyncio.Event()
        self.death = ""
        if self.kernel_id is None:
            body: dict[str, Any] = {"env": {"KERNEL_USERNAME": kernel_username()}}
            if self.kernel_name:
                body["name"] = self.kernel_name
            response = await self._rest("POST", "/api/kernels", json=body)
            if response.status_code not in (200, 201):
                raise KernelUnavailable(
                    f"The Jupyter server at {self.url} could not start a kernel "
                    f"(HTTP {response.status_code}): {_reason(response)}"
                )
            self.kernel_id = str(response.json()["id"])
            self.description = f"kernel {self.kernel_id} on {self.url} (ours)"
        else:
            response = await self._rest("GET", f"/api/kernels/{quote(self.kernel_id)}")
            if response.status_code != 200:
                raise KernelUnavailable(
                    f"No kernel {self.kernel_id} on {self.url} (codeexec.jupyter.kernelId): "
                    f"HTTP {response.status_code}. `GET {self.url}/api/kernels` lists them."
                )
        await self._open_socket()
        await self._wait_ready()

    async def _open_socket(self) -> None:
        assert self.kernel_id is not None
        await self._close_socket()
        try:
            self._socket = await connect(
                _websocket_url(self.url, self.kernel_id, self.session_id),
                additional_headers=self._headers(),
                max_size=MAX_FRAME_BYTES,
                compression=None,
                open_timeout=REST_TIMEOUT_S,
                ping_interval=None,
            )
        except (OSError, WebSocketException, asyncio.TimeoutError) as exc:
            raise KernelUnavailable(
                f"Cannot open the kernel websocket on {self.url}: {type(exc).__name__}: {exc}"
            ) from exc
        sock = self._socket.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = asyncio.ensure_future(self._read(self._socket, sock))

    async def _read(self, websocket: ClientConnection, sock: Any) -> None:
        try:
            async for frame in websocket:
                if _QUICKACK is not None and sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                if not isinstance(frame, str):
                    continue  # binary frames carry buffers (widgets); nothing a run needs
                try:
                    message = json.loads(frame)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    message.setdefault("msg_type", (message.get("header") or {}).get("msg_type"))
                    self.deliver(message)
        except WebSocketException:
            pass
        # The socket closed: the kernel may live on; the next run reconnects to it.
        self.mark_dead("the connection to the Jupyter server closed", state_lost=False)

    async def _wait_ready(self) -> None:
        """kernel_info until its reply and its iopub status both come back: after a
        restart the server reconnects its iopub stream to the new kernel a little later
        than its shell stream, and output sent meanwhile is lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_TIMEOUT_S
        self.drain()
        while True:
            # Repeated only when unanswered for a while: a flood of early requests, all
            # delivered at once when the kernel is up, has lost later replies (ipykernel 7).
            asked = await self.send("kernel_info_request", {})
            resend_at = loop.time() + READY_RESEND_S
            replied = iopub_seen = False
            while loop.time() < resend_at:
                if self.died.is_set():
                    raise KernelUnavailable(f"the kernel connection failed ({self.death})")
                if loop.time() > deadline:
                    raise KernelUnavailable(
                        f"the kernel did not answer within {READY_TIMEOUT_S:g} s"
                    )
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
                    self.drain()
                    self.state = KernelState.IDLE
                    return
                if replied:
                    resend_at = min(resend_at, loop.time() + READY_POLL_S)

    # --- KernelConnection ------------------------------------------------------------------------

    async def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        metadata: dict[str, Any] | None = None,
    ) -> str:
        if self._socket is None:
            raise KernelUnavailable("the kernel websocket is not open")
        message = new_message(
            msg_type, content, self.session_id, channel=channel, metadata=metadata
        )
        try:
            await self._socket.send(json.dumps(message))
        except WebSocketException as exc:
            self.mark_dead("the connection to the Jupyter server closed", state_lost=False)
            raise KernelUnavailable(f"the kernel websocket closed: {exc}") from exc
        return str(message["header"]["msg_id"])

    async def interrupt(self) -> None:
        if self.kernel_id is None:
            return
        self.state = KernelState.INTERRUPTING
        with contextlib.suppress(KernelUnavailable):
            await self._rest("POST", f"/api/kernels/{quote(self.kernel_id)}/interrupt")

    async def restart(self) -> None:
        """Restart, or a kernel stuck past an interrupt: the server restarts it."""
        if self.kernel_id is None:
            await self.start()
            return
        self.state = KernelState.RESTARTING
        response = await self._rest("POST", f"/api/kernels/{quote(self.kernel_id)}/restart")
        if response.status_code not in (200, 204):
            raise KernelUnavailable(
                f"The Jupyter server could not restart kernel {self.kernel_id} "
                f"(HTTP {response.status_code}): {_reason(response)}"
            )
        await self._reconnect()

    async def recover(self) -> None:
        """After a death the server has restarted the kernel itself; after a dropped
        websocket the kernel lives on: either way, reconnect. A kernel of ours that the
        server gave up on is replaced by a new one."""
        self.state = KernelState.RESTARTING
        if self.kernel_id is not None and self.owned:
            response = await self._rest("GET", f"/api/kernels/{quote(self.kernel_id)}")
            if response.status_code == 404:
                await self._close_socket()
                self.kernel_id = None
                await self.start()
                return
        if self.kernel_id is None:
            await self.start()
            return
        await self._reconnect()

    async def _reconnect(self) -> None:
        self.died = asyncio.Event()
        self.death = ""
        if self._socket is None or self._reader is None or self._reader.done():
            await self._open_socket()
        await self._wait_ready()

    async def _close_socket(self) -> None:
        reader, self._reader = self._reader, None
        websocket, self._socket = self._socket, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        if websocket is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(), 2.0)

    async def close(self) -> None:
        await self._close_socket()
        if self.owned and self.kernel_id is not None:
            with contextlib.suppress(KernelUnavailable):
                await self._rest("DELETE", f"/api/kernels/{quote(self.kernel_id)}")
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self.state = KernelState.CLOSED


def _reason(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(data, dict):
        return str(data.get("message") or data.get("reason") or data)[:200]
    return str(data)[:200]
