"""Helpers the side-by-side benchmarks share: statistics, rotated rounds, LSP clients."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient as TestClient
from pytest_lsp import client_capabilities
from pytest_lsp.client import register_lsp_features

BENCHMARKS = Path(__file__).resolve().parent
Once = Callable[[], Awaitable[Any]]


def summary(samples: Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p95": p95, "n": len(ordered)}


async def rotated(
    runs: int, contestants: dict[str, Once], warmup: int = 5
) -> dict[str, list[float]]:
    """Time each contestant `runs` times, one of each per round, the order rotated every
    round, so load on a shared machine and position effects hit all of them alike."""
    names = list(contestants)
    for _ in range(warmup):
        for name in names:
            await contestants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            await contestants[name]()
            samples[name].append((time.perf_counter() - started) * 1000)
    return samples


class QuietClient(TestClient):
    """pytest-lsp's client (it answers workDoneProgress/create, records progress and
    diagnostics like an editor), with the server's stderr drained and dropped instead of
    echoed, so a chatty server cannot stall on a full pipe nor flood the report."""

    async def start_io(self, cmd: str, *args: Any, **kwargs: Any) -> None:
        await super(TestClient, self).start_io(cmd, *args, **kwargs)
        process = self._server
        if process is not None and process.stderr is not None:
            self._stderr_forwarder = asyncio.create_task(_drain(process.stderr))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


def make_client() -> QuietClient:
    client = QuietClient()
    register_lsp_features(client)

    @client.feature(lsp.WORKSPACE_INLAY_HINT_REFRESH)
    def inlay_hint_refresh(params: None) -> None:
        return None

    return client


def capabilities(editor: str) -> lsp.ClientCapabilities:
    """What Neovim or VS Code announce (both support work-done progress)."""
    return client_capabilities(editor)


async def start_server(
    command: Sequence[str],
    editor: str,
    root: Path,
    env: dict[str, str] | None = None,
    options: Any = None,
) -> tuple[QuietClient, float]:
    """Start `command`, initialize as `editor`; (client, ms from start to the answer)."""
    client = make_client()
    client.capabilities = capabilities(editor)  # what pytest-lsp checks the server against
    started = time.perf_counter()
    await client.start_io(command[0], *command[1:], env=env)
    await client.initialize_async(
        lsp.InitializeParams(
            capabilities=client.capabilities,
            process_id=os.getpid(),
            root_uri=root.as_uri(),
            workspace_folders=[lsp.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=options,
        )
    )
    elapsed = (time.perf_counter() - started) * 1000
    return client, elapsed


async def stop_server(client: TestClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_async(None), 30)
        client.exit(None)
    finally:
        await client.stop()


def python_module(
    module: str, pythonpath: Sequence[str | Path] = ()
) -> tuple[list[str], dict[str, str]]:
    """`python -m module` with `pythonpath` first: (argv, environment additions)."""
    path = os.pathsep.join([*(str(p) for p in pythonpath), os.environ.get("PYTHONPATH", "")])
    return [sys.executable, "-m", module], {"PYTHONPATH": path.rstrip(os.pathsep)}


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started (its session worker, for a language server), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found
