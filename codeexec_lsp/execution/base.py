"""What every execution backend takes and gives: RunRequest in, RunResult out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from codeexec_lsp.execution.live import LiveOutput
from codeexec_lsp.results import RunResult
from codeexec_lsp.snippet import Snippet

Profile = Literal["standard", "strict"]


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 30.0
    cpu_s: float | None = None  # None: a little over the wall-clock timeout
    memory_mb: int = 1024
    max_output_bytes: int = 1_000_000
    max_file_mb: int = 512
    max_open_files: int = 1024
    # Processes and threads of one run (one session worker): a pids cgroup counts both.
    max_processes: int = 256

    @property
    def cpu_seconds(self) -> float:
        # Past the wall timeout, so a busy loop reports "timeout" rather than racing it.
        return self.cpu_s if self.cpu_s is not None else self.timeout_s + 1

    @property
    def output_hard_cap(self) -> int:
        """Past this much output the run is stopped: it only burns CPU for nothing."""
        return 10 * self.max_output_bytes


@dataclass(frozen=True)
class RunRequest:
    snippet: Snippet
    python: str
    cwd: str
    env: dict[str, str]
    limits: Limits = field(default_factory=Limits)
    sys_path: tuple[str, ...] = ()
    interpreter_source: str = ""
    # The box the code runs in (DESIGN.md principle 8, execution/launcher.py).
    sandbox: Profile = "standard"
    # None: the profile decides (standard: on, strict: off); True/False overrides it.
    network: bool | None = None
    # Fed while the run goes, read by progress and Show output (execution/live.py). None:
    # nobody is watching (the CLI, fix verification).
    live: LiveOutput | None = field(default=None, compare=False, repr=False)

    @property
    def network_allowed(self) -> bool:
        """Whether the code may reach the network: the override, else the profile's."""
        return self.network if self.network is not None else self.sandbox == "standard"


@dataclass(frozen=True)
class InspectAnswer:
    """What a session or kernel said about its variables: `status` is "ok" (with the
    worker's or kernel's `answer`), "none" (none ready here), "busy" (a run is going or
    queued) or "timeout" (no answer in time)."""

    status: str
    answer: dict[str, Any] = field(default_factory=dict)


def has_waiters(lock: asyncio.Lock) -> bool:
    """Whether a run is about to take `lock`: just after a release the lock reads as free
    while the next run has been woken but not yet run, and acquiring would queue behind
    it. asyncio.Lock keeps them in `_waiters` (3.8 to 3.13); without it, assume none."""
    waiters = getattr(lock, "_waiters", None) or ()
    return any(not waiter.cancelled() for waiter in waiters)


class Executor(Protocol):
    name: str

    async def run(self, request: RunRequest, cancel: asyncio.Event | None = None) -> RunResult:
        """Run the request; never raises for anything the user's code does.

        Setting `cancel` stops the run (interrupt, then kill) and yields status "cancelled".
        """
        ...

    async def close(self) -> None: ...
