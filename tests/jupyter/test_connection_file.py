"""Attaching to a running local kernel by its connection file (`jupyter.connectionFile`),
as to a notebook's: state shared both ways, interrupts keep it, and the kernel is left
running when we close."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from jupyter_client.manager import AsyncKernelManager

from codeexec_lsp.execution.jupyter import JupyterExecutor
from tests.jupyter.conftest import request_for

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def notebook_kernel() -> AsyncIterator[AsyncKernelManager]:
    """A kernel somebody else runs (here: jupyter_client's own manager, as a notebook's)."""
    manager = AsyncKernelManager(transport="ipc")
    await manager.start_kernel()
    try:
        yield manager
    finally:
        await manager.shutdown_kernel(now=True)


async def notebook_value(manager: AsyncKernelManager, code: str, expression: str = "None") -> Any:
    """Run `code` over a client of the test's own; the text of `expression` afterwards."""
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(
            code, user_expressions={"out": expression}, output_hook=lambda message: None, timeout=30
        )
    finally:
        client.stop_channels()
    return reply["content"]["user_expressions"]["out"]["data"]["text/plain"]


async def test_state_is_shared_both_ways(
    notebook_kernel: AsyncKernelManager, tmp_path: Path
) -> None:
    await notebook_value(notebook_kernel, "defined_in_notebook = 'nb'")
    jupyter = JupyterExecutor(connection_file=notebook_kernel.connection_file)
    try:
        seen = await jupyter.run(request_for("defined_in_notebook\n", tmp_path))
        assert seen.status == "ok", seen.message
        assert seen.value == "'nb'"
        await jupyter.run(request_for("defined_by_us = 7 * 6\n", tmp_path))
        stopped = await jupyter.run(request_for("while True:\n    pass\n", tmp_path, timeout=1))
        assert stopped.status == "timeout"
        assert stopped.extra["jupyter"]["state_lost"] is False
        error = await jupyter.run(request_for("x = 1\n\n1 / 0\n", tmp_path))
        assert error.error is not None and (error.error.type, error.error.line) == (
            "ZeroDivisionError",
            3,
        )
    finally:
        await jupyter.close()
    assert await notebook_kernel.is_alive()
    assert await notebook_value(notebook_kernel, "", "defined_by_us") == "42"


async def test_a_missing_connection_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "kernel-gone.json")
    jupyter = JupyterExecutor(connection_file=missing)
    try:
        result = await jupyter.run(request_for("1\n", tmp_path))
    finally:
        await jupyter.close()
    assert result.status == "internal"
    assert missing in result.message and "connectionFile" in result.message


async def test_an_attached_kernel_stuck_past_an_interrupt_is_not_restarted(
    tmp_path: Path,
) -> None:
    manager = AsyncKernelManager(transport="ipc")
    await manager.start_kernel()
    try:
        jupyter = JupyterExecutor(connection_file=manager.connection_file)
        try:
            await jupyter.run(request_for("notebook_state = 1\n", tmp_path))
            stuck = (
                "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                "while True:\n    pass\n"
            )
            result = await jupyter.run(request_for(stuck, tmp_path, timeout=1))
        finally:
            await jupyter.close()
        assert result.status == "timeout"
        assert "codeexec.restart" in result.message
        assert result.extra["jupyter"]["state_lost"] is False
        assert await manager.is_alive()
    finally:
        await manager.shutdown_kernel(now=True)
