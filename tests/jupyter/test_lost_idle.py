"""A kernel connection that fails on purpose: the run's iopub `idle` never arrives (a
server's iopub hiccup). The run must still end as what it was, not as a timeout followed
by a restart that loses the user's state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeexec_lsp.execution.base import RunRequest
from codeexec_lsp.execution.jupyter import JupyterExecutor
from codeexec_lsp.execution.jupyter.connection import KernelConnection
from codeexec_lsp.execution.jupyter.protocol import REPORT_MIME, KernelState
from tests.jupyter.conftest import request_for


class IdleLosingKernel(KernelConnection):
    owned = True
    description = "a kernel whose idle status gets lost"

    def __init__(self) -> None:
        super().__init__()
        self.restarts = 0
        self.interrupts = 0

    async def start(self) -> None:
        self.state = KernelState.IDLE

    def _answer(self, parent: str, kind: str, content: dict[str, Any]) -> None:
        self.deliver(
            {"header": {"msg_type": kind}, "parent_header": {"msg_id": parent}, "content": content}
        )

    async def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        *,
        channel: str = "shell",
        metadata: dict[str, Any] | None = None,
    ) -> str:
        msg_id = f"m{self.messages.qsize()}-{msg_type}-{id(content)}"
        if msg_type == "kernel_info_request":
            self._answer(msg_id, "kernel_info_reply", {"implementation": "ipython"})
            self._answer(msg_id, "status", {"execution_state": "idle"})
        elif content.get("silent"):  # the helper's installation
            self._answer(msg_id, "execute_reply", {"status": "ok"})
            self._answer(msg_id, "status", {"execution_state": "idle"})
        else:  # a run: output, report, reply; the idle is lost on the way
            self._answer(msg_id, "stream", {"name": "stdout", "text": "ran\n"})
            report = {"value": "7", "error": None, "duration_ms": 1.0}
            self._answer(msg_id, "display_data", {"data": {REPORT_MIME: report}})
            self._answer(msg_id, "execute_reply", {"status": "ok"})
        return msg_id

    async def interrupt(self) -> None:
        self.interrupts += 1

    async def restart(self) -> None:
        self.restarts += 1

    async def close(self) -> None:
        self.state = KernelState.CLOSED


@pytest.mark.asyncio
async def test_a_lost_idle_does_not_turn_a_finished_run_into_a_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel = IdleLosingKernel()
    jupyter = JupyterExecutor()

    def connect(request: RunRequest) -> KernelConnection:
        return kernel

    monkeypatch.setattr(jupyter, "_connect", connect)
    try:
        result = await jupyter.run(request_for("7\n", tmp_path, timeout=5))
    finally:
        await jupyter.close()
    assert result.status == "ok", result.message
    assert (result.stdout, result.value) == ("ran\n", "7")
    assert (kernel.interrupts, kernel.restarts) == (0, 0)
