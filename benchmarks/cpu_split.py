"""Where a round trip's time goes: CPU per run of each process, in one run.

Wall time of a `codeexec.run` of `1+1` is the client's, the server's and the session
worker's work in sequence (each waits for the other), so their CPU per run says whose share
is what. Next to it, the same for a minimal pygls 2 server answering a constant with our
event-loop stdin reader: pygls' own floor. CPU is read from /proc/<pid>/stat (user + system)
before and after `--runs` back-to-back requests, after 50 warm-ups; the client's own with
time.process_time(). pytest-lsp's client announces Neovim's capabilities.

    python benchmarks/cpu_split.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from _common import BENCHMARKS, child_pids, python_module, start_server, stop_server
from lsprotocol import types as lsp

REPO = BENCHMARKS.parent
CODE = "1+1\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    argv: list[str], env: dict[str, str], options: object, make_once: str, runs: int
) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="codeexec-cpu-"))
    client, _ = await start_server(argv, "neovim", root, env=env, options=options)
    client.initialized(lsp.InitializedParams())
    once: Callable[[], Awaitable[object]]
    if make_once == "run":
        path = root / "cpu.py"
        path.write_text(CODE)
        uri = path.as_uri()
        client.text_document_did_open(
            lsp.DidOpenTextDocumentParams(
                text_document=lsp.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=CODE
                )
            )
        )
        params = lsp.ExecuteCommandParams(command="codeexec.run", arguments=[uri])
    else:
        params = lsp.ExecuteCommandParams(command="bench.constant", arguments=[])

    def once() -> Awaitable[object]:
        return client.workspace_execute_command_async(params)

    try:
        for _ in range(50):
            await once()
        assert client._server is not None
        server = client._server.pid
        helpers = child_pids(server)
        before = {pid: cpu_seconds(pid) for pid in [server, *helpers]}
        own, started = time.process_time(), time.perf_counter()
        for _ in range(runs):
            await once()
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - own
        row = {
            "wall": wall / runs * 1000,
            "client": client_cpu / runs * 1000,
            "server": (cpu_seconds(server) - before[server]) / runs * 1000,
        }
        if helpers:
            row["worker"] = sum(cpu_seconds(p) - before[p] for p in helpers) / runs * 1000
        return row
    finally:
        await stop_server(client)


async def main(runs: int) -> int:
    ours = await measure(
        [sys.executable, "-m", "codeexec_lsp"],
        dict(os.environ),
        {"executor": "session"},
        "run",
        runs,
    )
    argv, extra = python_module("_minimal_pygls", [BENCHMARKS, REPO])
    minimal = await measure(
        [*argv, "--loop-reader"], {**os.environ, **extra}, None, "constant", runs
    )
    print("| per request, ms | wall | client CPU | server CPU | session worker CPU |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in (("codeexec.run 1+1", ours), ("minimal pygls, loop reader", minimal)):
        worker = f"{row['worker']:.3f}" if "worker" in row else "—"
        print(
            f"| {name} | {row['wall']:.3f} | {row['client']:.3f} | {row['server']:.3f} | {worker} |"
        )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    sys.exit(asyncio.run(main(parser.parse_args().runs)))
