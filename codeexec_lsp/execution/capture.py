"""Keeping a run's output within limits, and splitting a long-lived pipe into runs."""

from __future__ import annotations

READ_CHUNK = 1 << 16


class BoundedCapture:
    """Keeps the head and the tail of a stream within `limit` bytes, counting the rest."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return (self.head + self.tail).decode("utf-8", "replace")
        omitted = self.total - len(self.head) - len(self.tail)
        return (
            self.head.decode("utf-8", "replace")
            + f"\n… [{omitted:,} bytes of output omitted: maxOutputBytes] …\n"
            + self.tail.decode("utf-8", "replace")
        )


class DelimitedStream:
    """One long-lived output pipe of a session worker, cut into runs by end markers.

    While a run is open, bytes go to its capture until that run's marker (a random token
    the worker writes after the run's output) shows up; the marker itself is dropped.
    Bytes outside any run (a background thread printing between runs, start-up errors)
    go to a small `idle` capture, kept only to explain a worker that failed to start.
    """

    IDLE_LIMIT = 4096

    def __init__(self) -> None:
        self.idle = BoundedCapture(self.IDLE_LIMIT)
        self._capture: BoundedCapture | None = None
        self._marker = b""
        self._pending = bytearray()  # bytes that might be the start of the marker
        self.closed = False

    @property
    def open(self) -> bool:
        return self._capture is not None

    def begin(self, marker: bytes, capture: BoundedCapture) -> None:
        self._marker = marker
        self._capture = capture
        self._pending.clear()
        self.idle = BoundedCapture(self.IDLE_LIMIT)

    def feed(self, chunk: bytes) -> bool:
        """Route `chunk`; True when it completed the open run."""
        if self._capture is None:
            self.idle.feed(chunk)
            return False
        self._pending += chunk
        found = self._pending.find(self._marker)
        if found >= 0:
            self._capture.feed(bytes(self._pending[:found]))
            rest = bytes(self._pending[found + len(self._marker) :])
            self._end_run()
            if rest:
                self.idle.feed(rest)
            return True
        keep = len(self._marker) - 1
        if len(self._pending) > keep:
            cut = len(self._pending) - keep
            self._capture.feed(bytes(self._pending[:cut]))
            del self._pending[:cut]
        return False

    def close(self) -> None:
        """The pipe reached end of file: whatever was pending belongs to the open run."""
        self.closed = True
        if self._capture is not None:
            self._capture.feed(bytes(self._pending))
            self._end_run()

    def abandon(self) -> None:
        """Stop routing to the open run (its marker will never come)."""
        if self._capture is not None:
            self._capture.feed(bytes(self._pending))
            self._end_run()

    def _end_run(self) -> None:
        self._capture = None
        self._pending.clear()
