"""What feeding a watcher (execution/live.py) costs a run, side by side in one process.

Each executor runs the same code twice per round, once with `RunRequest.live` set (what
the server does for every editor run: progress and Show output read it) and once without
(the CLI, fix verification); rounds alternate the order. Printed: medians and their ratio.

Two workloads: 100,000 lines printed one by one (`flush=True`, so the pipe delivers many
small chunks: the worst case for per-chunk costs) and the same lines block-buffered.
Wall times on a shared machine move by more than the feeding costs, so the time spent
inside the feeding calls themselves (the session's `_LiveFeed.feed`, which decodes and
cuts the end marker, else `LiveOutput.feed`) is measured too, with the number of chunks.

    python benchmarks/live_feed.py [--rounds 10] [--executors local,session]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from codeexec_lsp import snippet
from codeexec_lsp.actions.run import build_request
from codeexec_lsp.config import Settings
from codeexec_lsp.execution import live, session
from codeexec_lsp.execution.base import Executor, RunRequest
from codeexec_lsp.execution.live import LiveOutput
from codeexec_lsp.execution.local import LocalExecutor
from codeexec_lsp.execution.session import SessionExecutor

FEEDING = {"seconds": 0.0, "calls": 0}
ORIGINAL_FEED = live.LiveOutput.feed


def _counted(feed: Callable[..., None]) -> Callable[..., None]:
    def counting(*args: object) -> None:
        started = time.perf_counter()
        feed(*args)
        FEEDING["seconds"] += time.perf_counter() - started
        FEEDING["calls"] += 1

    return counting


LINES = 100_000
WORKLOADS = {
    "flushed lines": f"for i in range({LINES}):\n    print(i, flush=True)\n",
    "buffered lines": (
        f"import sys\nsys.stdout.write(''.join(f'{{i}}\\n' for i in range({LINES})))\n"
    ),
}


def request_for(code: str, folder: Path) -> RunRequest:
    path = folder / "bench.py"
    path.write_text(code)
    settings = Settings(max_output_bytes=2_000_000)  # the whole output is kept: no cut
    return build_request(snippet.whole_file(code, str(path)), settings, folder)


async def timed(executor: Executor, request: RunRequest) -> float:
    started = time.perf_counter()
    result = await executor.run(request)
    elapsed = time.perf_counter() - started
    assert result.status == "ok", result.message
    if request.live is not None:
        assert request.live.last_line() == str(LINES - 1)
    return elapsed


async def compare(
    executor: Executor, code: str, folder: Path, rounds: int
) -> tuple[float, float, float, float]:
    """Medians: run without a watcher, run with one, time inside feeding, chunks fed."""
    plain = request_for(code, folder)
    await timed(executor, plain)  # warm: a session's worker, the page cache
    without: list[float] = []
    with_live: list[float] = []
    feeding: list[float] = []
    chunks: list[float] = []
    for round_ in range(rounds):
        watched = dataclasses.replace(plain, live=LiveOutput())
        pair = [(without, plain), (with_live, watched)]
        for samples, request in pair if round_ % 2 == 0 else reversed(pair):
            FEEDING.update(seconds=0.0, calls=0)
            samples.append(await timed(executor, request))
            if request.live is not None:
                feeding.append(FEEDING["seconds"])
                chunks.append(FEEDING["calls"])
    medians = (without, with_live, feeding, chunks)
    return tuple(statistics.median(samples) for samples in medians)  # type: ignore[return-value]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--executors", default="local,session")
    args = parser.parse_args()
    makers = {"local": LocalExecutor, "session": SessionExecutor}
    # The session feeds through _LiveFeed (which calls LiveOutput.feed: counted once).
    session._LiveFeed.feed = _counted(session._LiveFeed.feed)  # type: ignore[method-assign]
    print(
        f"{'executor':<9} {'workload':<15} {'no watcher':>11} {'watched':>9} {'ratio':>6} "
        f"{'feeding':>9} {'chunks':>7}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.executors.split(","):
            executor: Executor = makers[name]()
            live.LiveOutput.feed = (  # type: ignore[method-assign]
                _counted(ORIGINAL_FEED) if name != "session" else ORIGINAL_FEED
            )
            try:
                for workload, code in WORKLOADS.items():
                    without, watched, feeding, chunks = await compare(
                        executor, code, Path(scratch), args.rounds
                    )
                    print(
                        f"{name:<9} {workload:<15} {without * 1000:>9.0f}ms "
                        f"{watched * 1000:>7.0f}ms {watched / without:>6.2f} "
                        f"{feeding * 1000:>7.1f}ms {chunks:>7.0f}"
                    )
            finally:
                await executor.close()


if __name__ == "__main__":
    asyncio.run(main())
