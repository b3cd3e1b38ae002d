"""Does the server's memory stay flat over many runs? (issue 11, goal 6)

One server (session executor, pytest-lsp's client announcing Neovim's capabilities), one
document; the runs cycle through what an editor session does most: a value (`1+1`), a few
printed lines, and a raising line (a diagnostic appears, then goes with the next run). After
`--warm` runs (imports, caches and the first allocations settle) the resident memory of
the server and of its session worker is read from /proc every `--every` runs up to `--runs`.

What to compare is the growth after warm-up per run against the size of what a run sends
back (a few hundred bytes): flat means the per-run growth is a small fraction of it, not a
result kept per run.

    python benchmarks/memory_flat.py [--runs 1000] [--warm 100] [--every 250]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from _common import child_pids, start_server, stop_server
from lsprotocol import types as lsp

SERVER = [sys.executable, "-m", "codeexec_lsp"]
CODES = ["1+1\n", "for i in range(5):\n    print('line', i)\n", "1 / 0\n"]


def resident_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def main(runs: int, warm: int, every: int) -> int:
    root = Path(tempfile.mkdtemp(prefix="codeexec-memory-"))
    client, _ = await start_server(
        SERVER, "neovim", root, env=dict(os.environ), options={"executor": "session"}
    )
    client.initialized(lsp.InitializedParams())
    path = root / "memory.py"
    uri = path.as_uri()
    version = 1
    path.write_text(CODES[0])
    client.text_document_did_open(
        lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(
                uri=uri, language_id="python", version=version, text=CODES[0]
            )
        )
    )

    async def run(index: int) -> None:
        nonlocal version
        code = CODES[index % len(CODES)]
        version += 1
        client.text_document_did_change(
            lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=code)],
            )
        )
        result = await client.workspace_execute_command_async(
            lsp.ExecuteCommandParams(command="codeexec.run", arguments=[uri])
        )
        expected = "error" if "1 / 0" in code else "ok"
        if result["status"] != expected:
            raise RuntimeError(f"run {index} answered {result}")

    try:
        for index in range(warm):
            await run(index)
        assert client._server is not None
        server_pid = client._server.pid
        workers = child_pids(server_pid)
        rows: list[tuple[int, int, int]] = []

        def sample(done: int) -> None:
            worker_kb = sum(resident_kb(pid) for pid in workers if Path(f"/proc/{pid}").exists())
            rows.append((done, resident_kb(server_pid), worker_kb))

        sample(0)
        for index in range(1, runs + 1):
            await run(warm + index)
            if index % every == 0:
                sample(index)
    finally:
        await stop_server(client)

    print("| runs after warm-up | server RSS kB | session worker RSS kB |")
    print("| ---: | ---: | ---: |")
    for done, server_kb, worker_kb in rows:
        print(f"| {done} | {server_kb} | {worker_kb} |")
    first, last = rows[0], rows[-1]
    for name, column in (("server", 1), ("session worker", 2)):
        growth = last[column] - first[column]
        per_run = growth * 1024 / last[0]
        print(f"{name}: {growth:+d} kB over {last[0]} runs = {per_run:+.0f} bytes per run")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--every", type=int, default=250)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.runs, arguments.warm, arguments.every)))
