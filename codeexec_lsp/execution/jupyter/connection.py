"""What the executor needs from any kernel, wherever it runs: send a message, receive all
of the kernel's messages in one queue, interrupt, restart, notice a death, close.

Two implementations: local.py (ZMQ over `ipc` to a kernel we launched, or one named by a
connection file) and remote.py (REST + websocket to Jupyter Server, Kernel Gateway or
Enterprise Gateway). The executor (executor.py) holds the policy and talks only to this.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from codeexec_lsp.execution.jupyter.protocol import KernelState, unparented_status


class KernelUnavailable(Exception):
    """The kernel could not be started or reached; the message is for the user as is."""


class KernelConnection(abc.ABC):
    """One kernel as seen by the executor.

    `died` is set (to a short description) when the kernel process ended or was restarted
    under us: its state, the helper included, is gone. `owned` says whether we started the
    kernel (then we shut it down at close) or attached to it (then we never do, except
    on an explicit Restart).
    """

    owned: bool
    description: str

    def __init__(self) -> None:
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.state = KernelState.NOT_STARTED
        self.died: asyncio.Event = asyncio.Event()
        self.death: str = ""
        # False when only our connection broke (a server's websocket): the kernel and its
        # state may live on, and the next run reconnects to them.
        self.state_lost = True
        # Between runs nothing is queued (an attached notebook may print for hours); only
        # a death is noted. drain() starts listening, stop_listening() ends it.
        self.listening = False

    def mark_dead(self, why: str, *, state_lost: bool = True) -> None:
        if not self.died.is_set():
            self.death = why
            self.state_lost = state_lost
            self.state = KernelState.DEAD
            self.died.set()

    @abc.abstractmethod
    async def start(self) -> None:
        """Start or reach the kernel and wait until it answers. Raises KernelUnavailable."""

    @abc.abstractmethod
    async def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Send one request; returns its msg_id (replies and outputs carry it as parent)."""

    @abc.abstractmethod
    async def interrupt(self) -> None:
        """Ask the kernel to interrupt what it runs (KeyboardInterrupt, state kept)."""

    @abc.abstractmethod
    async def restart(self) -> None:
        """A fresh kernel process in place of this one (state lost); ready on return."""

    async def recover(self) -> None:
        """Usable again after a death or a dropped connection (the executor's next run)."""
        await self.restart()

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop listening; shut the kernel down if we own it."""

    def deliver(self, message: dict[str, Any]) -> None:
        """A message from the kernel: queued while we listen; a death is noted always."""
        status = unparented_status(message)
        if status is not None:
            self.mark_dead(f"the server reports the kernel {status}")
        if self.listening:
            self.messages.put_nowait(message)

    def drain(self) -> None:
        """Forget messages of earlier runs (late outputs, other clients' chatter) and
        listen from now on."""
        self.listening = True
        while not self.messages.empty():
            self.messages.get_nowait()

    def stop_listening(self) -> None:
        self.listening = False
        while not self.messages.empty():
            self.messages.get_nowait()
