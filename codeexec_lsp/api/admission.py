"""A bounded queue in front of the runs: N may run, M may wait, the rest are turned away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class QueueFull(Exception):
    """Every run slot and every waiting place is taken."""


class Admission:
    def __init__(self, max_running: int, max_waiting: int) -> None:
        self.max_running = max_running
        self.max_waiting = max_waiting
        self._slots = asyncio.Semaphore(max_running)
        self._admitted = 0
        self._running = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._admitted - self._running

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a run slot for the block; raises QueueFull at once when none can be had.

        A waiter that is cancelled (its client went away) leaves the queue without running.
        """
        # One event loop serves the app, so check-then-increment cannot interleave.
        if self._admitted >= self.max_running + self.max_waiting:
            raise QueueFull
        self._admitted += 1
        try:
            async with self._slots:
                self._running += 1
                try:
                    yield
                finally:
                    self._running -= 1
        finally:
            self._admitted -= 1
