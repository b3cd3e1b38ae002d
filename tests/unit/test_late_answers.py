"""A client's answer to a request the server stopped waiting for is dropped quietly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from codeexec_lsp.server import CodeexecServer


def test_a_late_answer_to_a_cancelled_request_is_dropped_quietly() -> None:
    async def scenario() -> None:
        protocol = CodeexecServer().protocol
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        waiting_for: Any = protocol._request_futures  # asyncio futures on the loop
        waiting_for["late"] = future
        future.cancel()  # e.g. the run whose progress this was has ended
        protocol._handle_response("late", result=None)
        assert "late" not in protocol._request_futures
        # A request still waited for gets its answer as before.
        waiting: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        waiting_for["on time"] = waiting
        protocol._handle_response("on time", result={"ok": True})
        assert waiting.result() == {"ok": True}

    asyncio.run(scenario())


def test_pygls_alone_would_raise_on_it() -> None:
    """Why the override exists (fails if pygls starts handling it itself: then drop ours)."""
    from pygls.protocol import LanguageServerProtocol

    async def scenario() -> None:
        protocol = CodeexecServer().protocol
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        waiting_for: Any = protocol._request_futures  # asyncio futures on the loop
        waiting_for["late"] = future
        future.cancel()
        LanguageServerProtocol._handle_response(protocol, "late", result=None)

    with pytest.raises(asyncio.InvalidStateError):
        asyncio.run(scenario())
