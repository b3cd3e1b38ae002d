"""What a run has shown so far, while it is still going.

Executors feed it as output arrives (they own the pipes); the server reads it, without
waiting on anything, for progress reports ("12 s · epoch 3/10 loss 0.41") and for Show
output while the run is going. It is plain data shared inside one event loop, so it needs
no locks; it keeps a bounded tail, never the whole output, so a flood cannot grow it.

Feeding is on the hot path (a loop printing 100,000 lines arrives as that many small
chunks), readers come about once a second: so `feed` only appends the chunk to a list, and
the joining, cutting to the tail and finding the last line happen when someone reads.
Each character is copied a bounded number of times however it is chunked.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from codeexec_lsp.execution.base import RunRequest
    from codeexec_lsp.snippet import Snippet

Stream = Literal["stdout", "stderr"]
TAIL_CHARS = 64 * 1024
# Where the last line is looked for: a terminal line longer than this shows its end.
LAST_LINE_WINDOW = 4096
# Colour and cursor sequences (rich, tqdm's colour bars): not part of what a line says.
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


class _Tail:
    """The last TAIL_CHARS characters of one stream, kept as the chunks that arrived and
    joined only when read or when they pass twice the bound (so appends stay O(1) and each
    character is copied a bounded number of times)."""

    __slots__ = ("parts", "read", "size", "total")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0  # characters held in `parts`
        self.total = 0  # characters ever fed
        self.read = 0  # `total` when its last line was last looked for

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        self.total += len(text)
        if self.size > 2 * TAIL_CHARS:
            self._compact()

    def _compact(self) -> None:
        joined = "".join(self.parts)[-TAIL_CHARS:]
        self.parts = [joined] if joined else []
        self.size = len(joined)

    def text(self) -> str:
        if len(self.parts) > 1 or self.size > TAIL_CHARS:
            self._compact()
        return self.parts[0] if self.parts else ""

    def end(self, chars: int) -> str:
        """The last `chars` characters (fewer if the stream is shorter), without joining
        the whole tail."""
        picked: list[str] = []
        wanted = chars
        for part in reversed(self.parts):
            if wanted <= 0:
                break
            picked.append(part[-wanted:])
            wanted -= len(part)
        return "".join(reversed(picked))

    @property
    def omitted(self) -> int:
        """Characters fed but no longer held (the head of a long output)."""
        return self.total - min(self.size, TAIL_CHARS)


class LiveOutput:
    """Output of one run in progress: a bounded tail per stream, plus why it waits.

    Fed by the executors (session, local, jupyter: ``feed`` as chunks arrive,
    ``add_output`` for rich outputs, ``waiting_for`` while queued behind another run);
    read by the server's progress reporter (``last_line``, ``elapsed``) and by Show
    output (``stdout``/``stderr``/``outputs``) while the run is going.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.outputs: list[dict[str, Any]] = []
        # "the run at lines 10–20" while this run is queued behind it; None once it runs.
        self.waiting_for: str | None = None
        self._tails: dict[str, _Tail] = {"stdout": _Tail(), "stderr": _Tail()}
        # Streams fed since the last line was looked for, oldest first.
        self._unread: list[str] = []
        self._last_line = ""
        # Tasks that follow this run while it goes (a Show output page kept current), held
        # here so they live as long as the run is watched.
        self.followers: set[asyncio.Future[None]] = set()

    def feed(self, stream: str, text: str) -> None:
        """Add a chunk of decoded output from ``stream`` ("stdout" or "stderr")."""
        if not text:
            return
        name = "stderr" if stream == "stderr" else "stdout"
        self._tails[name].add(text)
        unread = self._unread
        if not unread or unread[-1] != name:
            if name in unread:
                unread.remove(name)
            unread.append(name)

    def add_output(self, output: dict[str, Any]) -> None:
        """Add one rich output (nbformat shape) as it appears."""
        self.outputs.append(output)

    @property
    def stdout(self) -> str:
        """The last TAIL_CHARS characters the run printed to stdout."""
        return self._tails["stdout"].text()

    @property
    def stderr(self) -> str:
        return self._tails["stderr"].text()

    def omitted(self, stream: Stream) -> int:
        """How many characters of ``stream`` are no longer held (only its tail is kept)."""
        return self._tails[stream].omitted

    def last_line(self) -> str:
        """The latest non-empty line, as a terminal would show it: after a carriage return
        (a tqdm bar's update) only the text after the last ``\\r`` counts. Taken from the
        stream written last; if its new output has no visible line, from the other one."""
        for name in reversed(self._unread):
            tail = self._tails[name]
            window = tail.end(LAST_LINE_WINDOW)
            line = _latest_line(window, max(0, len(window) - (tail.total - tail.read)))
            if line:
                self._last_line = line
                break
        for tail in self._tails.values():
            tail.read = tail.total
        self._unread.clear()
        return self._last_line

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def run_label(first_line: int, last_line: int, path: str, seen_from: str = "") -> str:
    """How a queued run names the run it waits for ("the run at lines 10–20"), from that
    run's 0-based lines and path; the file is named when it is not `seen_from`'s."""
    first, last = first_line + 1, last_line + 1
    lines = f"line {first}" if first == last else f"lines {first}–{last}"
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    where = f" of {name}" if path and name and path != seen_from else ""
    return f"the run at {lines}{where}"


class RunQueue:
    """What a run waiting for an executor's one-run-at-a-time lock is told while it waits.

    The state behind it: a session (execution/session.py) or a kernel slot
    (execution/jupyter/executor.py) inherits it and owns the lock; `wait_turn` is called
    by their `run`, `tell_queued` whenever the lock changes hands. `holder` names what holds
    the lock: the running run, else `busy_with()` (a look at the variables), else `idle`.
    """

    idle = "the executor to start"

    def __init__(self) -> None:
        self.running: Snippet | None = None  # what the run holding the lock runs, if one does
        # The watchers of runs waiting for the lock, with their files.
        self.queued: list[tuple[LiveOutput, str]] = []

    def busy_with(self) -> str | None:
        """What holds the lock when it is not a run (None: nothing else ever does)."""
        return None

    def holder(self, seen_from: str) -> str:
        """What holds the lock, as a queued run's progress says it ("waiting for …")."""
        running = self.running
        if running is not None:
            return run_label(running.first_line, running.last_line, running.path, seen_from)
        return self.busy_with() or self.idle

    def tell_queued(self) -> None:
        """The lock changed hands: every queued run now waits for the new holder."""
        for live, path in self.queued:
            live.waiting_for = self.holder(path)

    async def wait_turn(
        self, locked: bool, request: RunRequest, acquire: Callable[[], Awaitable[bool]]
    ) -> bool:
        """`acquire()` (False: cancelled while waiting), with `request`'s watcher told what
        it waits for while the lock is `locked` by someone else."""
        live = request.live
        waiter = None
        if live is not None and locked:
            # Said in the queued run's progress: "waiting for the run at lines 10–20".
            waiter = (live, request.snippet.path)
            self.queued.append(waiter)
            live.waiting_for = self.holder(request.snippet.path)
        try:
            return await acquire()
        finally:
            if waiter is not None:
                self.queued.remove(waiter)
                waiter[0].waiting_for = None


def _latest_line(text: str, new_from: int = 0) -> str:
    """The last visible line of `text` that ends at or after `new_from` (where the output
    not yet looked at begins): a line written before it was already shown."""
    stop = len(text)
    while stop >= new_from:
        start = text.rfind("\n", 0, stop) + 1
        shown = _ANSI.sub("", text[start:stop]).rstrip("\r").rsplit("\r", 1)[-1].strip()
        if shown:
            return shown
        if start == 0:
            break
        stop = start - 1
    return ""
