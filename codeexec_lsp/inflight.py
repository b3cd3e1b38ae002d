"""Runs in progress, so a new run of the same lines, a closed document or a shutdown can
stop them (pygls does not cancel executeCommand work on $/cancelRequest)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Hashable
from typing import TypeVar

T = TypeVar("T")


class InFlightRuns:
    def __init__(self) -> None:
        self._runs: dict[Hashable, asyncio.Event] = {}

    def start(self, key: Hashable) -> asyncio.Event:
        """Register a run; an earlier run under the same key is told to stop."""
        earlier = self._runs.get(key)
        if earlier is not None:
            earlier.set()
        cancel = asyncio.Event()
        self._runs[key] = cancel
        return cancel

    def finish(self, key: Hashable, cancel: asyncio.Event) -> None:
        if self._runs.get(key) is cancel:
            del self._runs[key]

    def cancel_where(self, predicate: object) -> int:
        stopped = 0
        for key, cancel in list(self._runs.items()):
            if callable(predicate) and predicate(key):
                cancel.set()
                stopped += 1
        return stopped

    def cancel_all(self) -> int:
        return self.cancel_where(lambda key: True)

    def __len__(self) -> int:
        return len(self._runs)


class Cancelled(Exception):
    """The user cancelled (progress cancel, a newer run of the same lines, a closed file)."""


async def until_cancelled(awaitable: Awaitable[T], cancel: asyncio.Event) -> T:
    """Await `awaitable`, but stop it and raise Cancelled as soon as `cancel` is set."""
    work = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if work.done():
        return work.result()
    work.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await work
    raise Cancelled("cancelled")
