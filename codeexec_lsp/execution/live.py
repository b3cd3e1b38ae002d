"""What a run has shown so far, while it is still going.

Executors feed it as output arrives (they own the pipes); the server reads it, without
waiting on anything, for progress reports ("12 s · epoch 3/10 loss 0.41") and for Show
output while the run is going. It is plain data shared inside one event loop, so it needs
no locks; it keeps a bounded tail, never the whole output, so a flood cannot grow it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

TAIL_CHARS = 64 * 1024


@dataclass
class LiveOutput:
    """Output of one run in progress: a bounded tail per stream, plus why it waits.

    Fed by the executors (session, local, jupyter, http: ``feed`` as chunks arrive,
    ``add_output`` for rich outputs, ``waiting_for`` while queued behind another run);
    read by the server's progress reporter (``last_line``, ``elapsed``) and by Show
    output (``stdout``/``stderr``/``outputs``) while the run is going.
    """

    started: float = field(default_factory=time.monotonic)
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    # "the run at lines 10–20" while this run is queued behind it; None once it runs.
    waiting_for: str | None = None
    _last_line: str = ""

    def feed(self, stream: str, text: str) -> None:
        """Add a chunk of decoded output from ``stream`` ("stdout" or "stderr")."""
        if not text:
            return
        if stream == "stderr":
            self.stderr = tail = (self.stderr + text)[-TAIL_CHARS:]
        else:
            self.stdout = tail = (self.stdout + text)[-TAIL_CHARS:]
        # From the stream's tail, not the chunk: a line may arrive in two chunks.
        line = _latest_line(tail[-4096:])
        if line:
            self._last_line = line

    def add_output(self, output: dict[str, Any]) -> None:
        """Add one rich output (nbformat shape) as it appears."""
        self.outputs.append(output)

    def last_line(self) -> str:
        """The latest non-empty line, as a terminal would show it: after a carriage return
        (a tqdm bar's update) only the text after the last ``\\r`` counts."""
        return self._last_line

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _latest_line(text: str) -> str:
    for line in reversed(text.split("\n")):
        shown = line.rstrip("\r").rsplit("\r", 1)[-1].strip()
        if shown:
            return shown
    return ""
